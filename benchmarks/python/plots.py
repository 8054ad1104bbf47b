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


def _bars(ax: Any, data: dict[str, Any], workloads: list[str], value, ylabel: str, title: str) -> None:
    cells = cells_by(data)
    peers = data["peers_order"]
    width = 0.8 / len(peers)
    ymin = None
    for i, p in enumerate(peers):
        xs, ys = [], []
        for j, w in enumerate(workloads):
            v = value(cells.get((w, p)))
            if v:
                xs.append(j + (i - (len(peers) - 1) / 2) * width)
                ys.append(v)
                ymin = v if ymin is None else min(ymin, v)
        ax.bar(xs, ys, width, label=data["peer_info"][p]["label"], color=PEER_COLORS.get(p))
    ax.set_yscale("log")
    if ymin:
        ax.set_ylim(bottom=ymin / 3)
    for i, p in enumerate(peers):
        for j, w in enumerate(workloads):
            c = cells.get((w, p))
            if not value(c):
                x = j + (i - (len(peers) - 1) / 2) * width
                ax.text(x, (ymin or 1) / 2.5, (c or {}).get("status", "-"), rotation=90,
                        ha="center", va="bottom", fontsize=7, color="gray")
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels(workloads, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", which="major", alpha=0.3)


def plots(data: dict[str, Any], outdir: Path = DOCS_IMG) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    stamp = f"{data['date']} {data['commit']}{' (quick)' if data.get('quick') else ''}"
    made = []

    def ok(c, key):
        return c[key] if c and c.get("status") == "ok" and c.get(key) else None

    def save(fig: Any, name: str, **layout: Any) -> None:
        fig.tight_layout(**layout)
        p = outdir / f"bench-{name}"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        made.append(p)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [5, 3]})
    _bars(a1, data, [f"stream-{p}" for p in STREAM_MSGS], lambda c: ok(c, "items_per_s"),
          "messages / s (log)", "Streaming, small items: messages per second")
    _bars(a2, data, [f"stream-{p}" for p in STREAM_BIG], lambda c: ok(c, "mb_per_s"),
          "MB / s (log)", "Streaming, large items: MB per second")
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
    _bars(ax, data, PATTERNS, lambda c: ok(c, "items_per_s"), "items / s (log)",
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
        fig, ax = plt.subplots(figsize=(13, 5.2))
        width = 0.8 / max(1, len(names))
        for i, nm in enumerate(names):
            xs, ys = [], []
            for j, v in enumerate(pv):
                for q in v["peers"]:
                    if q.get("name") == nm and isinstance(q.get("speedup_vs_serial"), (int, float)):
                        xs.append(j + (i - (len(names) - 1) / 2) * width)
                        ys.append(q["speedup_vs_serial"])
            ax.bar(xs, ys, width, label=nm)
        ax.axhline(1.0, color="gray", lw=1, ls="--")
        ax.set_xticks(range(len(pv)))
        ax.set_xticklabels([f"{v['name']}\n({v.get('tasks', '?')} tasks)" for v in pv], fontsize=8)
        ax.set_xlabel("pool workload (start-up included)")
        ax.set_ylabel("speed-up vs serial (x), higher is better")
        workers = pres.get("workers", "?") if isinstance(pres, dict) else "?"
        ax.set_title(f"Pool speed-up, {workers} workers on {data['machine'].get('cpu_count')} CPUs — {stamp}",
                     fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        save(fig, "pool_speedup.png")
    return made


