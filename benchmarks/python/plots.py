"""benchmarks/python/plots.py: the two plots of docs/benchmarks.md (stream throughput, round-trip latency),
drawn from a result JSON into docs/img/ by one grouped-bar function."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import *  # noqa: F403

# docs/img/bench-<name>.png -> (title, its panels: (workloads, the cells' figure drawn, y label)).
PLOTS: dict[str, tuple[str, list[tuple[list[str], str, str]]]] = {
    "throughput": ("Throughput by payload, higher is better", [
        ([f"stream-{p}" for p in STREAM_MSGS], "items_per_s", "messages / s (log)"),
        ([f"stream-{p}" for p in STREAM_BIG], "mb_per_s", "MB / s (log)")]),
    "latency": ("Median round trip, lower is better", [
        (["pingpong", "pingpong-busy"], "rt_median_us", "round trip, µs (log)")]),
}


def ok(c: dict[str, Any] | None, key: str) -> Any:
    """The cell's figure ``key``, None without one."""
    return c[key] if c and c.get("status") == "ok" and c.get(key) else None


def _cell_bars(ax: Any, data: dict[str, Any], workloads: list[str], key: str, ylabel: str) -> None:
    """A group of bars per workload, a bar per peer: the cell's ``key`` figure on a log axis, or the cell's
    status written at the axis' foot. Every run lists every peer, so a peer keeps its colour from run to run."""
    cells, peers = cells_by(data), data["peers_order"]
    width = 0.8 / len(peers)
    bars = [(j + (i - (len(peers) - 1) / 2) * width, p, cells.get((w, p)) or {})
            for i, p in enumerate(peers) for j, w in enumerate(workloads)]
    ymin = min((c[key] for _, _, c in bars if ok(c, key)), default=1)
    for p in peers:
        mine = [(x, c[key]) for x, q, c in bars if q == p and ok(c, key)]
        ax.bar([x for x, _ in mine], [v for _, v in mine], width, label=label(data, p))
    for x, _, c in bars:
        if not ok(c, key):
            ax.text(x, ymin / 2.5, c.get("status", "-"), rotation=90, ha="center", va="bottom", fontsize=7,
                    color="gray")
    ax.set_yscale("log")
    ax.set_ylim(bottom=ymin / 3)
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels(workloads, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", which="major", alpha=0.3)


def plots(data: dict[str, Any]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    stamp = f"{data['date']} {data['commit']}{' (quick)' if data.get('quick') else ''}"
    made = []
    for name, (title, panels) in PLOTS.items():
        sizes = [len(workloads) for workloads, _, _ in panels]
        fig, axes = plt.subplots(1, len(panels), figsize=(max(8.0, 1.6 * sum(sizes) + 1), 4.8), squeeze=False,
                                 gridspec_kw={"width_ratios": sizes})
        for ax, (workloads, key, ylabel) in zip(axes[0], panels):
            _cell_bars(ax, data, workloads, key, ylabel)
        axes[0][0].legend(fontsize=8, loc="upper right")
        fig.suptitle(f"{title} — {stamp}", fontsize=10)
        fig.tight_layout()
        path = DOCS_IMG / f"bench-{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)
    return made
