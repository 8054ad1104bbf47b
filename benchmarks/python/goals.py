"""benchmarks/python/goals.py: the project's goals, one table (``GOALS``, a row a goal, in the order printed;
names stable across runs and Pythons), each row checked by its kind's check into a PASS/MISS/N/A line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from common import (ASGI_REFERENCE, ASGI_XCHANNELS, PROCESS_PEER, STDLIB_POOL, STDLIB_QUEUE,
                    VALUES_GOAL_PAYLOADS, asgi_ok, cells_by, check_text, cpp_rows,
                    figure, first_line, label, ns_text, pool_variants, procs_text, ratio_str, reusable_text, si,
                    status_text, us)

X, XPOOL, MP, FF = "xchannels", "xchannels.Pool", "mp-queue", "faster-fifo"
MPPOOL, SPAWN, FORKSERVER = "multiprocessing.Pool", "multiprocessing.Pool[spawn]", "multiprocessing.Pool[forkserver]"
PROCESS_REFS = ((MP, 10.0), (FF, 5.0))
PROCESS_STREAM = "{x} msg/s{mb}: {r0} multiprocessing.Queue ({f0} msg/s), {r1} faster-fifo ({f1} msg/s)"


@dataclass(frozen=True)
class Goal:
    name: str  # "{mp}": multiprocessing.Pool with the run's start method
    kind: str  # its check: a key of CHECKS
    workload: str = ""  # a cell's workload, a pool workload, a values payload or a C++ benchmark
    peer: str = X
    refs: tuple[tuple[str, float], ...] = ()  # speed >= factor x the reference's (time ratios: <= factor)
    bound: float | None = None  # items/s >= bound, round trip <= bound µs, speed-up >= bound
    shown: tuple[str, ...] = ()  # peers shown beside, not compared
    detail: str = ""


class Run:
    """A result JSON with the look-ups the checks share."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data, self.cells = data, cells_by(data)
        pres = (data.get("pool") or {}).get("result")
        self.pool = pres if isinstance(pres, dict) else {}
        method = self.pool.get("mp_start_method")
        self.mp = f"{MPPOOL} ({method})" if method else MPPOOL

    def fig(self, w: str, p: str) -> float | None:
        return figure(self.cells.get((w, p)))

    def missing(self, w: str, peers: list[str]) -> str:
        why = [f"{label(self.data, p)}: {status_text(self.cells.get((w, p))) or 'no figure'}"
               for p in peers if self.fig(w, p) is None]
        return f"no figure ({'; '.join(why)})"

    def secs(self, variant: str, peer: str, first: bool = False) -> float | None:
        """A pool's best time on ``variant`` (``first``: its first run, first use in the process)."""
        v = next((v for v in pool_variants(self.pool) or [] if v.get("name") == variant), {"peers": []})
        q = next((q for q in v["peers"] if q.get("name") == peer), {})
        s = (q.get("runs") or [None])[0] if first else q.get("seconds")
        return float(s) if isinstance(s, (int, float)) and s > 0 else None

    def pool_label(self, peer: str) -> str:
        return {MPPOOL: self.mp, SPAWN: "mp.Pool[spawn]", FORKSERVER: "mp.Pool[forkserver]"}.get(peer, peer)


Result = tuple[Optional[bool], str]


def _throughput(g: Goal, r: Run) -> Result:
    """A cell's items/s >= ``bound`` and >= factor x each reference's. Fields: x, mb, and per reference i
    r<i> (ratio), f<i> (its items/s), l<i> (its label), how<i> (", how it ran" or "")."""
    peers = [g.peer] + [p for p, _ in g.refs]
    figs = [r.fig(g.workload, p) for p in peers]
    if None in figs:
        return None, r.missing(g.workload, peers)
    x, *refs = [float(v or 0) for v in figs]
    mbs = r.cells[(g.workload, g.peer)].get("mb_per_s")
    f = {"x": si(x), "mb": f" ({si(mbs * 1e6, 'B')}/s)" if g.workload.startswith("stream-bytes") and mbs else ""}
    for i, ((p, _), ref) in enumerate(zip(g.refs, refs)):
        how = r.cells[(g.workload, p)].get("how")
        f |= {f"r{i}": ratio_str(x / ref), f"f{i}": si(ref), f"l{i}": label(r.data, p),
              f"how{i}": f", {how}" if how else ""}
    ok = all(x / ref >= k for ref, (_, k) in zip(refs, g.refs)) and x >= (g.bound or 0)
    return ok, g.detail.format(**f)


