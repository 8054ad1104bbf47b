"""benchmarks/python/report.py: tables, goals, plots and docs/benchmarks.md from a result JSON.

``run.py`` calls these after a run; to redo the plots and the docs from a
saved result without measuring again::

    python benchmarks/python/report.py build/bench/<date>-<commit>.json [--with OTHER.json ...]
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from common import *  # noqa: F401,F403
from common import _label, _procs
from goals import goal_lines, goals  # noqa: F401
from plots import plots  # noqa: F401


# ---- stdout table and goals ----------------------------------------------------


def table_lines(data: dict[str, Any]) -> list[str]:
    cells = cells_by(data)
    peers = data["peers_order"]
    out = [
        f"{'workload':<26} {'peer':<17} {'figure':<34} {'vs mp.Queue':>11}  note",
        "-" * 100,
    ]
    for w in data["workloads_order"]:
        for p in peers:
            c = cells.get((w, p))
            if c is None:
                continue
            if c.get("status") == "ok":
                fig = cell_value_text(c)
                note = c.get("how", "")
            else:
                fig = c.get("status", "?")
                note = status_text(c)
            out.append(f"{w:<26} {p:<17} {fig:<34} {ratio_str(ratio(data, w, p)):>11}  {note}")
        out.append("")
    out.append("vs mp.Queue: speed relative to multiprocessing.Queue measured in this run")
    out.append("(items/s ratio; for pingpong, its median round trip / this one). > 1 = faster.")
    return out




def dask_md(data: dict[str, Any]) -> list[str]:
    """The docs' section on bench_dask: one row per cluster."""
    sec = data.get("dask") or {}
    L = ["## Dask: one worker process with interpreters against worker processes", ""]
    res = sec.get("result") or {}
    if not res.get("rows"):
        return L + [f"Not measured in this run: {sec.get('note') or res.get('note') or 'no figures'}.", ""]
    r0 = res["rows"][0]
    L += ["`benchmarks/python/bench_dask.py`: a `distributed.LocalCluster(processes=True)` (Dask's profiler "
          f"on) runs a graph of {r0.get('tasks', '?')} tasks, each the longest Collatz chain over "
          f"{r0.get('chunk', 0):,} numbers (pure Python), and a task that takes the maximum; best of "
          f"{r0.get('rounds', '?')} rounds. RSS: the peak, summed over the cluster's processes (the "
          "scheduler with the client, nannies, workers). See [Scaling out with Dask](dask.md).", "",
          "| cluster | numbers/s | RSS (MiB) | processes |", "| --- | --- | --- | --- |"]
    for r in res["rows"]:
        if r.get("status") != "ok":
            L.append(f"| {r['label']} | error: {first_line(r.get('error') or '')} | | |")
        else:
            L.append(f"| {r['label']} | {r['numbers_per_s'] / 1e3:,.0f}k | {r['rss_mib']:.0f} | {r['procs']} |")
    return L + [""]




