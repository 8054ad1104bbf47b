"""benchmarks/python/bench_pool.py: xchannels.Pool against serial, thread and process pools, start-up
included, and the memory a pool adds (benchmarks/README.md, "Pool"). ``run(quick)`` returns the figures.
Workers import the task functions from this module as ``bench_pool``; it imports little at the top."""

from __future__ import annotations

import importlib
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms in every fresh worker interpreter
    from typing import Any, Callable

# Only light imports at module level: worker interpreters import this module
# to find the task functions, inside the timed region. The peers and the task
# functions import what they need.

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = 2
MiB = 1024 * 1024

DATA_TASKS = 48
DATA_BYTES = MiB
RECORDS_PER_TASK = 10_000


# ---- task functions (run in the workers) ------------------------------------------


def work(n: int) -> int:
    """The seed workload: n! mod 1e9+7, one multiplication at a time."""
    k = 1
    for i in range(2, n + 1):
        k = k * i % 1000000007
    return k


def crc(data: Any) -> tuple[int, int]:
    """(length, CRC-32) of a bytes-like object (bytes or SharedBuffer)."""
    import zlib  # available in own-GIL sub-interpreters (3.12, 3.13)

    return len(data), zlib.crc32(data)


def records_sum(records: Any) -> tuple[int, int]:
    """(number of records, sum of their first fields)."""
    total = 0
    for r in records:
        total += r[0]
    return len(records), total


def reprice(r: Any) -> Any:
    """records-dataclass: a new record from one (``pool_records.reprice``;
    imported here on the first call, so that other workloads' workers never
    import dataclasses)."""
    import pool_records

    return pool_records.reprice(r)


def nap(seconds: float) -> tuple[int, int]:
    """Sleep, then say which worker ran it: (pid, thread id)."""
    import threading

    time.sleep(seconds)
    return os.getpid(), threading.get_ident()


def _module() -> Any:
    """This file imported as ``bench_pool`` (importable by workers).

    Its bytecode is cached first, as a normal Python installation does on
    the first import: where PYTHONDONTWRITEBYTECODE is set (this machine's
    environment sets it), every worker interpreter would otherwise compile
    the file from source inside the timed region, which a forked
    multiprocessing worker never does.
    """
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import py_compile

    try:
        py_compile.compile(os.path.join(HERE, "bench_pool.py"), doraise=True)
    except (OSError, py_compile.PyCompileError):
        pass  # read-only checkout: workers compile from source
    return importlib.import_module("bench_pool")


# ---- task arguments (built before the clock starts) -------------------------------


def _bytes_payloads() -> list[bytes]:
    """DATA_TASKS different payloads of DATA_BYTES each (seeded: the same
    every time, so data-bytes and data-sharedbuffer share one serial run)."""
    import random

    return [random.Random(k).randbytes(DATA_BYTES) for k in range(DATA_TASKS)]


def _records_payloads() -> list[Any]:
    """DATA_TASKS lists of RECORDS_PER_TASK records each, every record distinct: (int, float, short str,
    bool, None)."""
    return [[(i, i * 0.5, f"r{i}", i % 3 == 0, None) for i in range(k * RECORDS_PER_TASK, (k + 1) * RECORDS_PER_TASK)]
            for k in range(DATA_TASKS)]


def _shared_buffers() -> tuple[list[bytes], list[Any]]:
    """data-sharedbuffer's arguments: the bytes for the peers, SharedBuffers of them for xchannels.Pool."""
    import xchannels

    payloads = _bytes_payloads()
    return payloads, [xchannels.SharedBuffer(p) for p in payloads]


# ---- one timed run per peer ------------------------------------------------------


def _serial(fn: Callable[[Any], Any], ns: list[Any], mode: str, chunksize: int) -> list[Any]:
    return [fn(n) for n in ns]


def _pool(make: Callable[[], Any]) -> Callable[..., list[Any]]:
    """A peer: a pool from ``make()``, one submit (apply_async) per task or one map, then shut down."""
    def run(fn: Callable[[Any], Any], ns: list[Any], mode: str, chunksize: int) -> list[Any]:
        with make() as pool:
            if mode == "submit" and hasattr(pool, "apply_async"):
                return [r.get() for r in [pool.apply_async(fn, (n,)) for n in ns]]
            if mode == "submit":
                return [f.result() for f in [pool.submit(fn, n) for n in ns]]
            if hasattr(pool, "apply_async"):  # chunksize 0 means multiprocessing.Pool's own default
                return pool.map(fn, ns, chunksize=chunksize or None)
            return list(pool.map(fn, ns, chunksize=max(1, chunksize)))
    return run


def _mp(method: str | None) -> Callable[[], Any]:
    import multiprocessing

    return lambda: multiprocessing.get_context(method).Pool(WORKERS)