def _latency(g: Goal, r: Run) -> Result:
    """A cell's median round trip <= ``bound`` µs and <= 1/factor of each reference's. Fields: med, p99,
    m<i>, l<i>, q<i> (reference's / ours), shown and shown_p99 (the shown peers), floor (C++ raw futex round trip)."""
    peers = [g.peer] + [p for p, _ in g.refs]
    if any(r.fig(g.workload, p) is None for p in peers):
        return None, r.missing(g.workload, peers)
    c = r.cells[(g.workload, g.peer)]
    med = c["rt_median_us"]
    f = {"med": us(med), "p99": us(c["rt_p99_us"]), "floor": ""}
    for key, each in (("shown", "{l} {m}"), ("shown_p99", "{l} {m} (p99 {p})")):
        f[key] = ", ".join(
            each.format(l=label(r.data, p), m=us(o["rt_median_us"]), p=us(o["rt_p99_us"]))
            if (o := r.cells.get((g.workload, p))) and figure(o) is not None
            else f"{label(r.data, p)}: {status_text(o) or 'no figure'}" for p in g.shown)
    ratios = []
    for i, (p, _) in enumerate(g.refs):
        m = r.cells[(g.workload, p)]["rt_median_us"]
        ratios.append(m / med)
        f |= {f"m{i}": us(m), f"l{i}": label(r.data, p), f"q{i}": f"{m / med:,.0f}"}
    floor = next((row for row in cpp_rows(r.data.get("cpp") or {})
                  if row["workload"] == "PingPong" and row["flavor"] == "RawFutex"), None)
    if floor is not None and floor["figure"] != "-":
        f["floor"] = f"; floor of a round trip where both sides park (C++ raw futex, idle cores): {floor['figure']}"
    ok = med <= (g.bound or float("inf")) and all(q >= k for q, (_, k) in zip(ratios, g.refs))
    return ok, g.detail.format(**f)


def _check_round(g: Goal, r: Run) -> Result:
    """The cell's check round lost and duplicated nothing; its items/s against the shown peers'."""
    c = r.cells.get((g.workload, g.peer))
    chk = (c or {}).get("check")
    if not chk:
        return None, f"no check round ({status_text(c) or 'not run'})"
    detail = f"check round of {chk['put']:,} distinct ints: {check_text(chk)}"
    x = figure(c)
    if x is not None:
        detail += f"; {si(x)} items/s"
        for p in g.shown:
            of = r.fig(g.workload, p)
            detail += (f", {ratio_str(x / of)} {label(r.data, p)} ({si(of)}/s)" if of
                       else f", {label(r.data, p)}: {status_text(r.cells.get((g.workload, p))) or 'no figure'}")
    elif c and c.get("status") != "ok":
        detail += f" ({c.get('status')})"
    theirs = [f"{label(r.data, p)} {'ok' if oc['check']['ok'] else check_text(oc['check'])}"
              for p in g.shown if (oc := r.cells.get((g.workload, p))) and oc.get("check")]
    if theirs:
        detail += "; the peers' check rounds: " + ", ".join(theirs)
    return bool(chk["ok"]), detail


def _values(g: Goal, r: Run) -> Result:
    """bench_values: pickle's time / the codec's >= ``bound``."""
    rows = ((r.data.get("values") or {}).get("result") or {}).get("rows", [])
    row = next((x for x in rows if x["payload"] == g.workload), None)
    if row is None or row.get("speedup") is None:
        return None, f"no figure ({first_line(row['error'])})" if row and row.get("error") else "no figure"
    return row["speedup"] >= g.bound, (f"{ns_text(row['codec_ns'])} vs pickle {ns_text(row['pickle_ns'])}, "
                                       f"{row['speedup']:.1f}x")


def _cpp(g: Goal, r: Run) -> Result:
    """A C++ micro-benchmark's figure >= ``bound`` x raw moodycamel's."""
    cpp = r.data.get("cpp") or {}
    row = next((x for x in cpp_rows(cpp) if x["workload"] == g.workload and x["flavor"] == g.peer), None) \
        if cpp.get("status") == "ok" else None
    if row is None or row["vs_raw"] is None:
        return None, "no figure"
    return row["vs_raw"] >= g.bound, f"{row['figure']}, {row['vs_raw']:.2f}x raw (median of repetitions)"


