"""benchmarks/python/plots.py: the figures of docs/benchmarks.md, drawn from a result JSON into docs/img/."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from common import *  # noqa: F403

PEER_COLORS = {
    "xchannels": "#1f77b4",
    "interp-queues": "#ff7f0e",
    "mp-queue": "#2ca02c",
    "faster-fifo": "#9467bd",
    "xchannels-process": "#17becf",
    "queue-thread": "#8c564b",
}


def _bars(ax: Any, names: list[str], groups: list[str], value: Any, ylabel: str, title: str,
          colors: list[str | None] | None = None, missing: Any = None) -> None:
    """Grouped bars: a series per name, a group per x tick, ``value(i, j)`` series i's bar in group j (None:
    no bar). With ``missing(i, j)`` (why there is no bar), the axis is logarithmic and the whys are written
    at its foot."""
    width = 0.8 / max(1, len(names))
    vals = [[value(i, j) for j in range(len(groups))] for i in range(len(names))]
    x = [[j + (i - (len(names) - 1) / 2) * width for j in range(len(groups))] for i in range(len(names))]
    for i, name in enumerate(names):
        ax.bar([x[i][j] for j, v in enumerate(vals[i]) if v], [v for v in vals[i] if v], width, label=name,
               color=(colors or [None] * len(names))[i])
    if missing is not None:
        ymin = min((v for row in vals for v in row if v), default=None)
        ax.set_yscale("log")
        if ymin:
            ax.set_ylim(bottom=ymin / 3)
        for i, j in ((i, j) for i in range(len(names)) for j in range(len(groups)) if not vals[i][j]):
            ax.text(x[i][j], (ymin or 1) / 2.5, missing(i, j), rotation=90, ha="center", va="bottom", fontsize=7,
                    color="gray")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", which="major", alpha=0.3)


def ok(c: dict[str, Any] | None, key: str) -> Any:
    """The cell's figure ``key``, None without one."""
    return c[key] if c and c.get("status") == "ok" and c.get(key) else None


def _cell_bars(ax: Any, data: dict[str, Any], workloads: list[str], key: str, ylabel: str, title: str) -> None:
    """A bar per peer and workload: the cell's ``key`` figure, or its status."""
    cells, peers = cells_by(data), data["peers_order"]

    def cell(i: int, j: int) -> Any:
        return cells.get((workloads[j], peers[i]))

    _bars(ax, [data["peer_info"][p]["label"] for p in peers], workloads, lambda i, j: ok(cell(i, j), key),
          ylabel, title, [PEER_COLORS.get(p) for p in peers], lambda i, j: (cell(i, j) or {}).get("status", "-"))


def plots(data: dict[str, Any], outdir: Path = DOCS_IMG) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    stamp = f"{data['date']} {data['commit']}{' (quick)' if data.get('quick') else ''}"
    made = []

    def save(fig: Any, name: str, **layout: Any) -> None:
        fig.tight_layout(**layout)
        p = outdir / f"bench-{name}"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(p)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [5, 3]})
    _cell_bars(a1, data, [f"stream-{p}" for p in STREAM_MSGS], "items_per_s", "messages / s (log)",
               "Streaming, small items: messages per second")
    _cell_bars(a2, data, [f"stream-{p}" for p in STREAM_BIG], "mb_per_s", "MB / s (log)",
               "Streaming, large items: MB per second")
    lim = (data.get("memcpy") or {}).get("result")
    if isinstance(lim, dict) and isinstance(lim.get("memmove_gbps"), (int, float)) \
            and f"stream-{STREAM_BIG[0]}" == MEMCPY_WORKLOAD:
        y = lim["memmove_gbps"] * 1e3  # MB/s
        a2.hlines(y, -0.45, 0.45, colors="black", linestyles="--", lw=1)
        a2.text(0, y, f"memcpy limit {lim['memmove_gbps']:.3g} GB/s", ha="center", va="bottom", fontsize=7)
    for ax in (a1, a2):
        ax.set_xlabel("workload (1 producer, 1 consumer)")
    a1.legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Throughput by payload, higher is better — {stamp}", fontsize=10)
    fig.text(0.5, 0.005, "queue.Queue (threads) passes references inside one interpreter (no copy); "
             "SharedBuffer-64MiB hands over a reference to one block, so its MB/s is nominal; "
             "bytes-1MiB cycles through payloads bigger than the cache in total (dashed: one memcpy of them).",
             ha="center", va="bottom", fontsize=7, color="dimgray")
    save(fig, "throughput.png", rect=(0, 0.03, 1, 1))

    cells = cells_by(data)
    peers = data["peers_order"]
    # Room for six peers' labels ("xchannels ProcessChannel" is long).
    fig, ax = plt.subplots(figsize=(max(8.0, 1.6 * len(peers)), 4.5))
    labels = ["\n".join(textwrap.wrap(data["peer_info"][q]["label"], 18, break_long_words=False)) for q in peers]
    med = [ok(cells.get(("pingpong", q)), "rt_median_us") for q in peers]
    p99 = [ok(cells.get(("pingpong", q)), "rt_p99_us") for q in peers]
    xs = range(len(peers))
    ax.bar([x - 0.2 for x in xs], [m or 0 for m in med], 0.4, label="median")
    ax.bar([x + 0.2 for x in xs], [m or 0 for m in p99], 0.4, label="p99")
    if any(med):
        ax.set_yscale("log")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_xlabel("peer")
    ax.set_ylabel("round trip, µs (log)")
    ax.set_title(f"Ping-pong round-trip latency, lower is better — {stamp}", fontsize=10)
    for x, m in zip(xs, med):
        if m:
            ax.text(x - 0.2, m, us(m), ha="center", va="bottom", fontsize=7)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    save(fig, "latency.png")

    fig, ax = plt.subplots(figsize=(10, 4.5))
    _cell_bars(ax, data, PATTERNS, "items_per_s", "items / s (log)",
          f"Patterns (2 cores: contention, not scaling), higher is better — {stamp}")
    ax.set_xlabel("workload")
    ax.legend(fontsize=8)
    save(fig, "patterns.png")

    pres = (data.get("pool") or {}).get("result")
    pv = pool_variants(pres)
    # Only the workloads with speed-ups (startup has none).
    pv = [v for v in pv or [] if any(isinstance(q.get("speedup_vs_serial"), (int, float)) for q in v["peers"])]
    if pv:
        names = pool_peer_names(pv)
        speedups = [{q.get("name"): q.get("speedup_vs_serial") for q in v["peers"]} for v in pv]
        workers = pres.get("workers", "?") if isinstance(pres, dict) else "?"
        fig, ax = plt.subplots(figsize=(13, 5.2))
        _bars(ax, names, [f"{v['name']}\n({v.get('tasks', '?')} tasks)" for v in pv],
              lambda i, j: s if isinstance(s := speedups[j].get(names[i]), (int, float)) else None,
              "speed-up vs serial (x), higher is better",
              f"Pool speed-up, {workers} workers on {data['machine'].get('cpu_count')} CPUs — {stamp}")
        ax.axhline(1.0, color="gray", lw=1, ls="--")
        ax.set_xlabel("pool workload (start-up included)")
        ax.legend(fontsize=8)
        save(fig, "pool_speedup.png")
    return made