def _futures(kind: str, **options: Any) -> Callable[[], Any]:
    import concurrent.futures

    return lambda: getattr(concurrent.futures, kind)(WORKERS, **options)


def _xchannels_pool() -> Any:
    import xchannels

    return xchannels.Pool(WORKERS)


# multiprocessing.Pool's start method: fork on Linux on every Python (the goals compare with a forked pool;
# 3.14 made forkserver the default, which is a peer of its own), else the platform's default. Spawn (the
# default on macOS and Windows) and forkserver start fresh interpreters that import the task's module, as
# xchannels' workers do.
MP_METHOD = "fork" if sys.platform.startswith("linux") else None
PEERS: dict[str, Callable[..., list[Any]]] = {
    "serial": _serial, "xchannels.Pool": _pool(_xchannels_pool), "multiprocessing.Pool": _pool(_mp(MP_METHOD)),
    "multiprocessing.Pool[spawn]": _pool(_mp("spawn")),
    "multiprocessing.Pool[forkserver]": _pool(_mp("forkserver")),
    "ProcessPoolExecutor": _pool(_futures("ProcessPoolExecutor")),
    "ThreadPoolExecutor": _pool(_futures("ThreadPoolExecutor")),
}
if sys.version_info >= (3, 14):
    import site  # imported at start-up already

    # Functions travel pickled (by reference): the workers import this module, so they need its folder.
    PEERS["InterpreterPoolExecutor"] = _pool(_futures("InterpreterPoolExecutor", initializer=site.addsitedir,
                                                      initargs=(HERE,)))


def _mp_default_chunksize(tasks: int) -> int:
    size, extra = divmod(tasks, WORKERS * 4)
    return size + bool(extra)


