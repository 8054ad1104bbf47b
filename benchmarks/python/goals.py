"""benchmarks/python/goals.py: the project's goals as PASS/MISS/N/A lines from a result JSON.

The tables below are the goals as data; ``goals(data)`` evaluates them in
their fixed order (the names stay the same from run to run and Python to
Python: ``docs/benchmarks.md`` puts them side by side)."""

from __future__ import annotations

from typing import Any

from common import *  # noqa: F403
from common import _check_text, _label, _procs

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




def goal_lines(data: dict[str, Any]) -> list[str]:
    return [f"GOAL {g['status']}  {g['goal']}: {g['detail']}" for g in data.get("goals", [])]