def asgi_md(data: dict[str, Any]) -> list[str]:
    """The docs' section on bench_asgi: one row per server."""
    sec = data.get("asgi")
    if not sec:
        return []  # results from before the section existed
    L = ["## ASGI servers under load", ""]
    res = sec.get("result")
    if sec.get("status") != "ok" or not isinstance(res, dict) or not res.get("rows"):
        return L + [f"Not measured in this run: {sec.get('note', 'no figures')}.", ""]
    L += ["`benchmarks/python/bench_asgi.py`: each server serves `benchmarks/python/asgi_app.py`, a plain "
          "ASGI app that answers every request with a small JSON body after "
          f"{res.get('app_cost_ms', 0):.2f} ms of pure-Python work ({res.get('cost_loops', 0):,} loop "
          "iterations, measured in the benchmark's process), access logs off. Each server is started "
          f"on its own, warmed up for {res.get('warmup_seconds', 1)} s, then loaded with "
          f"`{res.get('wrk')} --latency` against `/` (best of {res.get('rounds', 1)} round(s) by "
          "requests/s, that round's p99; the order of the servers is reversed every other round). wrk "
          "runs on the same 2 cores as the server, so the figures compare the servers, not their capacity. "
          "RSS: the peak, over a few readings during the load, of the summed `VmRSS` of the server's "
          "process and all its descendants (shared pages count once per process).", "",
          "| server | requests/s | every round | p99 | RSS (process tree) | processes | command |",
          "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in res["rows"]:
        cmd = f"`{r['command']}`".replace("|", "/") if r.get("command") else "-"
        if not asgi_ok(r):
            why = first_line(str(r.get("error") or "no figure"), 160).replace("|", "/")
            L.append(f"| {r.get('name')} | {r.get('status', 'error')}: {why} | - | - | - | - | {cmd} |")
            continue
        every = ", ".join(f"{v:,.0f}" for v in r.get("rounds") or [] if isinstance(v, (int, float))) or "-"
        L.append(f"| {r['name']} | {r['rps']:,.0f} | {every} | {r['p99_ms']:.1f} ms | {r['rss_mib']:.1f} MiB | "
                 f"{r.get('procs', '?')} | {cmd} |")
    x, m = res.get("xchannels_over_hypercorn2_rps"), res.get("rss_ratio")
    if isinstance(x, (int, float)) and isinstance(m, (int, float)):
        L += ["", f"{ASGI_XCHANNELS} against {ASGI_REFERENCE}: {x:.2f}x the requests/s with {m:.2f}x the RSS."]
    L.append("")
    return L


def values_lines(data: dict[str, Any]) -> list[str]:
    vals = (data.get("values") or {}).get("result")
    if not vals:
        return []
    L = ["## Values: encode + decode against pickle", "",
         "`benchmarks/python/bench_values.py`: codec = encode into a message and decode again"
         " (`_encode_decode`); put+get = `put_nowait` + `get_nowait` on a local channel;"
         " pickle = `pickle.loads(pickle.dumps(v))`. Best of 5 loops of up to"
         f" {vals.get('n', 0):,} operations (fewer for big values), one interpreter.", "",
         "| payload | what | codec | put+get | pickle | pickle / codec |",
         "| --- | --- | --- | --- | --- | --- |"]

    ns = ns_text
    notes = []
    for r in vals["rows"]:
        what = str(r.get("what", "")).replace("|", "/")
        if r.get("speedup") is None:
            notes.append(f"{r['payload']}: {first_line(r.get('error') or 'no figure', 200)}")
            L.append(f"| {r['payload']} | {what} | error [{len(notes)}] | {ns(r.get('channel_ns'))} | "
                     f"{ns(r.get('pickle_ns'))} | - |")
            continue
        L.append(f"| {r['payload']} | {what} | {ns(r['codec_ns'])} | {ns(r.get('channel_ns'))} | "
                 f"{ns(r['pickle_ns'])} | {r['speedup']:.1f}x |")
    for i, n in enumerate(notes, 1):
        L.append(f"{chr(10) if i == 1 else ''}[{i}] {n.replace('|', '/')}  ")
    L.append("")
    return L




def memcpy_table_lines(data: dict[str, Any]) -> list[str]:
    """Plain-text lines for run.py: the limit and each peer's distance from it."""
    rows = memcpy_rows(data)
    if not rows:
        return []
    res = data["memcpy"]["result"]
    L = [f"{MEMCPY_WORKLOAD} against one copy at memory bandwidth (memmove of {res['distinct_payloads']} "
         f"distinct 1 MiB payloads, single thread: {res['memmove_gbps']:.2f} GB/s):"]
    for r in rows:
        if r["bytes_per_s"] is None:
            L.append(f"  {r['peer']:<17} {r['status']}")
        else:
            tail = "" if r["copies"] else "  (passes references, no copy: not bound by it)"
            L.append(f"  {r['peer']:<17} {si(r['bytes_per_s'], 'B')}/s = {r['of_limit']:.2f}x the limit{tail}")
    return L


def memcpy_md(data: dict[str, Any]) -> list[str]:
    """The docs' paragraph on stream-bytes-1MiB's physical limit."""
    rows = memcpy_rows(data)
    if not rows:
        mc = data.get("memcpy") or {}
        if mc and mc.get("status") != "ok":
            return [f"The memcpy limit of `{MEMCPY_WORKLOAD}` was not measured: {mc.get('note', '?')}.", ""]
        return []
    res = data["memcpy"]["result"]
    llc = res.get("llc") or {}
    info = data["peer_info"]

    def mib(b: Any) -> str:
        return f"{b / 2**20:.0f} MiB" if isinstance(b, (int, float)) else "?"

    srcs = f"sysfs {mib(llc.get('sysfs_bytes'))}, getconf {mib(llc.get('getconf_bytes'))}"
    L = [f"### `{MEMCPY_WORKLOAD}` against the physical limit", "",
         f"Moving a 1 MiB `bytes` to another interpreter or process takes at least one copy of it, and "
         f"a source that is not in the cache is copied at memory bandwidth: that is the limit. In "
         f"`{MEMCPY_WORKLOAD}` the producer cycles through {res['distinct_payloads']} distinct 1 MiB "
         f"payloads ({mib(res.get('set_bytes'))}, made before the clock starts; max(4 x last-level cache, "
         f"64 MiB), with the cache size the larger of {srcs}), so no peer copies from the cache. One "
         f"thread copying the same set in the same run (`benchmarks/python/bench_memcpy.py`, right after "
         f"the workload's cells, best of the run's rounds): `ctypes.memmove` into a reused 1 MiB buffer "
         f"**{res['memmove_gbps']:.2f} GB/s** (the limit below); a new `bytes` per payload "
         f"(`bytes(memoryview(x))`, malloc + copy) {res['alloc_copy_gbps']:.2f} GB/s; memmove of one "
         f"payload again and again, in the cache, {res['hot_memmove_gbps']:.2f} GB/s (what a stream of one "
         f"object put again and again can reach).", "",
         "| peer | MB/s | of the limit |", "| --- | --- | --- |"]
    for r in rows:
        label = info[r["peer"]]["label"]
        if r["bytes_per_s"] is None:
            L.append(f"| {label} | {r['status'].replace('|', '/')} | - |")
        else:
            tail = " (references, no copy)" if not r["copies"] else ""
            L.append(f"| {label} | {si(r['bytes_per_s'], 'B')}/s | {r['of_limit']:.2f}x{tail} |")
    L += ["", "A producer and a consumer run on two cores at once, so a peer that copies on both sides "
          "(xchannels: into the message at put, into the new `bytes` at get) can overlap its copies, and "
          "one that copies only once (the interpreter queues copy at get) can come near 1x; pickling peers "
          "add a pickle and a pipe or shared-memory copy. queue.Queue between threads passes references "
          "and copies nothing, so the limit does not bind it.", ""]
    return L




def _py(data: dict[str, Any]) -> str:
    return str((data.get("python") or {}).get("bench", "?")).split()[0]


def other_pythons_lines(data: dict[str, Any]) -> list[str]:
    """The goals of the runs on other Pythons (run.py --with), for stdout."""
    L = []
    for v, other in sorted((data.get("other_pythons") or {}).items()):
        L += ["", f"Python {v} (run of {other.get('timestamp', '?')}{', quick' if other.get('quick') else ''}):"]
        L += [f"  {line}" for line in goal_lines(other)]
    for path, why in (data.get("other_pythons_missing") or {}).items():
        L += ["", f"not included: {path}: {why}"]
    return L


def other_pythons_md(data: dict[str, Any]) -> list[str]:
    """Every goal on every Python of the run, side by side (run.py --with)."""
    runs = {_py(data): data, **(data.get("other_pythons") or {})}
    if len(runs) < 2:
        return []
    vers = sorted(runs, key=lambda v: tuple(int(x) if x.isdigit() else 0 for x in v.split(".")))
    by = {v: {g["goal"]: g for g in runs[v].get("goals", [])} for v in vers}
    names = list(dict.fromkeys(g["goal"] for v in vers for g in runs[v].get("goals", [])))
    L = ["## Goals on each Python", "",
         "The same goals, measured by `make bench` on each Python in turn on the same machine (3.14 and "
         "3.15 are Debian sid's, run in the sid root of `.ci/sid`; "
         + ", ".join(f"{v}: {'quick run, ' if runs[v].get('quick') else ''}{runs[v].get('timestamp', '?')}"
                     for v in vers)
         + "). Each run compares its peers on its own Python: CPython's interpreter queue and "
         f"`{STDLIB_POOL}` (3.14+) are that Python's. The C++ micro-benchmarks do not depend on Python "
         "and run with the main run only.", "",
         "| goal | " + " | ".join(f"Python {v}" for v in vers) + " |", "| --- |" + " --- |" * len(vers)]
    for n in names:
        row = []
        for v in vers:
            g = by[v].get(n)
            row.append(f"**{g['status']}** {g['detail']}".replace("|", "/") if g else "-")
        L.append(f"| {n} | " + " | ".join(row) + " |")
    for path, why in (data.get("other_pythons_missing") or {}).items():
        L += ["", f"Not included: `{path}` ({why})."]
    L.append("")
    return L




# ---- docs/benchmarks.md --------------------------------------------------------


def _reading(data: dict[str, Any]) -> list[str]:
    cells = cells_by(data)
    # ProcessChannel is xchannels too: it is read against the process peers
    # below, not counted as a peer of Channel.
    peers = [p for p in data["peers_order"] if p not in ("xchannels", PROCESS_PEER)]
    wins, close, behind = [], [], []
    for w in data["workloads_order"]:
        x = figure(cells.get((w, "xchannels")))
        if x is None:
            continue
        others = [(figure(cells.get((w, p))), p) for p in peers]
        others = [(v, p) for v, p in others if v is not None]
        if not others:
            continue
        # Across interpreters/processes only: queue.Queue stays in one interpreter.
        cross = [(v, p) for v, p in others if p != "queue-thread"] or others
        best, bp = max(cross)
        r = x / best
        label = data["peer_info"][bp]["label"]
        if r >= 1.25:
            wins.append(f"{w} ({r:.3g}x the best cross-interpreter/process peer, {label})")
        elif r >= 0.8:
            close.append(f"{w} ({label} at {1 / r:.2g}x of xchannels)")
        else:
            behind.append(f"{w} ({label} is {1 / r:.3g}x faster)")
    out = []
    if wins:
        out.append("- **xchannels leads** in: " + "; ".join(wins) + ".")
    if close:
        out.append("- **A peer is close** (within 25 %) in: " + "; ".join(close) + ".")
    if behind:
        out.append("- **xchannels is slower** in: " + "; ".join(behind) + ".")
    out += _process_reading(data)
    qt_ahead = []
    for w in data["workloads_order"]:
        x, q = figure(cells.get((w, "xchannels"))), figure(cells.get((w, "queue-thread")))
        if x and q and q > x:
            qt_ahead.append(f"{w} ({q / x:.3g}x)")
    if qt_ahead:
        out.append(
            "- `queue.Queue` between two threads of one interpreter beats xchannels in: "
            + "; ".join(qt_ahead)
            + ". It passes references under one GIL: no copy, no decode, and no parallel "
            "Python, so for large bytes it measures reference passing only."
        )
    lim = [r for r in memcpy_rows(data) if r["of_limit"] is not None and r["copies"]]
    if lim:
        gbps = data["memcpy"]["result"]["memmove_gbps"]
        out.append(f"- `{MEMCPY_WORKLOAD}` against its physical limit, one copy out of the cache at "
                   f"{gbps:.3g} GB/s (single-thread memcpy, same payloads, same run): "
                   + "; ".join(f"{data['peer_info'][r['peer']]['label']} {r['of_limit']:.2f}x" for r in lim)
                   + " (see below the streams table).")
    pv = pool_variants(((data.get("pool") or {}).get("result")))
    if pv:
        parts = []
        for v in pv:
            xs = next((q for q in v["peers"] if "xchannels" in str(q.get("name"))), None)
            mp = next((q for q in v["peers"] if str(q.get("name")) == "multiprocessing.Pool"), None)
            if xs and isinstance(xs.get("seconds"), (int, float)) and xs["seconds"] > 0:
                sv = xs.get("speedup_vs_serial")
                t = f"{v['name']}: {xs['seconds']:.3g} s"
                if isinstance(sv, (int, float)):
                    t += f", {sv:.2g}x serial"
                if mp and isinstance(mp.get("seconds"), (int, float)):
                    t += f", {mp['seconds'] / xs['seconds']:.2g}x multiprocessing.Pool"
                parts.append(t)
        if parts:
            out.append("- Pool (start-up included, 2 workers on 2 cores): xchannels.Pool " + "; ".join(parts) + ".")
        mem = ((data.get("pool") or {}).get("result") or {}).get("memory")
        if isinstance(mem, dict):
            by = {p["name"]: p for p in mem.get("peers", []) if "added_mib" in p}
            xs, sp = by.get("xchannels.Pool"), by.get("multiprocessing.Pool[spawn]")
            if xs and sp and mem.get("spawn_over_xchannels"):
                out.append(f"- Pool memory ({mem.get('metric')}): 2 workers add {xs['added_mib']:.1f} MiB with "
                           f"xchannels.Pool, {sp['added_mib']:.1f} MiB with multiprocessing.Pool[spawn] "
                           f"({mem['spawn_over_xchannels']:.2g}x).")
    return out


def _process_reading(data: dict[str, Any]) -> list[str]:
    """xchannels ProcessChannel against the faster of the process peers
    (multiprocessing.Queue, faster-fifo), workload by workload."""
    cells = cells_by(data)
    if PROCESS_PEER not in data["peers_order"]:
        return []
    parts = []
    for w in data["workloads_order"]:
        x = figure(cells.get((w, PROCESS_PEER)))
        others = [(v, p) for p in PROCESS_REFS if (v := figure(cells.get((w, p)))) is not None]
        if x is None or not others:
            continue
        best, bp = max(others)
        parts.append(f"{w} {ratio_str(x / best)} {_label(data, bp)}")
    if not parts:
        return []
    return [f"- **{_label(data, PROCESS_PEER)}** (processes) against the faster of the other process peers "
            "(multiprocessing.Queue, faster-fifo), > 1 = ProcessChannel faster: " + "; ".join(parts) + "."]


def docs_markdown(data: dict[str, Any], json_rel: str, images: dict[str, str]) -> str:
    cells = cells_by(data)
    peers = data["peers_order"]
    info = data["peer_info"]
    m = data["machine"]
    L: list[str] = []
    L.append("# Benchmarks")
    L.append("")
    L.append(
        "<!-- Generated by benchmarks/python/run.py (or report.py) from "
        f"{json_rel}; do not edit by hand. -->"
    )
    L.append("")
    quick = " **This is a `--quick` run: short cells, rough figures.**" if data.get("quick") else ""
    L.append(
        f"Run of {data['date']} at commit `{data['commit']}`, on {m.get('cpu_model', '?')} "
        f"({m.get('cpu_count', '?')} CPUs), {m.get('uname', '?')}; "
        f"Python {data['python'].get('bench', '?').split()[0]}; compiler {data.get('compiler', '?')}. "
        f"The whole run took {data.get('run_seconds', 0):.0f} s.{quick}"
    )
    L.append("")
    L.append(
        "Every figure below was measured in the same run as the others, on a shared, "
        "noisy 2-core machine: read the ratios, not the absolute numbers. "
        f"Each cell is the best of {data.get('rounds', 1)} pass(es) over the whole grid (the host's "
        "placement of the two vCPUs changes cross-core speed by up to 2x for minutes at a time). "
        f"Raw data: `{json_rel}`. Reproduce with `make bench` (or `make bench QUICK=1`)."
    )
    L.append("")
    L.append("## Goals")
    L.append("")
    for g in data.get("goals", []):
        L.append(f"- **{g['status']}** {g['goal']}: {g['detail']}")
    L.append("")
    L += other_pythons_md(data)
    L.append("## Peers")
    L.append("")
    L.append("| peer | what | actors run in |")
    L.append("| --- | --- | --- |")
    for p in peers:
        L.append(f"| {p} | {info[p]['label']} | {info[p]['where']} |")
    L.append("")
    L.append(
        "Time runs from the first put to the last get seen by the consumers, after "
        "warm-up rounds; interpreter and process start-up are excluded. Each cell is "
        "calibrated to about "
        f"{data.get('target_seconds', 0):g} s per round and repeated up to 3 times; "
        "the median is kept. Workloads are defined in `benchmarks/README.md`."
    )
    L.append("")
    L.append("## Reading")
    L.append("")
    L += _reading(data)
    L += [
        "- The machine has 2 cores. `mpmc-2x2` runs 4 busy actors, `fanout-1x2` 3 and "
        "`select-4` 5: on 2 cores they show contention and scheduling, not scaling; "
        "compare them between peers, not with the streams.",
        "- CPython's interpreter queues (3.13's `test.support.interpreters.queues`, 3.14's public "
        "`concurrent.interpreters.create_queue()`) poll: a blocking `get`/`put` that finds "
        "nothing sleeps 10 ms and retries, which is why their ping-pong round trip is "
        "~10 ms. On 3.13 they were run with `syncobj=True` (cross-interpreter data, no pickle); "
        "3.13.0's default pickles every item. A dict is not cross-interpreter data, so for "
        "`stream-dict-10` their data queue is created with `syncobj=False` and pickles, as a user's "
        "would have to (3.14's queue pickles it by itself). For `SharedBuffer-64MiB` they carry a "
        "shared `memoryview` of a 64 MiB `bytearray`, their nearest zero-copy equivalent "
        "(it must not outlive the interpreter that made it).",
        "- `SharedBuffer-64MiB` hands over a reference to the same 64 MiB block: its MB/s "
        "is nominal (the consumer does not read the bytes). The process peers cannot "
        "hand it over without copying it (multiprocessing.Queue and faster-fifo pickle it, "
        "ProcessChannel copies it through its ring): n/a; see `bytes-64MiB`.",
        "- multiprocessing.Queue and faster-fifo pickle every item and run their actors in "
        "processes started with `spawn` (start-up excluded). `select-4` and, except for "
        "xchannels and faster-fifo, `batch` are emulated where a peer has no such API; "
        "see the notes in the tables.",
        "- `xchannels-process` is xchannels' `ProcessChannel` with processes as actors, started "
        "with `spawn` like multiprocessing.Queue's and faster-fifo's (start-up excluded), so it is "
        "read against those two. Each item is encoded in the same flat form as a `Channel`'s "
        "(no pickle), copied into a ring in a shared-memory segment (a memfd) that every actor "
        "maps, and decoded into a new object by the consumer; the channel reaches each spawned "
        "process as a duplicated file descriptor. Its data rings hold max(64 MiB, 3 x the payload "
        "+ 1 MiB), as faster-fifo's buffers do; its control queues the default 1 MiB. `select-4` "
        "uses `xchannels.select`, which takes ProcessChannels too; there is no batch API, so "
        "`batch` is emulated as for multiprocessing.Queue.",
        "- `mpmc-2x2` ends, for every peer, with an untimed check round: each producer puts "
        "distinct ints in order and the consumers count every one they get; any int lost, "
        "received twice or never put fails the cell.",
    ]
    L.append("")
    L.append("## Streams: one producer, one consumer")
    L.append("")
    if "throughput" in images:
        L.append(f"![Throughput by payload]({images['throughput']})")
        L.append("")
    L += _wide_table(data, [w for w in data["workloads_order"] if w.startswith("stream-")])
    L.append("")
    stream_how = [f"{w} / {p}: {c['how']}" for w in data["workloads_order"] if w.startswith("stream-")
                  for p in peers if (c := cells.get((w, p))) and c.get("how")]
    if stream_how:
        L.append("How: " + "; ".join(stream_how) + ".")
        L.append("")
    L += memcpy_md(data)
    L.append("## Round-trip latency")
    L.append("")
    if "latency" in images:
        L.append(f"![Ping-pong latency]({images['latency']})")
        L.append("")
    L += _wide_table(data, ["pingpong"])
    L.append("")
    L.append("## Patterns: several producers or consumers, select, batches")
    L.append("")
    if "patterns" in images:
        L.append(f"![Patterns]({images['patterns']})")
        L.append("")
    L += _wide_table(data, [w for w in PATTERNS if w in data["workloads_order"]])
    L.append("")
    how = []
    for w in ("batch", "select-4"):
        for p in peers:
            c = cells.get((w, p))
            if c and c.get("how"):
                how.append(f"{w} / {p}: {c['how']}")
    if how:
        L.append("How each peer did `batch` and `select-4`: " + "; ".join(how) + ".")
        L.append("")
    L += values_lines(data)
    L.append("## Pool")
    L.append("")
    pool = data.get("pool") or {}
    if pool.get("status") == "ok":
        if "pool_speedup" in images:
            L.append(f"![Pool speed-up]({images['pool_speedup']})")
            L.append("")
        L.append("Figures from `benchmarks/python/bench_pool.py`: each time runs from pool creation to the "
                 "last result with the pool shut down (start-up included), 2 workers, best of the runs; "
                 "task arguments are built before the clock starts. The first run of `startup` in the "
                 "process pays first-use costs (imports; forkserver's server process, which later pools "
                 "reuse), so it is shown too.")
        L.append("")
        pv = pool_variants(pool.get("result"))
        res = pool.get("result")
        if pv:
            names = pool_peer_names(pv)
            L.append("| workload | " + " | ".join(names) + " |")
            L.append("| --- |" + " --- |" * len(names))
            for v in pv:
                row = []
                for nm in names:
                    q = next((q for q in v["peers"] if q.get("name") == nm), None)
                    if q is None or not isinstance(q.get("seconds"), (int, float)):
                        row.append(str((q or {}).get("error", "-"))[:60].replace("|", "/"))
                    else:
                        sv = q.get("speedup_vs_serial")
                        runs = q.get("runs") or []
                        if isinstance(sv, (int, float)):
                            extra_txt = f" ({sv:.3g}x serial)"
                        elif len(runs) > 1 and isinstance(runs[0], (int, float)):
                            extra_txt = f" (first run {runs[0]:.3g} s)"  # start-up: first use in the process
                        else:
                            extra_txt = ""
                        row.append(f"{q['seconds']:.3g} s" + extra_txt)
                L.append(f"| {v['name']} ({v.get('tasks', '?')} tasks) | " + " | ".join(row) + " |")
            L.append("")
            L += pool_vs_lines(pv)
            for v in pv:
                if v.get("note"):
                    L.append(f"- {v['name']}: {v['note']}")
            L += memory_md((res or {}).get("memory"))
            reuse = (res or {}).get("reusable")
            if isinstance(reuse, dict) and isinstance(reuse.get("later_median_ms"), (int, float)):
                L += ["", f"`reusable_pool(2)`, a {reuse.get('tasks', 4)}-task `map` of a trivial function "
                      "(a fresh process, so the first call is its first pool): " + reusable_text(reuse) + "."]
            extra = {k: v for k, v in res.items() if k not in ("variants",) and not isinstance(v, (dict, list))}
            if extra:
                L.append("")
                L.append("Settings: " + ", ".join(f"{k} = {v}" for k, v in extra.items()) + ".")
            pool_rows = []
        else:
            pool_rows = flatten(res)[:60]
            L.append("| figure | value |")
            L.append("| --- | --- |")
        for k, v in pool_rows:
            if isinstance(v, float):
                v = f"{v:.4g}"
            L.append(f"| {k} | {v} |")
    else:
        L.append(f"Not measured in this run: {pool.get('note', 'no pool figures')}.")
    L.append("")
    L += asgi_md(data)
    L += dask_md(data)
    L.append("## C++ micro-benchmarks: Channel against raw moodycamel")
    L.append("")
    cpp = data.get("cpp") or {}
    if cpp.get("status") == "ok":
        L.append(
            "`build/bench/channel_bench` (Google Benchmark), int64 items, threads in one "
            "process. Ratio > 1 means the Channel flavour is faster than the reference "
            "(raw = busy-polling `ConcurrentQueue`, blocking = `BlockingConcurrentQueue`). "
            "RawFutex is no queue at all: two words and a futex wait and wake per message, so "
            "both sides park on every message. It is the floor of a parked round trip on this "
            "machine, against which the pingpong-busy goal reads."
        )
        L.append("")
        if cpp.get("failed"):
            L.append("Failed or timed out: " + "; ".join(f"{k} ({v})" for k, v in cpp["failed"].items()) + ".")
            L.append("")
        L.append("| workload | flavour | figure | vs raw moodycamel | vs blocking moodycamel |")
        L.append("| --- | --- | --- | --- | --- |")
        for r in cpp_rows(cpp):
            L.append(f"| {r['workload']} | {r['flavor']} | {r['figure']} | "
                     f"{ratio_str(r['vs_raw'])} | {ratio_str(r['vs_blocking'])} |")
    else:
        L.append(f"Not measured in this run: {cpp.get('note', 'no C++ figures')}.")
    L.append("")
    return "\n".join(L)


def pool_vs_lines(pv: list[dict[str, Any]]) -> list[str]:
    """xchannels.Pool against every other pool peer, per workload, as time
    ratios (the peer's seconds / xchannels.Pool's: > 1 = xchannels faster)."""
    names = [n for n in pool_peer_names(pv) if n != "xchannels.Pool"]
    L = ["xchannels.Pool against each peer, same workloads: the peer's time / xchannels.Pool's "
         "(> 1 = xchannels.Pool faster; start-up included):", "",
         "| workload | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for v in pv:
        secs = {q.get("name"): q.get("seconds") for q in v["peers"]}
        xs = secs.get("xchannels.Pool")
        if not isinstance(xs, (int, float)) or xs <= 0:
            continue
        row = []
        for nm in names:
            t = secs.get(nm)
            row.append(ratio_str(t / xs) if isinstance(t, (int, float)) and t > 0 else "-")
        L.append(f"| {v['name']} | " + " | ".join(row) + " |")
    L.append("")
    return L




def memory_md(mem: Any) -> list[str]:
    """bench_pool's memory figures (``result["memory"]``) as a table."""
    if not isinstance(mem, dict) or not mem.get("peers"):
        return []
    metric = mem.get("metric", "?")
    L = ["", f"### Memory: what a {mem.get('workers', 2)}-worker pool adds", "",
         f"Each pool measured in a fresh process: the {metric} "
         + ("(proportional set size, `/proc/<pid>/smaps_rollup`: a page shared by k processes counts "
            "1/k in each, so forked workers' shared pages are not counted twice) " if metric == "PSS" else "")
         + "of that process and all its descendants, before the pool is created (the pool's and the "
         "task's modules already imported) and once both workers have run a task (a 50 ms sleep) — "
         "xchannels.Pool's workers are in-process interpreters, so its figure is the parent's growth. "
         "Helper processes (the forkserver, the resource tracker that spawn and forkserver start) are "
         "counted, and shown apart. RSS added: the same sum of RSS, which counts shared pages once per "
         "process.", "",
         f"| pool | {metric} added | parent | workers | helpers | RSS added |",
         "| --- | --- | --- | --- | --- | --- |"]
    for p in mem["peers"]:
        if "error" in p:
            L.append(f"| {p['name']} | error: {str(p['error'])[:80].replace('|', '/')} | | | | |")
            continue
        helpers = f" ({', '.join(p['helpers'])})" if p.get("helpers") else ""
        L.append(f"| {p['name']} | **{p['added_mib']:.1f} MiB** | {p['parent_added_mib']:.1f} MiB | "
                 f"{p['workers_mib']:.1f} MiB | {p['helpers_mib']:.1f} MiB{helpers} | {p['rss_added_mib']:.1f} MiB |")
    r = mem.get("spawn_over_xchannels")
    by = {p["name"]: p for p in mem["peers"] if "added_mib" in p}
    xs, sp = by.get("xchannels.Pool"), by.get("multiprocessing.Pool[spawn]")
    if r and xs and sp and xs["added_mib"] > 0:
        L.append("")
        L.append(f"multiprocessing.Pool[spawn] adds {r:.2g}x the memory xchannels.Pool adds ({metric}); "
                 f"its two worker processes alone, without the resource tracker, "
                 f"{sp['workers_mib'] / xs['added_mib']:.2g}x; by the sum of RSS, "
                 f"{sp['rss_added_mib'] / xs['rss_added_mib']:.2g}x.")
    return L


def _wide_table(data: dict[str, Any], workloads: list[str]) -> list[str]:
    cells = cells_by(data)
    peers = data["peers_order"]
    info = data["peer_info"]
    L = ["| workload | " + " | ".join(info[p]["label"] for p in peers) + " |",
         "| --- |" + " --- |" * len(peers)]
    notes = []
    for w in workloads:
        row = []
        for p in peers:
            c = cells.get((w, p))
            if c and c.get("status") == "ok":
                r = ratio(data, w, p)
                row.append(cell_value_text(c) + (f" **{ratio_str(r)}**" if r and p != BASELINE else ""))
            else:
                st = (c or {}).get("status", "not run")
                notes.append(f"{w} / {p}: {status_text(c)}")
                row.append(st + f" [{len(notes)}]")
        L.append(f"| {w} | " + " | ".join(row) + " |")
    L.append("")
    L.append("Bold: speed relative to multiprocessing.Queue in this run (> 1 = faster).")
    for i, n in enumerate(notes, 1):
        L.append(f"{'' if i > 1 else chr(10)}[{i}] {n.replace('|', '/')}  ")
    return L


def add_other_pythons(data: dict[str, Any], paths: list[str]) -> None:
    """Keep each run on another Python (run.py --out FILE) whole under
    ``other_pythons``, by version; unreadable files under ``other_pythons_missing``."""
    for path in paths:
        try:
            other = json.loads(Path(path).read_text())
            data.setdefault("other_pythons", {})[other["python"]["bench"].split()[0]] = other
        except (OSError, ValueError, KeyError, AttributeError) as e:
            data.setdefault("other_pythons_missing", {})[path] = f"{type(e).__name__}: {e}"


def write_docs(data: dict[str, Any], json_path: Path, made: list[Path]) -> Path:
    """docs/benchmarks.md; the run's JSON becomes the one tracked copy,
    benchmarks/results/latest.json, which the page links as its raw data."""
    if json_path.resolve() != LATEST.resolve():
        LATEST.parent.mkdir(parents=True, exist_ok=True)
        LATEST.write_text(json.dumps(data, indent=1) + "\n")
    images = {p.stem.removeprefix("bench-"): f"img/{p.name}" for p in made}
    out = DOCS / "benchmarks.md"
    out.write_text(docs_markdown(data, str(LATEST.relative_to(ROOT)), images), encoding="utf-8")
    return out


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="table, goals, plots and docs/benchmarks.md from a saved run")
    ap.add_argument("json", help="a run's JSON (build/bench/*.json or benchmarks/results/latest.json)")
    ap.add_argument("--with", dest="with_results", action="append", default=[], metavar="FILE",
                    help="a run on another Python (run.py --out FILE) to include; repeatable")
    args = ap.parse_args()
    path = Path(args.json)
    data = json.loads(path.read_text())
    add_other_pythons(data, args.with_results)
    print("\n".join(table_lines(data)))
    print("\n".join(goal_lines(data) + other_pythons_lines(data)))
    made = plots(data)
    print("plots:", ", ".join(str(p.relative_to(ROOT)) for p in made))
    print("docs:", write_docs(data, path, made).relative_to(ROOT))


if __name__ == "__main__":
    main()
