"""benchmarks/python/bench_pool.py: xchannels.Pool against serial, thread and process pools, start-up
included (benchmarks/README.md, "Pool"). ``run(quick)`` returns the figures."""

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


# ---- task functions (run in the workers) ------------------------------------------


def work(n: int) -> int:
    """The seed workload: n! mod 1e9+7, one multiplication at a time."""
    k = 1
    for i in range(2, n + 1):
        k = k * i % 1000000007
    return k


def crc(data: Any) -> tuple[int, int]:
    """(length, CRC-32) of a bytes object."""
    import zlib  # available in own-GIL sub-interpreters (3.12, 3.13)

    return len(data), zlib.crc32(data)


def _module() -> Any:
    """This file imported as ``bench_pool``, its bytecode cached first (with PYTHONDONTWRITEBYTECODE set,
    every worker interpreter would compile it inside the timed region; a forked worker never does)."""
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
    """Seeded: the same every time."""
    import random

    return [random.Random(k).randbytes(DATA_BYTES) for k in range(DATA_TASKS)]


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


# The peers import their modules when they make a pool, not when this module is imported: a worker
# interpreter that imported multiprocessing and concurrent.futures with it took 15 ms more to start.
def _mp(method: str | None) -> Callable[[], Any]:
    def make() -> Any:
        import multiprocessing

        return multiprocessing.get_context(method).Pool(WORKERS)
    return make


def _futures(kind: str, **options: Any) -> Callable[[], Any]:
    def make() -> Any:
        import concurrent.futures

        return getattr(concurrent.futures, kind)(WORKERS, **options)
    return make


# multiprocessing.Pool's start method: fork on Linux on every Python (the goals compare with a forked pool;
# 3.14 made forkserver the default, which is a peer of its own), else the platform's default. Spawn (the
# default on macOS and Windows) and forkserver start fresh interpreters that import the task's module, as
# xchannels' workers do.
MP_METHOD = "fork" if sys.platform.startswith("linux") else None
PEERS: dict[str, Callable[..., list[Any]]] = {
    "serial": _serial, "xchannels.Pool": _pool(lambda: __import__("xchannels").Pool(WORKERS)),
    "multiprocessing.Pool": _pool(_mp(MP_METHOD)), "multiprocessing.Pool[spawn]": _pool(_mp("spawn")),
    "multiprocessing.Pool[forkserver]": _pool(_mp("forkserver")),
    "ProcessPoolExecutor": _pool(_futures("ProcessPoolExecutor")),
    "ThreadPoolExecutor": _pool(_futures("ThreadPoolExecutor")),
}
if sys.version_info >= (3, 14):
    import site  # imported at start-up already

    # Functions travel pickled (by reference): the workers import this module, so they need its folder.
    PEERS["InterpreterPoolExecutor"] = _pool(_futures("InterpreterPoolExecutor", initializer=site.addsitedir,
                                                      initargs=(HERE,)))


def _variants(quick: bool) -> list[dict[str, Any]]:
    """The workloads. ``args``: the task arguments, or a callable returning them, called just before the
    workload is timed (so that one workload's payloads do not sit in the parent while another forks its
    workers)."""
    lo, k = (50_000, 8) if quick else (200_000, 16)
    big = [lo + lo * i // (k - 1) for i in range(k)]
    small = [1000] * (2000 if quick else 10_000)
    rows = [  # name, task function, args, mode, note
        ("startup", "work", [1], "map", "one trivial task: start-up and shutdown cost (no speed-ups)"),
        ("big", "work", big, "map", "CPU-bound work(n), map, default chunking"),
        ("small-submit", "work", small, "submit", "one submit/apply_async per task"),
        ("data-bytes", "crc", _bytes_payloads, "map",
         f"each task given its own {DATA_BYTES // MiB} MiB bytes, returns (len, zlib.crc32); map, default chunking"),
    ]
    return [dict(zip(("name", "fn", "args", "mode", "note"), row)) for row in rows]


def _time(peer: str, fn: Callable[[Any], Any], v: dict[str, Any], args: list[Any],
          expected: list[Any]) -> float:
    # chunksize 0: multiprocessing.Pool's own default, 1 for the others
    chunksize = 0 if peer.startswith("multiprocessing.Pool") else 1
    start = time.perf_counter()
    got = PEERS[peer](fn, args, v["mode"], chunksize)
    elapsed = time.perf_counter() - start
    if got != expected:
        raise AssertionError(f"{peer} returned wrong results on {v['name']}")
    return elapsed


def run(quick: bool = False) -> dict[str, Any]:
    """Every peer on every workload, best of 1 run (quick) or 3, start-up and shutdown included; speed-ups
    are None for ``startup``; plus ``reusable``."""
    import gc
    import multiprocessing

    mod = _module()
    heavy = _imported_with_me()
    if heavy:
        raise AssertionError(f"importing bench_pool imports {heavy}: every worker would pay for it, timed")
    repeats = 1 if quick else 3
    out: dict[str, Any] = {
        "python": sys.version.split()[0], "cpus": os.cpu_count(), "workers": WORKERS,
        "mp_start_method": MP_METHOD or multiprocessing.get_start_method(),
        "repeats": repeats, "variants": []}
    for v in _variants(quick):
        wall = time.perf_counter()
        fn = getattr(mod, v["fn"])
        args = v["args"]() if callable(v["args"]) else v["args"]
        start = time.perf_counter()
        expected = _serial(fn, args, "map", 1)
        runs = {"serial": [time.perf_counter() - start]}
        runs["serial"] += [_time("serial", fn, v, args, expected) for _ in range(repeats - 1)]
        # Round-robin over the peers, one run each per round, so a drift in
        # the machine's speed (this one is shared) spreads over every peer.
        for _ in range(repeats):
            for peer in PEERS:
                if peer != "serial":
                    runs.setdefault(peer, []).append(_time(peer, fn, v, args, expected))
        del args
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
    # In a fresh child process, so that its first call is the process's first pool.
    out["reusable"] = _in_fresh_process("_reusable_probe()", 120)
    return out


# ---- reusable_pool ----------------------------------------------------------------------

REUSABLE_CALLS = 200
REUSABLE_TASKS = 4
REUSABLE_GOAL_MS = 2.0


def _reusable_probe() -> dict[str, Any]:
    """In a fresh process: the first ``reusable_pool(2)`` map, the later ones, and a ``with Pool(2)`` per map."""
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


def _imported_with_me() -> list[str]:
    """The heavy modules a worker that imports this module (to find its task) imports with it, beyond
    those its Python imported at start-up (a .pth file may import typing, not this module's doing)."""
    import subprocess

    code = (f"import sys\nbefore = set(sys.modules)\nsys.path.insert(0, {HERE!r})\nimport bench_pool\n"
            "print(*sorted({'multiprocessing', 'concurrent.futures', 'typing'} & (set(sys.modules) - before)))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.split()


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
        return json.loads(line[len("@@PROBE "):])
    except Exception as e:  # its failure must not lose the pool's figures
        return {"error": f"{type(e).__name__}: {e}"[:300]}

