"""benchmarks/python/bench_dask.py: a Dask cluster for GIL-bound work (Collatz chains), one worker process
fanning out over ``xchannels.reusable_pool(2)`` against a worker process per core; ``run(quick)`` returns the
figures. Workers import this module for the tasks: no ``distributed`` or ``psutil`` at the top."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CHUNK = 30_000
TASKS, TASKS_QUICK = 32, 12
ROUNDS, ROUNDS_QUICK = 3, 1
INTERPRETERS = 2
CONFIGS = {
    # name: (worker processes, threads per worker, task); two threads, so that the next task's batches queue
    # while one ends
    "xchannels": (1, 2, "chunk_fanned"),
    "processes": (2, 1, "chunk_serial"),
}
LABELS = {
    "xchannels": f"1 worker process (2 threads) x {INTERPRETERS} interpreters",
    "processes": "2 worker processes x 1 thread",
}


# ---- the tasks ----------------------------------------------------------------------


def collatz_steps(n: int) -> int:
    steps = 0
    while n != 1:
        n = 3 * n + 1 if n % 2 else n // 2
        steps += 1
    return steps


def chunk_serial(lo: int, hi: int) -> int:
    return max(map(collatz_steps, range(lo, hi)))


def chunk_fanned(lo: int, hi: int) -> int:
    import xchannels

    pool = xchannels.reusable_pool(INTERPRETERS)
    return max(pool.map(collatz_steps, range(lo, hi), chunksize=1_000))


# ---- one cluster (the child) ------------------------------------------------------


class TreeMemory(threading.Thread):
    """Peak of the summed RSS of this process and its descendants."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.procs = 0, 0
        self.stop = threading.Event()

    def run(self) -> None:
        from common import tree_rss

        while not self.stop.wait(0.02):
            self.peak, self.procs = max((self.peak, self.procs), tree_rss(os.getpid()))


def one_cluster(config: str, quick: bool) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    workers, threads, task = CONFIGS[config]
    fn = globals()[task]
    tasks, rounds = (TASKS_QUICK, ROUNDS_QUICK) if quick else (TASKS, ROUNDS)
    los = [1 + i * CHUNK for i in range(tasks)]
    expected = None
    t0 = time.monotonic()
    with LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        up = time.monotonic() - t0
        t = time.monotonic()
        client.gather(client.map(fn, [1] * workers * threads, [1_001] * workers * threads, pure=False))
        warm = time.monotonic() - t
        memory = TreeMemory()
        memory.start()
        times = []
        for _ in range(rounds):
            t = time.monotonic()
            parts = client.map(fn, los, [lo + CHUNK for lo in los], pure=False)
            longest = client.submit(max, parts, pure=False).result()
            times.append(time.monotonic() - t)
            expected = longest if expected is None else expected
            assert longest == expected, (longest, expected)
        memory.stop.set()
        memory.join()
        profiling = client.run(lambda: __import__("dask").config.get("distributed.worker.profile.enabled"))
    best = min(times)
    return {
        "config": config, "label": LABELS[config], "workers": workers, "threads": threads,
        "tasks": tasks, "chunk": CHUNK, "rounds": rounds, "times": times,
        "numbers_per_s": tasks * CHUNK / best, "cluster_up_s": up, "warmup_s": warm,
        "rss_mib": memory.peak / 2**20, "procs": memory.procs, "longest": expected,
        "profiler_on": all(profiling.values()),
    }


# ---- the harness's side ------------------------------------------------------------


def run(quick: bool = False) -> dict[str, Any]:
    """Both clusters, each in a child of its own; rows by config."""
    try:
        import distributed  # noqa: F401  (installed? the children need it)
    except ImportError:
        return {"rows": [], "note": "dask[distributed] is not installed"}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    rows: list[dict[str, Any]] = []
    for config in CONFIGS:
        cmd = [sys.executable, str(HERE / "bench_dask.py"), "--config", config, *(["--quick"] if quick else [])]
        child = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if child.returncode == 0:
            rows.append({**json.loads(child.stdout.strip().splitlines()[-1]), "status": "ok"})
        else:
            rows.append({"config": config, "label": LABELS[config], "status": "error",
                         "error": child.stderr.strip()[-800:]})
    out: dict[str, Any] = {"rows": rows}
    by = {r["config"]: r for r in rows if r["status"] == "ok"}
    if len(by) == 2:
        x, procs = by["xchannels"], by["processes"]
        out["throughput_ratio"] = x["numbers_per_s"] / procs["numbers_per_s"]
        out["rss_ratio"] = x["rss_mib"] / procs["rss_mib"]
    return out


if __name__ == "__main__":
    # One cluster (run's child). The tasks by their module's name: Dask would ship the functions of
    # __main__ by value, and worker interpreters cannot import those.
    import bench_dask

    print(json.dumps(bench_dask.one_cluster(sys.argv[sys.argv.index("--config") + 1], "--quick" in sys.argv)))