def _pool_speed(g: Goal, r: Run) -> Result:
    """xchannels.Pool's speed (1 / seconds, start-up included) >= factor x each reference's."""
    xs = r.secs(g.workload, g.peer)
    got = [(r.pool_label(p), r.secs(g.workload, p), k) for p, k in g.refs]
    lacking = [lb for lb, s, _ in got if s is None] + ([] if xs else [XPOOL])
    if lacking or xs is None:
        return None, ("no figure (" + ", ".join(lacking) + " not measured"
                      + (f"; {STDLIB_POOL} is CPython 3.14+" if STDLIB_POOL in lacking else "") + ")")
    shown = [(lb, s) for lb, s, _ in got] + [(r.pool_label(p), r.secs(g.workload, p)) for p in g.shown]
    text = ", ".join(f"{s / xs:.2f}x {lb}" for lb, s in shown if s is not None)
    return all(s / xs >= k for _, s, k in got if s), f"xchannels.Pool {xs:.3g} s: {text} (time ratios, start-up included)"


def _pool_startup(g: Goal, r: Run) -> Result:
    """xchannels.Pool's start-up time <= factor x each reference's (best runs, or each peer's first run)."""
    first = g.workload == "startup, first run"
    xs = r.secs("startup", g.peer, first)
    refs = [(p, r.secs("startup", p, first), k) for p, k in g.refs]
    if xs is None or any(s is None for _, s, _ in refs):
        return None, "no figure" + (f" ({STDLIB_POOL} is CPython 3.14+)" if r.secs("startup", STDLIB_POOL) is None
                                    and STDLIB_POOL in dict(g.refs) else "")
    also = [(r.pool_label(p), s) for p in g.shown if (s := r.secs("startup", p))]
    short = {FORKSERVER: "forkserver", SPAWN: "spawn"}
    return all(xs / s <= k for _, s, k in refs), g.detail.format(  # type: ignore[operator]
        x=f"xchannels.Pool {xs * 1e3:.0f} ms = " + ", ".join(
            f"{xs / s:.2f}x {short.get(p, p)}'s {s * 1e3:.0f} ms" for p, s, _ in refs),  # type: ignore[operator]
        also="".join(f" ({lb}: {s * 1e3:.0f} ms)" for lb, s in also))


def _reusable(g: Goal, r: Run) -> Result:
    """reusable_pool(): the later calls' median <= the goal's ms."""
    reuse = r.pool.get("reusable")
    if not isinstance(reuse, dict) or not isinstance(reuse.get("later_median_ms"), (int, float)):
        return None, "no figure" + (f" ({first_line(reuse['error'])})" if isinstance(reuse, dict)
                                    and reuse.get("error") else "")
    return reuse["later_median_ms"] <= reuse.get("goal_ms", 2.0), reusable_text(reuse)


def _asgi(g: Goal, r: Run) -> Result:
    """bench_asgi: requests/s >= the reference's (``bound`` None), or RSS <= ``bound`` x its."""
    sec = r.data.get("asgi")
    if not sec:
        return None, "no figure (not measured in this run)"
    if sec.get("status") != "ok":
        return None, f"no figure ({sec.get('status')}: {first_line(sec.get('note') or '')})"
    res = sec["result"]
    rows = {str(row.get("name")): row for row in res.get("rows") or [] if isinstance(row, dict)} \
        if isinstance(res, dict) else {}
    for name in (ASGI_XCHANNELS, ASGI_REFERENCE):
        if not asgi_ok(row := rows.get(name)):
            why = first_line(str((row or {}).get("error") or "no row"))
            return None, f"no figure ({name}: {(row or {}).get('status', 'error')}: {why})"
    ax, ah = rows[ASGI_XCHANNELS], rows[ASGI_REFERENCE]
    if g.bound is None:
        return ax["rps"] >= ah["rps"], (
            f"{ax['rps']:,.0f} vs {ah['rps']:,.0f} requests/s, {ax['rps'] / ah['rps']:.2f}x (p99 {ax['p99_ms']:.1f} "
            f"vs {ah['p99_ms']:.1f} ms; {res.get('wrk') or 'wrk'}, {res.get('app_cost_ms', 0):.2f} ms "
            "of Python per request)")
    return ax["rss_mib"] <= g.bound * ah["rss_mib"], (
        f"{ax['rss_mib']:.1f} MiB ({procs_text(ax)}) vs {ah['rss_mib']:.1f} MiB ({procs_text(ah)}), "
        f"{ax['rss_mib'] / ah['rss_mib']:.2f}x (peak summed RSS of the process tree under load)")