def _variants(quick: bool) -> list[dict[str, Any]]:
    """The workloads. ``args``: the task arguments, or a callable returning ``(args, xchannels_args or None)``
    called just before the workload is timed (so that one workload's payloads do not sit in the parent while
    another forks its workers). ``key`` names the serial run whose results every peer must match."""
    lo, k = (50_000, 8) if quick else (200_000, 16)
    big = [lo + lo * i // (k - 1) for i in range(k)]
    small, records = ([1000] * 2000, 2000) if quick else ([1000] * 10_000, 10_000)
    matched, mib = _mp_default_chunksize(len(small)), DATA_BYTES // MiB
    default = "map, default chunking"
    rows = [  # name, task function, args, key, mode, chunksize, note
        ("startup", "work", [1], "startup", "map", 1,
         "one trivial task: start-up and shutdown cost (no speed-ups)"),
        ("big", "work", big, "big", "map", 1, "CPU-bound work(n), " + default),
        ("small", "work", small, "small", "map", 1, f"{default} (Executors 1, multiprocessing.Pool its own)"),
        (f"small-chunk{matched}", "work", small, "small", "map", matched,
         f"map, chunksize={matched} for every pool"),
        ("small-submit", "work", small, "small", "submit", 1, "one submit/apply_async per task"),
        ("data-bytes", "crc", lambda: (_bytes_payloads(), None), "data", "map", 1,
         f"each task given its own {mib} MiB bytes, returns (len, zlib.crc32); {default}"),
        ("data-sharedbuffer", "crc", _shared_buffers, "data", "map", 1,
         f"as data-bytes, but xchannels.Pool is given each {mib} MiB payload as an xchannels.SharedBuffer (made "
         "before the clock starts, sent in O(1)); the other peers have no SharedBuffer and get the bytes"),
        ("data-records", "records_sum", lambda: (_records_payloads(), None), "records", "map", 1,
         f"each task given {RECORDS_PER_TASK:,} distinct records (int, float, short str, bool, None) as a "
         f"list of {RECORDS_PER_TASK:,} 5-tuples; returns (len, sum of the ints); {default}"),
        ("records-dataclass", "reprice", lambda: (__import__("pool_records").make(records), None),
         "records-dataclass", "map", 1,
         "map over small frozen dataclass records (int, float, short str), each returning a new record: "
         "xchannels.Pool's default pickle fallback, the process pools' pickle; default chunking"),
    ]
    keys = ("name", "fn", "args", "key", "mode", "chunksize", "note")
    return [dict(zip(keys, row)) for row in rows]


def _time(peer: str, fn: Callable[[Any], Any], v: dict[str, Any], args: list[Any],
          expected: list[Any]) -> float:
    chunksize = v["chunksize"]
    if peer.startswith("multiprocessing.Pool") and v["mode"] == "map" and chunksize == 1:
        chunksize = 0  # its own default
    start = time.perf_counter()
    got = PEERS[peer](fn, args, v["mode"], chunksize)
    elapsed = time.perf_counter() - start
    if got != expected:
        raise AssertionError(f"{peer} returned wrong results on {v['name']}")
    return elapsed


def run(quick: bool = False, memory: bool = True, only: str | None = None) -> dict[str, Any]:
    """Every peer on every workload (``only``: those whose name matches), best of 1 run (quick) or 3,
    start-up and shutdown included; speed-ups are None for ``startup``; plus ``reusable`` and ``memory``."""
    import gc
    import multiprocessing
    import platform

    mod = _module()
    repeats = 1 if quick else 3
    out: dict[str, Any] = {
        "python": platform.python_version(), "machine": f"{platform.machine()} {platform.system()}",
        "cpus": os.cpu_count(), "workers": WORKERS,
        "mp_start_method": MP_METHOD or multiprocessing.get_start_method(),
        "repeats": repeats, "records_container": "list", "variants": []}
    serial_cache: dict[str, tuple[list[Any], list[float]]] = {}
    import re

    for v in _variants(quick):
        if only is not None and not re.search(only, v["name"]):
            continue
        wall = time.perf_counter()
        fn = getattr(mod, v["fn"])
        args, xargs = v["args"]() if callable(v["args"]) else (v["args"], None)
        key = v["key"]
        if key not in serial_cache:
            start = time.perf_counter()
            expected = _serial(fn, args, "map", 1)
            first = time.perf_counter() - start
            rest = [_time("serial", fn, v, args, expected) for _ in range(repeats - 1)]
            serial_cache[key] = (expected, [first, *rest])
        expected, serial_runs = serial_cache[key]
        runs = {"serial": serial_runs}
        # Round-robin over the peers, one run each per round, so a drift in
        # the machine's speed (this one is shared) spreads over every peer.
        for _ in range(repeats):
            for peer in PEERS:
                if peer != "serial":
                    peer_args = xargs if xargs is not None and peer == "xchannels.Pool" else args
                    runs.setdefault(peer, []).append(_time(peer, fn, v, peer_args, expected))
        del args, xargs
        gc.collect()
        seconds = {peer: min(r) for peer, r in runs.items()}
        serial = seconds["serial"]
        timing_only = v["name"] == "startup"
        # "runs": every run in order: the first pays first-use costs (imports; forkserver's server)
        out["variants"].append({"name": v["name"], "tasks": len(expected), "note": v["note"], "peers": [
            {"name": peer, "seconds": round(s, 4),
             "speedup_vs_serial": None if timing_only else round(serial / s, 3),
             "runs": [round(t, 4) for t in runs[peer]]} for peer, s in seconds.items()],
            "wall_seconds": round(time.perf_counter() - wall, 2)})
    if only is None or re.search(only, "reusable"):
        # In a fresh child process, so that its first call is the process's first pool.
        out["reusable"] = _in_fresh_process("_reusable_probe()", 120)
    if memory:
        out["memory"] = measure_memory()
    return out


# ---- reusable_pool ----------------------------------------------------------------------

REUSABLE_CALLS = 200
REUSABLE_TASKS = 4
REUSABLE_GOAL_MS = 2.0


def _reusable_probe() -> dict[str, Any]:
    """Run in a fresh process: the first ``reusable_pool(2)`` call with a
    4-task map (start-up included: its first pool), the later calls, and a
    ``with Pool(2)`` per map for comparison."""
    import contextlib
    import statistics

    import xchannels

    mod = _module()
    args = [1] * REUSABLE_TASKS
    expected = [mod.work(1)] * REUSABLE_TASKS

    def call(fresh: bool = False) -> float:
        start = time.perf_counter()
        with xchannels.Pool(WORKERS) if fresh else contextlib.nullcontext(xchannels.reusable_pool(WORKERS)) as pool:
            got = list(pool.map(mod.work, args))
        elapsed = time.perf_counter() - start
        if got != expected:
            raise AssertionError("reusable_pool returned wrong results")
        return elapsed

    first = call()
    later = [call() for _ in range(REUSABLE_CALLS)]
    xchannels.reusable_pool(WORKERS).shutdown()
    fresh = [call(fresh=True) for _ in range(10)]
    ms = lambda t: round(t * 1e3, 3)  # noqa: E731
    return {"tasks": REUSABLE_TASKS, "calls": REUSABLE_CALLS, "first_ms": ms(first),
            "later_median_ms": ms(statistics.median(later)), "later_best_ms": ms(min(later)),
            "later_p90_ms": ms(sorted(later)[int(len(later) * 0.9)]),
            "new_pool_median_ms": ms(statistics.median(fresh)), "goal_ms": REUSABLE_GOAL_MS}


def _in_fresh_process(call: str, timeout: float) -> dict[str, Any]:
    """``bench_pool.<call>`` run in a fresh child process, its JSON result; ``{"error"}`` if it failed."""
    import json
    import subprocess

    code = (f"import json, sys\nsys.path.insert(0, {HERE!r})\nimport bench_pool\n"
            f"sys.stdout.write('@@PROBE ' + json.dumps(bench_pool.{call}) + '\\n')\n")
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("@@PROBE ")), None)
        if line is None:
            raise RuntimeError(f"exit code {p.returncode}: {p.stderr.strip()[-500:]}")
        result: dict[str, Any] = json.loads(line[len("@@PROBE "):])
        return result
    except Exception as e:  # one probe's failure must not lose the others
        return {"error": f"{type(e).__name__}: {e}"[:300]}


