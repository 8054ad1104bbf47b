"""benchmarks/python/report.py: tables, goals, plots and docs/benchmarks.md from a result JSON.

``run.py`` calls these after a run; to redo the plots and the docs from a
saved result without measuring again::

    python benchmarks/python/report.py benchmarks/results/<date>-<commit>.json
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
DOCS_IMG = DOCS / "img"

BASELINE = "mp-queue"
# xchannels.ProcessChannel with processes as actors, and the peers whose
# actors are processes too, that its goals compare it with.
PROCESS_PEER = "xchannels-process"
PROCESS_REFS = ["mp-queue", "faster-fifo"]
# Streams with a ProcessChannel goal: >= 10x multiprocessing.Queue and >= 5x
# faster-fifo on each.
PROCESS_STREAMS = ["int", "5-tuple", "bytes-1KiB"]
STREAM_MSGS = ["int", "5-tuple", "dict-10", "str-100", "bytes-1KiB"]
STREAM_BIG = ["bytes-1MiB", "bytes-64MiB", "SharedBuffer-64MiB"]
PATTERNS = ["mpmc-2x2", "fanout-1x2", "select-4", "batch"]
# The workload whose physical limit (one copy at memory bandwidth) run.py
# measures with bench_memcpy.py ("memcpy" in the result).
MEMCPY_WORKLOAD = "stream-bytes-1MiB"
# bench_values payloads with a goal of their own: encode+decode >= 5x pickle.
VALUES_GOAL_PAYLOADS = ["5-tuple", "dict-10", "list-100-int", "list-100-records", "dict-1000"]
# CPython's own interpreter queue (concurrent.interpreters on 3.14+, the test
# package's on 3.13) and pool (InterpreterPoolExecutor, 3.14+): the peers
# users of sub-interpreters pick first.
STDLIB_QUEUE = "interp-queues"
STDLIB_POOL = "InterpreterPoolExecutor"
# bench_asgi's server rows that the ASGI goals compare.
ASGI_XCHANNELS = "xchannels workers x2"
ASGI_REFERENCE = "hypercorn -w 2"

# ---- formatting -----------------------------------------------------------------


def si(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    for div, suf in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suf}{unit}"
    return f"{x:.3g}{unit}"


def us(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x / 1000:.3g} ms"
    return f"{x:.3g} µs"


def ns_text(v: Any) -> str:
    """Nanoseconds, as µs from 10,000 ns on."""
    if not isinstance(v, (int, float)):
        return "-"
    return f"{v:.0f} ns" if v < 10_000 else f"{v / 1e3:,.1f} µs"


def ratio_str(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r:.3g}x" if r < 100 else f"{r:,.0f}x"


def cells_by(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["workload"], c["peer"]): c for c in data.get("cells", [])}


def figure(c: dict[str, Any] | None) -> float | None:
    """The cell's headline figure, higher = better (items/s, or round trips/s)."""
    if not c or c.get("status") != "ok":
        return None
    if "rt_median_us" in c:
        return 1e6 / c["rt_median_us"]
    return c.get("items_per_s")


def ratio(data: dict[str, Any], workload: str, peer: str) -> float | None:
    """Speed relative to multiprocessing.Queue in the same run (> 1 = faster)."""
    cells = cells_by(data)
    a, b = figure(cells.get((workload, peer))), figure(cells.get((workload, BASELINE)))
    if a is None or b is None or b == 0:
        return None
    return a / b


def status_text(c: dict[str, Any] | None) -> str:
    if c is None:
        return "not run"
    st = c.get("status")
    if st == "n/a":
        return f"n/a: {c.get('reason', '')}"
    if st in ("error", "timeout", "skipped"):
        return f"{st}: {first_line(c.get('error') or c.get('reason') or '')}"
    return ""