def _dask(g: Goal, r: Run) -> Result:
    """bench_dask: throughput >= the processes' with less RSS."""
    rows = {row["config"]: row for row in ((r.data.get("dask") or {}).get("result") or {}).get("rows", [])
            if row.get("status") == "ok"}
    x, p = rows.get("xchannels"), rows.get("processes")
    if x is None or p is None:
        sec = r.data.get("dask") or {}
        return None, f"no figure ({sec.get('note') or (sec.get('result') or {}).get('note') or 'a cluster failed'})"
    tr, mr = x["numbers_per_s"] / p["numbers_per_s"], x["rss_mib"] / p["rss_mib"]
    return tr >= 1 and mr < 1, (
        f"throughput {tr:.2f}x ({x['numbers_per_s'] / 1e3:,.0f}k vs {p['numbers_per_s'] / 1e3:,.0f}k numbers/s), "
        f"RSS {mr:.2f}x ({x['rss_mib']:.0f} vs {p['rss_mib']:.0f} MiB summed over {x['procs']} vs {p['procs']} "
        "processes)")


def _large(g: Goal, r: Run) -> Result:
    """bench_large: the reference's round trip / xchannels' >= factor; the reference is ``refs``' peer on
    the workload named in ``detail`` (default: the goal's); ``shown`` peers on the goal's workload beside."""
    rows = ((r.data.get("large") or {}).get("result") or {}).get("rows", [])
    secs = {(x["workload"], x["peer"]): x.get("seconds") for x in rows}
    (ref_peer, factor), = g.refs
    ref_w = g.detail or g.workload
    x, ref = secs.get((g.workload, X)), secs.get((ref_w, ref_peer))
    if not x or not ref:
        errors = [f"{x['workload']} / {x['peer']}: {first_line(x['error'])}" for x in rows if x.get("error")]
        return None, f"no figure ({'; '.join(errors) or 'not measured in this run'})"
    shown = "".join(f"; {p}: {us(s * 1e6)}" for p in g.shown if (s := secs.get((g.workload, p))))
    return ref / x >= factor, (f"{us(x * 1e6)} against {us(ref * 1e6)} ({ref_peer}, {ref_w}): "
                               f"{ref / x:.2f}x{shown} (median round trips)")


CHECKS: dict[str, Callable[[Goal, Run], Result]] = {
    "throughput": _throughput, "latency": _latency, "check": _check_round, "values": _values, "cpp": _cpp,
    "pool": _pool_speed, "pool-startup": _pool_startup, "reusable": _reusable, "asgi": _asgi, "dask": _dask,
    "large": _large}