# ---- memory ---------------------------------------------------------------------------

# peer -> multiprocessing start method (None: xchannels.Pool)
MEMORY_PEERS: dict[str, str | None] = {
    "xchannels.Pool": None,
    "multiprocessing.Pool[spawn]": "spawn",
    "multiprocessing.Pool[fork]": "fork",
    "multiprocessing.Pool[forkserver]": "forkserver",
}
_NAP = 0.05  # seconds per task while making sure both workers have started


def _tree(workers: set[int]) -> dict[str, tuple[int, int]]:
    """role -> (RSS, PSS) in bytes (psutil's memory_full_info: smaps_rollup; PSS 0 where unknown) summed
    over this process and every descendant (forkserver's workers are its children, not ours)."""
    import psutil

    me, sums = psutil.Process(), {}
    for p in [me, *me.children(recursive=True)]:
        try:
            m, cmd = p.memory_full_info(), " ".join(p.cmdline())
        except psutil.Error:  # gone meanwhile
            continue
        role = ("parent" if p.pid == me.pid else "worker" if p.pid in workers
                else "resource tracker" if "resource_tracker" in cmd else "forkserver" if "forkserver" in cmd
                else "worker")
        rss, pss = sums.get(role, (0, 0))
        sums[role] = (rss + m.rss, pss + getattr(m, "pss", 0))
    return sums


def _memory_probe(peer: str) -> dict[str, Any]:
    """Run in a fresh process: what a 2-worker pool of ``peer`` adds, once each worker has run a task (a
    worker started late may find both naps taken: then ask again)."""
    import gc

    mod = _module()
    pool = (_xchannels_pool if MEMORY_PEERS[peer] is None else _mp(MEMORY_PEERS[peer]))()
    gc.collect()
    before, seen = _tree(set()), set()
    with pool:
        for _ in range(40):
            if MEMORY_PEERS[peer] is None:
                seen.update(f.result() for f in [pool.submit(mod.nap, _NAP) for _ in range(WORKERS)])
            else:
                seen.update(r.get() for r in [pool.apply_async(mod.nap, (_NAP,)) for _ in range(WORKERS)])
            if len(seen) >= WORKERS:
                break
        after = _tree({pid for pid, _ in seen})
    k = 1 if all(pss for pss in [v[1] for v in after.values()]) else 0  # PSS where the kernel has it

    def mib(sums: dict[str, tuple[int, int]], *roles: str, k: int = k) -> float:
        return round(sum(v[k] for r, v in sums.items() if not roles or r in roles) / MiB, 2)

    helpers = [r for r in after if r not in ("parent", "worker")]
    return {"metric": "PSS" if k else "RSS", "added_mib": round(mib(after) - mib(before), 2),
            "parent_added_mib": round(mib(after, "parent") - mib(before, "parent"), 2),
            "workers_mib": mib(after, "worker"), "helpers_mib": mib(after, *helpers) if helpers else 0.0,
            "helpers": sorted(helpers), "rss_added_mib": round(mib(after, k=0) - mib(before, k=0), 2),
            "workers_seen": len(seen)}


def measure_memory(timeout: float = 60) -> dict[str, Any]:
    """The memory each 2-worker pool adds, each peer in a fresh child process so that peers do not disturb
    each other: ``{"metric", "peers": [{"name", "added_mib", ...}], "spawn_over_xchannels"}``."""
    peers = [{"name": peer, **_in_fresh_process(f"_memory_probe({peer!r})", timeout)} for peer in MEMORY_PEERS]
    by = {p["name"]: p for p in peers}
    xs, sp = by["xchannels.Pool"].get("added_mib"), by["multiprocessing.Pool[spawn]"].get("added_mib")
    metrics = {p["metric"] for p in peers if "metric" in p}
    return {"metric": metrics.pop() if len(metrics) == 1 else "mixed", "workers": WORKERS, "peers": peers,
            "spawn_over_xchannels": round(sp / xs, 2) if xs and sp and xs > 0 else None}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="xchannels.Pool against the other pools")
    ap.add_argument("--quick", action="store_true", help="one run per peer, smaller workloads")
    ap.add_argument("--only", metavar="REGEX", help="run only the workloads whose name matches")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    a = ap.parse_args()
    import report

    print("\n".join(report.section_lines("pool", run(quick=a.quick, memory=not a.no_memory, only=a.only))))