def first_line(s: str, n: int = 100) -> str:
    lines = [ln for ln in s.strip().splitlines() if ln.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= n else text[: n - 3] + "..."


def cell_value_text(c: dict[str, Any] | None, short: bool = False) -> str:
    if not c or c.get("status") != "ok":
        st = (c or {}).get("status", "not run")
        return st if short else status_text(c)
    if "rt_median_us" in c:
        return f"{us(c['rt_median_us'])} (p99 {us(c['rt_p99_us'])})"
    t = f"{si(c['items_per_s'])}/s"
    if c["workload"].startswith("stream-bytes") or "Buffer" in c["workload"]:
        t += f", {si(c['mb_per_s'] * 1e6, 'B')}/s"
    return t


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


def goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    cells = cells_by(data)
    res = []

    def add(name: str, ok: bool | None, detail: str) -> None:
        status = "PASS" if ok else ("MISS" if ok is not None else "N/A")  # None: not measured
        res.append({"goal": name, "status": status, "detail": detail})

    c = cells.get(("stream-int", "xchannels"))
    r = ratio(data, "stream-int", "xchannels")
    if figure(c) is None or r is None:
        add("stream-int >= 3M msg/s and >= 30x multiprocessing.Queue", None,
            f"no figure ({status_text(c) or 'baseline missing'})")
    else:
        add("stream-int >= 3M msg/s and >= 30x multiprocessing.Queue",
            c["items_per_s"] >= 3e6 and r >= 30,
            f"{si(c['items_per_s'])} msg/s, {ratio_str(r)} multiprocessing.Queue")
    c = cells.get(("stream-5-tuple", "xchannels"))
    r = ratio(data, "stream-5-tuple", "xchannels")
    if r is None:
        add("stream-5-tuple >= 15x multiprocessing.Queue", None,
            f"no figure ({status_text(c) or 'baseline missing'})")
    else:
        add("stream-5-tuple >= 15x multiprocessing.Queue", r >= 15,
            f"{si(c['items_per_s'])} msg/s, {ratio_str(r)} multiprocessing.Queue")
    # Dicts, as real programs send them; against the peers that pickle them.
    name = "stream-dict-10 >= 10x multiprocessing.Queue and >= 3x CPython's interpreter queues"
    c = cells.get(("stream-dict-10", "xchannels"))
    r = ratio(data, "stream-dict-10", "xchannels")
    x, iq = figure(c), figure(cells.get(("stream-dict-10", "interp-queues")))
    if x is None or r is None or iq is None:
        why = status_text(c) if x is None else (
            "multiprocessing.Queue missing" if r is None else
            f"interp-queues: {status_text(cells.get(('stream-dict-10', 'interp-queues'))) or 'not run'}")
        add(name, None, f"no figure ({why})")
    else:
        add(name, r >= 10 and x / iq >= 3,
            f"{si(x)} msg/s, {ratio_str(r)} multiprocessing.Queue, "
            f"{ratio_str(x / iq)} interp queues (pickled, {si(iq)} msg/s)")
    c = cells.get(("pingpong", "xchannels"))
    if figure(c) is None:
        add("pingpong round trip <= 10 µs", None, f"no figure ({status_text(c)})")
    else:
        add("pingpong round trip <= 10 µs", c["rt_median_us"] <= 10,
            f"median {us(c['rt_median_us'])}, p99 {us(c['rt_p99_us'])}")
    res += stdlib_queue_goals(data)
    # Issue 15: the parking path, with a busy process on every core.
    c = cells.get(("pingpong-busy", "xchannels"))
    m = cells.get(("pingpong-busy", "mp-queue"))
    name = "pingpong-busy round trip <= 5 µs (cores busy: waiters park)"
    if figure(c) is None:
        add(name, None, f"no figure ({status_text(c)})")
    else:
        vs = f", multiprocessing.Queue {us(m['rt_median_us'])}" if figure(m) is not None else ""
        floor = next((r for r in cpp_rows(data.get("cpp") or {})
                      if r["workload"] == "PingPong" and r["flavor"] == "RawFutex"), None)
        if floor is not None and floor["figure"] != "-":
            vs += f"; floor of a round trip where both sides park (C++ raw futex, idle cores): {floor['figure']}"
        add(name, c["rt_median_us"] <= 5,
            f"median {us(c['rt_median_us'])}, p99 {us(c['rt_p99_us'])}{vs}")
    res += process_goals(data)
    vals = (data.get("values") or {}).get("result")
    vrows = {r["payload"]: r for r in (vals or {}).get("rows", [])}
    for payload in VALUES_GOAL_PAYLOADS:
        row = vrows.get(payload)
        name = f"{payload} encode+decode >= 5x faster than pickle"
        if row is None or row.get("speedup") is None:
            add(name, None, f"no figure ({first_line(row['error'])})" if row and row.get("error") else "no figure")
        else:
            add(name, row["speedup"] >= 5,
                f"{ns_text(row['codec_ns'])} vs pickle {ns_text(row['pickle_ns'])}, {row['speedup']:.1f}x")
    cpp = data.get("cpp") or {}
    spsc = next((r for r in cpp_rows(cpp) if r["workload"] == "Spsc" and r["flavor"] == "Unbounded"), None) \
        if cpp.get("status") == "ok" else None
    if spsc is None or spsc["vs_raw"] is None:
        add("C++ SPSC Channel<int64_t> >= 50% of raw moodycamel", None, "no figure")
    else:
        add("C++ SPSC Channel<int64_t> >= 50% of raw moodycamel", spsc["vs_raw"] >= 0.5,
            f"{spsc['figure']}, {spsc['vs_raw']:.2f}x raw (median of repetitions)")
    pv = pool_variants(((data.get("pool") or {}).get("result"))) or []

    def pool_peer(variant: str, peer: str) -> dict[str, Any] | None:
        v = next((v for v in pv if v.get("name") == variant), None)
        return next((q for q in v["peers"] if q.get("name") == peer), None) if v else None

    pres = (data.get("pool") or {}).get("result") or {}
    method = pres.get("mp_start_method") if isinstance(pres, dict) else None
    mp_name = f"multiprocessing.Pool ({method})" if method else "multiprocessing.Pool"

    def secs(variant: str, peer: str) -> float | None:
        q = pool_peer(variant, peer)
        s = (q or {}).get("seconds")
        return float(s) if isinstance(s, (int, float)) and s > 0 else None

    def speed_goal(name: str, variant: str, refs: list[tuple[str, str, float]],
                   also: list[tuple[str, str]]) -> None:
        """xchannels.Pool's speed on ``variant`` >= factor x each reference
        (speed = 1 / seconds, start-up included); ``also``: peers shown only."""
        xs = secs(variant, "xchannels.Pool")
        found = [(label, secs(variant, peer), factor) for peer, label, factor in refs]
        got = [(label, s, factor) for label, s, factor in found if s is not None]
        if xs is None or len(got) < len(found):
            lacking = [label for label, s, _ in found if s is None] + ([] if xs else ["xchannels.Pool"])
            add(name, None, "no figure (" + ", ".join(lacking) + " not measured"
                + (f"; {STDLIB_POOL} is CPython 3.14+" if STDLIB_POOL in lacking else "") + ")")
            return
        shown = [f"{s / xs:.2f}x {label}" for label, s, _ in got]
        for peer, label in also:
            other = secs(variant, peer)
            if other is not None:
                shown.append(f"{other / xs:.2f}x {label}")
        add(name, all(s / xs >= factor for _, s, factor in got),
            f"xchannels.Pool {xs:.3g} s: " + ", ".join(shown) + " (time ratios, start-up included)")

    # CPU-bound map (the seed workload).
    speed_goal(f"Pool big (CPU-bound map) >= 0.95x {mp_name} and >= 1.75x serial", "big",
               [("multiprocessing.Pool", mp_name, 0.95), ("serial", "serial", 1.75)],
               [("multiprocessing.Pool[spawn]", "mp.Pool[spawn]"),
                ("multiprocessing.Pool[forkserver]", "mp.Pool[forkserver]")])
    # Per-task submit: messaging cost per task.
    speed_goal(f"Pool small-submit (one submit per task) >= 1.5x {mp_name}", "small-submit",
               [("multiprocessing.Pool", mp_name, 1.5)],
               [("ProcessPoolExecutor", "ProcessPoolExecutor")])
    # Moving data to the workers.
    speed_goal(f"Pool data-bytes (48 x 1 MiB bytes) >= 2x {mp_name} and >= 3x multiprocessing.Pool[forkserver]",
               "data-bytes",
               [("multiprocessing.Pool", mp_name, 2.0),
                ("multiprocessing.Pool[forkserver]", "mp.Pool[forkserver]", 3.0)],
               [("multiprocessing.Pool[spawn]", "mp.Pool[spawn]"),
                ("ProcessPoolExecutor", "ProcessPoolExecutor")])
    # Start-up: Pool(2) + one trivial task + shutdown; lower time is better.
    name = "Pool startup time <= multiprocessing.Pool[forkserver]'s and <= 0.5x multiprocessing.Pool[spawn]'s"
    xs, fs, sp = (secs("startup", p) for p in
                  ("xchannels.Pool", "multiprocessing.Pool[forkserver]", "multiprocessing.Pool[spawn]"))
    if xs is None or fs is None or sp is None:
        add(name, None, "no figure")
    else:
        fk = secs("startup", "multiprocessing.Pool")
        add(name, xs / fs <= 1.0 and xs / sp <= 0.5,
            f"xchannels.Pool {xs * 1e3:.0f} ms = {xs / fs:.2f}x forkserver's {fs * 1e3:.0f} ms, "
            f"{xs / sp:.2f}x spawn's {sp * 1e3:.0f} ms"
            + (f" ({mp_name}: {fk * 1e3:.0f} ms)" if fk else "")
            + " (best runs: forkserver's server process is already up)")

    # The same for the first pool of the process, as a script meets it: each
    # peer's first run (imports; forkserver starts its server process).
    def first(peer: str) -> float | None:
        runs = (pool_peer("startup", peer) or {}).get("runs") or []
        return float(runs[0]) if runs and isinstance(runs[0], (int, float)) and runs[0] > 0 else None

    name = "Pool startup, first pool of the process, <= forkserver's and <= 0.5x spawn's"
    xs, fs, sp = (first(p) for p in
                  ("xchannels.Pool", "multiprocessing.Pool[forkserver]", "multiprocessing.Pool[spawn]"))
    if xs is None or fs is None or sp is None:
        add(name, None, "no figure")
    else:
        add(name, xs / fs <= 1.0 and xs / sp <= 0.5,
            f"xchannels.Pool {xs * 1e3:.0f} ms = {xs / fs:.2f}x forkserver's {fs * 1e3:.0f} ms, "
            f"{xs / sp:.2f}x spawn's {sp * 1e3:.0f} ms")

    # Against the standard library's own pool of interpreters (3.14+).
    speed_goal(f"Pool big (CPU-bound map) >= 1x {STDLIB_POOL}", "big", [(STDLIB_POOL, STDLIB_POOL, 1.0)], [])
    speed_goal(f"Pool data-bytes (48 x 1 MiB bytes) >= 2x {STDLIB_POOL}", "data-bytes",
               [(STDLIB_POOL, STDLIB_POOL, 2.0)], [])
    name = f"Pool startup time <= 0.5x {STDLIB_POOL}'s"
    xs, ip = secs("startup", "xchannels.Pool"), secs("startup", STDLIB_POOL)
    if xs is None or ip is None:
        add(name, None, f"no figure ({STDLIB_POOL} is CPython 3.14+)" if ip is None else "no figure")
    else:
        add(name, xs / ip <= 0.5, f"xchannels.Pool {xs * 1e3:.0f} ms = {xs / ip:.2f}x {STDLIB_POOL}'s "
            f"{ip * 1e3:.0f} ms (best runs)")
    # Issue 26: reusable_pool() calls after the first pay no start-up.
    reuse = pres.get("reusable") if isinstance(pres, dict) else None
    name = "Pool reusable_pool() later calls <= 2 ms (a 4-task map of a trivial function)"
    if not isinstance(reuse, dict) or not isinstance(reuse.get("later_median_ms"), (int, float)):
        add(name, None, "no figure" + (f" ({first_line(reuse['error'])})" if isinstance(reuse, dict)
                                       and reuse.get("error") else ""))
    else:
        add(name, reuse["later_median_ms"] <= reuse.get("goal_ms", 2.0), reusable_text(reuse))

    # Issue 18: a web server, xchannels.asgi's worker interpreters against
    # Hypercorn's worker processes (bench_asgi.py).
    missing = asgi_missing(data)
    arows = asgi_rows(data)
    ax, ah = arows.get(ASGI_XCHANNELS, {}), arows.get(ASGI_REFERENCE, {})
    name = f"ASGI: {ASGI_XCHANNELS} requests/s >= {ASGI_REFERENCE}"
    if missing:
        add(name, None, missing)
    else:
        add(name, ax["rps"] >= ah["rps"],
            f"{ax['rps']:,.0f} vs {ah['rps']:,.0f} requests/s, {ax['rps'] / ah['rps']:.2f}x "
            f"(p99 {ax['p99_ms']:.1f} vs {ah['p99_ms']:.1f} ms; "
            f"{(data['asgi']['result'].get('wrk') or 'wrk')}, {data['asgi']['result'].get('app_cost_ms', 0):.2f} ms "
            "of Python per request)")
    name = f"ASGI: server RSS <= half of {ASGI_REFERENCE}"
    if missing:
        add(name, None, missing)
    else:
        add(name, ax["rss_mib"] <= 0.5 * ah["rss_mib"],
            f"{ax['rss_mib']:.1f} MiB ({_procs(ax)}) vs {ah['rss_mib']:.1f} MiB "
            f"({_procs(ah)}), {ax['rss_mib'] / ah['rss_mib']:.2f}x "
            "(peak summed RSS of the process tree under load)")
    res += dask_goals(data)
    return res


def dask_rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """bench_dask's rows with figures, by config ({} if the section did not run)."""
    rows = ((data.get("dask") or {}).get("result") or {}).get("rows", [])
    return {r["config"]: r for r in rows if r.get("status") == "ok"}


def dask_goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 29: a Dask worker process fanning out over worker interpreters
    against one worker process per core (bench_dask.py)."""
    rows = dask_rows(data)
    name = "Dask: 1 worker process x 2 interpreters >= 2 worker processes in throughput, with less memory"
    x, p = rows.get("xchannels"), rows.get("processes")
    if x is None or p is None:
        sec = data.get("dask") or {}
        why = sec.get("note") or (sec.get("result") or {}).get("note") or "a cluster failed"
        return [{"goal": name, "status": "N/A", "detail": f"no figure ({why})"}]
    tr, mr = x["numbers_per_s"] / p["numbers_per_s"], x["rss_mib"] / p["rss_mib"]
    return [{"goal": name, "status": "PASS" if tr >= 1 and mr < 1 else "MISS",
             "detail": f"throughput {tr:.2f}x ({x['numbers_per_s'] / 1e3:,.0f}k vs {p['numbers_per_s'] / 1e3:,.0f}k "
                       f"numbers/s), RSS {mr:.2f}x ({x['rss_mib']:.0f} vs {p['rss_mib']:.0f} MiB summed over "
                       f"{x['procs']} vs {p['procs']} processes)"}]


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


def _label(data: dict[str, Any], peer: str) -> str:
    return (data.get("peer_info") or {}).get(peer, {}).get("label", peer)


def _check_text(chk: dict[str, Any]) -> str:
    """A cell's check round (cell.check_round) in a few words."""
    t = f"{chk['lost']} lost, {chk['duplicated']} duplicated"
    if chk.get("foreign"):
        t += f", {chk['foreign']} never put"
    if chk.get("reordered"):
        t += f", {chk['reordered']} out of their producer's order"
    return t


def stdlib_queue_goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    """xchannels.Channel against CPython's own interpreter queue (peer
    ``interp-queues``), same run: streams and the ping-pong round trip."""
    cells = cells_by(data)
    res: list[dict[str, Any]] = []
    lq = "CPython's interpreter queue"  # the goals' names are the same on every Python

    def add(name: str, ok: bool | None, detail: str) -> None:
        status = "PASS" if ok else ("MISS" if ok is not None else "N/A")
        res.append({"goal": name, "status": status, "detail": detail})

    def missing(w: str) -> str:
        why = [f"{_label(data, p)}: {status_text(cells.get((w, p))) or 'no figure'}"
               for p in ("xchannels", STDLIB_QUEUE) if figure(cells.get((w, p))) is None]
        return f"no figure ({'; '.join(why)})"

    for w, factor in (("stream-int", 10), ("stream-dict-10", 5)):
        name = f"{w} >= {factor}x {lq}"
        x, q = figure(cells.get((w, "xchannels"))), figure(cells.get((w, STDLIB_QUEUE)))
        if x is None or q is None:
            add(name, None, missing(w))
            continue
        how = cells[(w, STDLIB_QUEUE)].get("how")
        add(name, x / q >= factor, f"{si(x)} msg/s, {ratio_str(x / q)} {_label(data, STDLIB_QUEUE)} "
            f"({si(q)} msg/s{', ' + how if how else ''})")
    name = f"pingpong round trip <= 1/100 of {lq}'s"
    c, q = cells.get(("pingpong", "xchannels")), cells.get(("pingpong", STDLIB_QUEUE))
    if figure(c) is None or figure(q) is None:
        add(name, None, missing("pingpong"))
    else:
        r = q["rt_median_us"] / c["rt_median_us"]
        add(name, r >= 100, f"median {us(c['rt_median_us'])} against {us(q['rt_median_us'])} "
            f"({_label(data, STDLIB_QUEUE)}, which polls): 1/{r:,.0f}")
    return res


def process_goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The goals of xchannels.ProcessChannel (peer ``xchannels-process``),
    process to process, against multiprocessing.Queue and faster-fifo."""
    cells = cells_by(data)
    res: list[dict[str, Any]] = []
    px = PROCESS_PEER
    lx = "ProcessChannel"  # in the goals' names, which stay the same from run to run

    def add(name: str, ok: bool | None, detail: str) -> None:
        status = "PASS" if ok else ("MISS" if ok is not None else "N/A")
        res.append({"goal": name, "status": status, "detail": detail})

    def missing(w: str, peers: list[str]) -> str:
        why = [f"{_label(data, p)}: {status_text(cells.get((w, p))) or 'no figure'}"
               for p in peers if figure(cells.get((w, p))) is None]
        return f"no figure ({'; '.join(why)})"

    # Streams: items/s against each process peer.
    for payload in PROCESS_STREAMS:
        w = f"stream-{payload}"
        name = f"{w}, process to process: {lx} >= 10x multiprocessing.Queue and >= 5x faster-fifo"
        x, m, f = (figure(cells.get((w, p))) for p in [px] + PROCESS_REFS)
        if x is None or m is None or f is None:
            add(name, None, missing(w, [px] + PROCESS_REFS))
            continue
        mbs = cells[(w, px)].get("mb_per_s")
        mb = f" ({si(mbs * 1e6, 'B')}/s)" if payload.startswith("bytes") and mbs else ""
        add(name, x / m >= 10 and x / f >= 5,
            f"{si(x)} msg/s{mb}: {ratio_str(x / m)} multiprocessing.Queue ({si(m)} msg/s), "
            f"{ratio_str(x / f)} faster-fifo ({si(f)} msg/s)")

    # Ping-pong between two processes: the median round trip.
    name = f"pingpong between two processes: {lx} median round trip <= 5 µs"
    c = cells.get(("pingpong", px))
    if c is None or figure(c) is None:
        add(name, None, missing("pingpong", [px]))
    else:
        others = []
        for p in PROCESS_REFS:
            oc = cells.get(("pingpong", p))
            others.append(f"{_label(data, p)} {us(oc['rt_median_us'])} (p99 {us(oc['rt_p99_us'])})"
                          if oc is not None and figure(oc) is not None
                          else f"{_label(data, p)}: {status_text(oc) or 'no figure'}")
        add(name, c["rt_median_us"] <= 5,
            f"median {us(c['rt_median_us'])}, p99 {us(c['rt_p99_us'])}; medians of the other process peers: "
            + ", ".join(others))

    # mpmc-2x2: the check round (no lost or duplicated item), and the ratios.
    name = f"mpmc-2x2 with processes: {lx} loses and duplicates no item (ratios to the process peers shown)"
    c = cells.get(("mpmc-2x2", px))
    chk = (c or {}).get("check")
    if not chk:
        add(name, None, f"no check round ({status_text(c) or 'not run'})")
    else:
        detail = f"check round of {chk['put']:,} distinct ints: {_check_text(chk)}"
        x = figure(c)
        if x is not None:
            detail += f"; {si(x)} items/s"
            for p in PROCESS_REFS:
                of = figure(cells.get(("mpmc-2x2", p)))
                detail += (f", {ratio_str(x / of)} {_label(data, p)} ({si(of)}/s)" if of
                           else f", {_label(data, p)}: {status_text(cells.get(('mpmc-2x2', p))) or 'no figure'}")
        elif c and c.get("status") != "ok":
            detail += f" ({c.get('status')})"
        theirs = [f"{_label(data, p)} {'ok' if oc['check']['ok'] else _check_text(oc['check'])}"
                  for p in PROCESS_REFS if (oc := cells.get(("mpmc-2x2", p))) and oc.get("check")]
        if theirs:
            detail += "; the peers' check rounds: " + ", ".join(theirs)
        add(name, bool(chk["ok"]), detail)
    return res


def asgi_rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """bench_asgi's rows by server name ({} if the section did not run)."""
    res = (data.get("asgi") or {}).get("result")
    if not isinstance(res, dict) or not isinstance(res.get("rows"), list):
        return {}
    return {str(r.get("name")): r for r in res["rows"] if isinstance(r, dict)}


def _procs(r: dict[str, Any]) -> str:
    n = r.get("procs")
    return f"{n} process{'' if n == 1 else 'es'}" if isinstance(n, int) else "? processes"


def asgi_ok(r: dict[str, Any] | None) -> bool:
    """A bench_asgi row with figures."""
    if not r or r.get("status", "ok") != "ok":
        return False
    return all(isinstance(r.get(k), (int, float)) for k in ("rps", "p99_ms", "rss_mib"))


def asgi_missing(data: dict[str, Any]) -> str:
    """Why the ASGI goals have no figure ("" if both servers have figures)."""
    sec = data.get("asgi")
    if not sec:
        return "no figure (not measured in this run)"
    if sec.get("status") != "ok":
        return f"no figure ({sec.get('status')}: {first_line(sec.get('note') or '')})"
    rows = asgi_rows(data)
    for name in (ASGI_XCHANNELS, ASGI_REFERENCE):
        r = rows.get(name)
        if not asgi_ok(r):
            why = first_line(str((r or {}).get("error") or "no row"))
            return f"no figure ({name}: {(r or {}).get('status', 'error')}: {why})"
    return ""


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


def memcpy_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each peer's stream-bytes-1MiB figure against the memcpy limit."""
    res = (data.get("memcpy") or {}).get("result")
    if not isinstance(res, dict) or not isinstance(res.get("memmove_gbps"), (int, float)):
        return []
    limit = res["memmove_gbps"] * 1e9
    cells = cells_by(data)
    rows = []
    for p in data["peers_order"]:
        c = cells.get((MEMCPY_WORKLOAD, p))
        if c is None:
            continue
        bps = c["mb_per_s"] * 1e6 if c.get("status") == "ok" and c.get("mb_per_s") else None
        rows.append({"peer": p, "bytes_per_s": bps, "of_limit": bps / limit if bps else None,
                     "copies": p != "queue-thread", "status": status_text(c)})
    return rows


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


def goal_lines(data: dict[str, Any]) -> list[str]:
    return [f"GOAL {g['status']}  {g['goal']}: {g['detail']}" for g in data.get("goals", [])]


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


# ---- C++ micro-benchmarks ------------------------------------------------------


def cpp_rows(cpp: dict[str, Any]) -> list[dict[str, Any]]:
    """Channel flavours against raw moodycamel, per workload."""
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for b in cpp.get("benchmarks", []):
        name = b["name"].split("/")[0]
        parts = name.split("_")
        if len(parts) != 3:
            continue
        # With repetitions, keep the median aggregate; else the one run.
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") != "median":
                continue
        elif (parts[2], parts[1]) in by:
            continue
        by[(parts[2], parts[1])] = b
    rows = []
    for wl in ("Spsc", "Mpmc", "PingPong"):
        raw = by.get((wl, "RawMoodycamel"))
        blk = by.get((wl, "BlockingMoodycamel"))
        order = {"Unbounded": 0, "Bounded1024": 1, "Bounded1": 2, "RawMoodycamel": 8, "BlockingMoodycamel": 9}
        for (w, flavor), b in sorted(by.items(), key=lambda kv: (order.get(kv[0][1], 5), kv[0][1])):
            if w != wl:
                continue
            if wl == "PingPong":
                fig = b.get("per_roundtrip")
                text = us(fig * 1e6) if fig else "-"

                def rel(o: dict[str, Any] | None, fig: float | None = fig) -> float | None:
                    return o["per_roundtrip"] / fig if o and fig and o.get("per_roundtrip") else None
            else:
                fig = b.get("items_per_second")
                text = f"{si(fig)}/s" if fig else "-"

                def rel(o: dict[str, Any] | None, fig: float | None = fig) -> float | None:
                    return fig / o["items_per_second"] if o and fig and o.get("items_per_second") else None
            rows.append({"workload": wl, "flavor": flavor, "figure": text,
                         "vs_raw": rel(raw), "vs_blocking": rel(blk)})
    return rows


# ---- pool ---------------------------------------------------------------------


def flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(d, list) and d and all(not isinstance(x, (dict, list)) for x in d):
        out.append((prefix, d))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            label = v.get("name") or v.get("workload") if isinstance(v, dict) else None
            out += flatten(v, f"{prefix}[{label or i}]")
    else:
        out.append((prefix, d))
    return out


def pool_variants(pool: Any) -> list[dict[str, Any]] | None:
    """bench_pool's {"variants": [{"name", "peers": [{"name", "seconds",
    "speedup_vs_serial", ...}]}]} layout, or None if it is something else."""
    if not isinstance(pool, dict) or not isinstance(pool.get("variants"), list):
        return None
    vs = [v for v in pool["variants"] if isinstance(v, dict) and isinstance(v.get("peers"), list)]
    return vs or None


def pool_peer_names(pv: list[dict[str, Any]]) -> list[str]:
    """Every peer named in the pool variants, in first-seen order."""
    return list(dict.fromkeys(str(q.get("name")) for v in pv for q in v["peers"]))


def pool_speedups(pool: Any) -> list[tuple[str, float]]:
    """Every numeric leaf whose key mentions a speed-up."""
    res = []
    for k, v in flatten(pool):
        last = k.rsplit(".", 1)[-1].lower().replace("-", "").replace("_", "")
        if "speedup" in last and isinstance(v, (int, float)) and not isinstance(v, bool):
            res.append((k, float(v)))
    return res


# ---- plots ----------------------------------------------------------------------

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


def plots(data: dict[str, Any], outdir: Path = RESULTS) -> list[Path]:
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
        p = outdir / name
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
    sp = pool_speedups(pres)
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
    elif sp:
        fig, ax = plt.subplots(figsize=(9, 0.6 * len(sp) + 1.8))
        ax.barh([k for k, _ in sp], [v for _, v in sp], color="#1f77b4")
        ax.axvline(1.0, color="gray", lw=1)
        ax.set_xlabel("speed-up (x), as reported by bench_pool.py")
        ax.set_ylabel("pool workload")
        ax.set_title(f"Pool speed-up — {stamp}", fontsize=10)
        ax.tick_params(axis="y", labelsize=7)
        save(fig, "pool_speedup.png")
    return made


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


def reusable_text(r: dict[str, Any]) -> str:
    """bench_pool's reusable_pool figures (``result["reusable"]``) in words."""
    return (f"later calls {r['later_median_ms']:.3g} ms median ({r['later_best_ms']:.3g} ms best, "
            f"{r['later_p90_ms']:.3g} ms p90, of {r['calls']}); the first call {r['first_ms']:.3g} ms "
            f"(start-up included); a `with Pool(2)` per map {r['new_pool_median_ms']:.3g} ms")


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


def write_docs(data: dict[str, Any], json_path: Path, made: list[Path]) -> Path:
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    images = {}
    for p in made:
        dst = DOCS_IMG / f"bench-{p.name}"
        shutil.copyfile(p, dst)
        images[p.stem] = f"img/{dst.name}"
    try:
        json_rel = str(json_path.resolve().relative_to(ROOT))
    except ValueError:
        json_rel = str(json_path)
    md = docs_markdown(data, json_rel, images)
    out = DOCS / "benchmarks.md"
    out.write_text(md, encoding="utf-8")
    return out


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULT.json")
    path = Path(sys.argv[1])
    data = json.loads(path.read_text())
    print("\n".join(table_lines(data)))
    print("\n".join(goal_lines(data)))
    made = plots(data)
    print("plots:", ", ".join(str(p.relative_to(ROOT)) for p in made))
    print("docs:", write_docs(data, path, made).relative_to(ROOT))


if __name__ == "__main__":
    main()