LQ = "CPython's interpreter queue"  # the goals' names are the same on every Python
PP = "process to process: ProcessChannel >= 10x multiprocessing.Queue and >= 5x faster-fifo"
IPE = STDLIB_POOL
GOALS: list[Goal] = [
    Goal("stream-int >= 3M msg/s and >= 30x multiprocessing.Queue", "throughput", "stream-int",
         refs=((MP, 30),), bound=3e6, detail="{x} msg/s, {r0} multiprocessing.Queue"),
    Goal("stream-5-tuple >= 15x multiprocessing.Queue", "throughput", "stream-5-tuple", refs=((MP, 15),),
         detail="{x} msg/s, {r0} multiprocessing.Queue"),
    # Dicts, as real programs send them; against the peers that pickle them.
    Goal("stream-dict-10 >= 10x multiprocessing.Queue and >= 3x CPython's interpreter queues", "throughput",
         "stream-dict-10", refs=((MP, 10), (STDLIB_QUEUE, 3)),
         detail="{x} msg/s, {r0} multiprocessing.Queue, {r1} interp queues (pickled, {f1} msg/s)"),
    Goal("pingpong round trip <= 10 µs", "latency", "pingpong", bound=10, detail="median {med}, p99 {p99}"),
    Goal(f"stream-int >= 10x {LQ}", "throughput", "stream-int", refs=((STDLIB_QUEUE, 10),),
         detail="{x} msg/s, {r0} {l0} ({f0} msg/s{how0})"),
    Goal(f"stream-dict-10 >= 5x {LQ}", "throughput", "stream-dict-10", refs=((STDLIB_QUEUE, 5),),
         detail="{x} msg/s, {r0} {l0} ({f0} msg/s{how0})"),
    Goal(f"pingpong round trip <= 1/100 of {LQ}'s", "latency", "pingpong", refs=((STDLIB_QUEUE, 100),),
         detail="median {med} against {m0} ({l0}, which polls): 1/{q0}"),
    # Issue 15: the parking path, with a busy process on every core.
    Goal("pingpong-busy round trip <= 5 µs (cores busy: waiters park)", "latency", "pingpong-busy", bound=5,
         shown=(MP,), detail="median {med}, p99 {p99}, {shown}{floor}"),
    *(Goal(f"stream-{p}, {PP}", "throughput", f"stream-{p}", PROCESS_PEER, PROCESS_REFS, detail=PROCESS_STREAM)
      for p in ("int", "5-tuple", "bytes-1KiB")),
    Goal("pingpong between two processes: ProcessChannel median round trip <= 5 µs", "latency", "pingpong",
         PROCESS_PEER, bound=5, shown=(MP, FF),
         detail="median {med}, p99 {p99}; medians of the other process peers: {shown_p99}"),
    Goal("mpmc-2x2 with processes: ProcessChannel loses and duplicates no item (ratios to the process peers "
         "shown)", "check", "mpmc-2x2", PROCESS_PEER, shown=(MP, FF)),
    *(Goal(f"{p} encode+decode >= 5x faster than pickle", "values", p, bound=5) for p in VALUES_GOAL_PAYLOADS),
    Goal("C++ SPSC Channel<int64_t> >= 50% of raw moodycamel", "cpp", "Spsc", "Unbounded", bound=0.5),
    Goal("Pool big (CPU-bound map) >= 0.95x {mp} and >= 1.75x serial", "pool", "big", XPOOL,
         ((MPPOOL, 0.95), ("serial", 1.75)), shown=(SPAWN, FORKSERVER)),
    Goal("Pool small-submit (one submit per task) >= 1.5x {mp}", "pool", "small-submit", XPOOL, ((MPPOOL, 1.5),),
         shown=("ProcessPoolExecutor",)),
    Goal(f"Pool data-bytes (48 x 1 MiB bytes) >= 2x {{mp}} and >= 3x {FORKSERVER}", "pool", "data-bytes", XPOOL,
         ((MPPOOL, 2.0), (FORKSERVER, 3.0)), shown=(SPAWN, "ProcessPoolExecutor")),
    Goal(f"Pool startup time <= {FORKSERVER}'s and <= 0.5x {SPAWN}'s", "pool-startup", "startup", XPOOL,
         refs=((FORKSERVER, 1.0), (SPAWN, 0.5)), shown=(MPPOOL,),
         detail="{x}{also} (best runs: forkserver's server process is already up)"),
    # The same for the first pool of the process, as a script meets it (imports; forkserver's server).
    Goal("Pool startup, first pool of the process, <= forkserver's and <= 0.5x spawn's", "pool-startup",
         "startup, first run", XPOOL, ((FORKSERVER, 1.0), (SPAWN, 0.5)), detail="{x}"),
    # Against the standard library's own pool of interpreters (3.14+).
    Goal(f"Pool big (CPU-bound map) >= 1x {IPE}", "pool", "big", XPOOL, ((IPE, 1.0),)),
    Goal(f"Pool data-bytes (48 x 1 MiB bytes) >= 2x {IPE}", "pool", "data-bytes", XPOOL, ((IPE, 2.0),)),
    Goal(f"Pool startup time <= 0.5x {IPE}'s", "pool-startup", "startup", XPOOL, ((IPE, 0.5),),
         detail="{x} (best runs)"),
    # Issue 26: reusable_pool() calls after the first pay no start-up.
    Goal("Pool reusable_pool() later calls <= 2 ms (a 4-task map of a trivial function)", "reusable"),
    # Issue 18: xchannels.asgi's worker interpreters against Hypercorn's worker processes.
    Goal(f"ASGI: {ASGI_XCHANNELS} requests/s >= {ASGI_REFERENCE}", "asgi"),
    Goal(f"ASGI: server RSS <= half of {ASGI_REFERENCE}", "asgi", bound=0.5),
    # Issue 29: a Dask worker process fanning out over interpreters against a worker process per core.
    Goal("Dask: 1 worker process x 2 interpreters >= 2 worker processes in throughput, with less memory", "dask"),
    # Issue 28: values of any size between processes; SharedBuffer by descriptor.
    Goal("64 MiB bytes to another process and back: ProcessChannel >= 3x multiprocessing.Queue", "large",
         "bytes-64MiB", refs=(("multiprocessing.Queue", 3.0),)),
    Goal("64 MiB SharedBuffer(memfd=True) to another process and back: <= 5x a 1 KiB one's (zero-copy)", "large",
         "SharedBuffer-64MiB", refs=((X, 0.2),), shown=("shared_memory by hand",), detail="SharedBuffer-1KiB"),
]


def goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    r, res = Run(data), []
    for g in GOALS:
        ok, detail = CHECKS[g.kind](g, r)
        status = "PASS" if ok else ("MISS" if ok is not None else "N/A")
        res.append({"goal": g.name.format(mp=r.mp), "status": status, "detail": detail})
    return res

