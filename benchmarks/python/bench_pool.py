"""benchmarks/python/bench_pool.py: xchannels.Pool against serial, a thread
pool and the process pools, on CPU-bound tasks, start-up included.

Workloads (each timed from pool creation to the last result, pool shut down):

- ``big``: the seed workload, 16 tasks ``work(n)`` with n spread evenly over
  200,000..400,000 (quick: 8 tasks over 50,000..100,000), ``map`` with each
  API's default chunking.
- ``small``: 10,000 tasks ``work(1000)`` (quick: 2,000), where messaging cost
  dominates: ``map`` with each API's default chunking (``chunksize=1`` for the
  Executors, multiprocessing.Pool picks ``len / (4 * workers)``), and the same
  with ``chunksize`` matched to multiprocessing.Pool's choice.
- ``small-submit``: the same tasks, one ``submit`` / ``apply_async`` each.
- ``startup``: one trivial task, which measures start-up plus shutdown (no
  speed-ups reported for it).

Peers: serial, ``xchannels.Pool(2)``, ``multiprocessing.Pool(2)`` (the
platform's default start method: fork on Linux up to 3.13, the ratios
"vs mp.Pool" are to it), the same with the ``spawn`` and ``forkserver``
start methods, ``ProcessPoolExecutor(2)``, ``ThreadPoolExecutor(2)``.

Importing this module has no side effects. ``run(quick)`` returns the figures
(``make bench`` calls it); ``python bench_pool.py [--quick]`` prints a table.
The workload function is taken from this module imported as ``bench_pool``
(its folder is put on ``sys.path``), so worker interpreters and processes can
import it by name whatever name the caller imported this file under.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms in every fresh worker interpreter
    from typing import Any, Callable

# Only light imports at module level: worker interpreters import this module
# to find ``work``, inside the timed region. The peers import what they need.

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = 2


def work(n: int) -> int:
    """The seed workload: n! mod 1e9+7, one multiplication at a time."""
    k = 1
    for i in range(n, 1, -1):
        k *= i
        k %= 1000000007
    return k


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


# ---- one timed run per peer ------------------------------------------------------


def _serial(fn: Callable[[int], int], ns: list[int], mode: str, chunksize: int) -> list[int]:
    return [fn(n) for n in ns]


def _xchannels(fn: Callable[[int], int], ns: list[int], mode: str, chunksize: int) -> list[int]:
    import xchannels

    with xchannels.Pool(WORKERS) as pool:
        if mode == "submit":
            futures = [pool.submit(fn, n) for n in ns]
            return [f.result() for f in futures]
        return list(pool.map(fn, ns, chunksize=chunksize))


def _mp_pool(fn: Callable[[int], int], ns: list[int], mode: str, chunksize: int,
             method: str | None = None) -> list[int]:
    import multiprocessing

    ctx = multiprocessing.get_context(method)
    with ctx.Pool(WORKERS) as pool:
        if mode == "submit":
            results = [pool.apply_async(fn, (n,)) for n in ns]
            return [r.get() for r in results]
        # chunksize 0 means multiprocessing.Pool's own default
        return pool.map(fn, ns, chunksize=chunksize or None)


def _executor(kind: str) -> Callable[..., list[int]]:
    def run(fn: Callable[[int], int], ns: list[int], mode: str, chunksize: int) -> list[int]:
        import concurrent.futures

        cls = getattr(concurrent.futures, kind)
        with cls(WORKERS) as pool:
            if mode == "submit":
                futures = [pool.submit(fn, n) for n in ns]
                return [f.result() for f in futures]
            return list(pool.map(fn, ns, chunksize=max(1, chunksize)))

    return run


PEERS: dict[str, Callable[..., list[int]]] = {
    "serial": _serial,
    "xchannels.Pool": _xchannels,
    "multiprocessing.Pool": _mp_pool,
    # The other start methods: spawn is the default on macOS and Windows,
    # forkserver on Linux from Python 3.14; each starts fresh interpreters
    # that import the task's module, as xchannels' workers do.
    "multiprocessing.Pool[spawn]": lambda *a: _mp_pool(*a, method="spawn"),
    "multiprocessing.Pool[forkserver]": lambda *a: _mp_pool(*a, method="forkserver"),
    "ProcessPoolExecutor": _executor("ProcessPoolExecutor"),
    "ThreadPoolExecutor": _executor("ThreadPoolExecutor"),
}


def _mp_default_chunksize(tasks: int) -> int:
    size, extra = divmod(tasks, WORKERS * 4)
    return size + bool(extra)


def _variants(quick: bool) -> list[dict[str, Any]]:
    if quick:
        big = [50_000 + 50_000 * i // 7 for i in range(8)]
        small = [1000] * 2000
    else:
        big = [200_000 + 200_000 * i // 15 for i in range(16)]
        small = [1000] * 10_000
    matched = _mp_default_chunksize(len(small))
    return [
        {"name": "startup", "ns": [1], "mode": "map", "chunksize": 1,
         "note": "one trivial task: start-up and shutdown cost (no speed-ups)"},
        {"name": "big", "ns": big, "mode": "map", "chunksize": 1, "note": "map, default chunking"},
        {"name": "small", "ns": small, "mode": "map", "chunksize": 1,
         "note": "map, default chunking (Executors 1, multiprocessing.Pool its own)"},
        {"name": f"small-chunk{matched}", "ns": small, "mode": "map", "chunksize": matched,
         "note": f"map, chunksize={matched} for every pool"},
        {"name": "small-submit", "ns": small, "mode": "submit", "chunksize": 1,
         "note": "one submit/apply_async per task"},
    ]


def _time(peer: str, fn: Callable[[int], int], v: dict[str, Any], expected: list[int]) -> float:
    chunksize = v["chunksize"]
    if peer.startswith("multiprocessing.Pool") and v["name"] in ("big", "small"):
        chunksize = 0  # its own default
    start = time.perf_counter()
    got = PEERS[peer](fn, v["ns"], v["mode"], chunksize)
    elapsed = time.perf_counter() - start
    if got != expected:
        raise AssertionError(f"{peer} returned wrong results on {v['name']}")
    return elapsed


def run(quick: bool = False) -> dict[str, Any]:
    """run(quick=False) -> dict

    Time every peer on every workload (best of 1 run when quick, else of 3;
    start-up and shutdown included) and return the figures:
    ``{"python", "machine", "cpus", "mp_start_method", "repeats",
    "variants": [{"name", "tasks", "note", "peers": [{"name", "seconds",
    "speedup_vs_serial", "speedup_vs_mp_pool"}]}]}`` (speed-ups are None for
    the ``startup`` variant).
    """
    import multiprocessing
    import platform

    fn = _module().work
    repeats = 1 if quick else 3
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.system()}",
        "cpus": os.cpu_count(),
        "workers": WORKERS,
        "mp_start_method": multiprocessing.get_start_method(),
        "repeats": repeats,
        "variants": [],
    }
    serial_cache: dict[tuple[int, ...], tuple[list[int], float]] = {}
    for v in _variants(quick):
        key = tuple(v["ns"])
        if key not in serial_cache:
            start = time.perf_counter()
            expected = _serial(fn, v["ns"], "map", 1)
            first = time.perf_counter() - start
            rest = [_time("serial", fn, v, expected) for _ in range(repeats - 1)]
            serial_cache[key] = (expected, min([first, *rest]))
        expected, serial = serial_cache[key]
        seconds = {"serial": serial}
        for peer in PEERS:
            if peer != "serial":
                seconds[peer] = min(_time(peer, fn, v, expected) for _ in range(repeats))
        mp = seconds["multiprocessing.Pool"]
        timing_only = v["name"] == "startup"
        out["variants"].append(
            {
                "name": v["name"],
                "tasks": len(v["ns"]),
                "note": v["note"],
                "peers": [
                    {
                        "name": peer,
                        "seconds": round(s, 4),
                        "speedup_vs_serial": None if timing_only else round(serial / s, 3),
                        "speedup_vs_mp_pool": None if timing_only else round(mp / s, 3),
                    }
                    for peer, s in seconds.items()
                ],
            }
        )
    return out


def format_table(result: dict[str, Any]) -> str:
    """The figures of :func:`run` as a text table."""
    lines = [
        f"Python {result['python']} on {result['machine']}, {result['cpus']} CPUs, "
        f"{result['workers']} workers, multiprocessing start method "
        f"{result['mp_start_method']}, best of {result['repeats']}, start-up included",
    ]
    for v in result["variants"]:
        lines.append("")
        lines.append(f"{v['name']}: {v['tasks']} tasks, {v['note']}")
        lines.append(f"  {'peer':<22}{'seconds':>9}{'vs serial':>11}{'vs mp.Pool':>12}")
        for p in v["peers"]:
            if p["speedup_vs_serial"] is None:
                lines.append(f"  {p['name']:<22}{p['seconds']:>9.3f}")
            else:
                lines.append(
                    f"  {p['name']:<22}{p['seconds']:>9.3f}{p['speedup_vs_serial']:>10.2f}x"
                    f"{p['speedup_vs_mp_pool']:>11.2f}x"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_table(run(quick="--quick" in sys.argv[1:])))
