"""tests/python/test_dask.py: xchannels inside a real Dask cluster.

A ``LocalCluster(processes=True)`` with one worker process whose tasks fan
out over worker interpreters, with Dask's statistical profiler left on (it
calls ``sys._current_frames()`` every 10 ms in every worker; on Pythons
where CPython walks every interpreter's threads there, the worker process
died of heap corruption before bindings/profilers.cpp). Each cluster runs
in a script of its own in a fresh Python, so a dying worker, a hung
cluster or Dask's own threads never reach the test process; the test
asserts on what the script prints. The tasks live in dask_tasks.py, and
the guide's own example (docs/dask.md) is run as written.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import resource
import subprocess
import sys
import textwrap

import pytest

import xchannels

pytest.importorskip("distributed", reason="dask[distributed] is a test dependency: make venvs installs it")

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PACKAGE = pathlib.Path(xchannels.__file__).resolve().parents[1]


def _run(tmp_path: pathlib.Path, code: str, timeout: float = 240) -> str:
    script = tmp_path / "cluster_script.py"
    script.write_text(textwrap.dedent(code))
    env = dict(os.environ)
    # The cluster's processes (spawned by Dask) find the task modules here.
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(HERE), str(PACKAGE), env.get("PYTHONPATH", "")])
    # A worker that dies (the point of one test) leaves no core file.
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                         timeout=timeout, cwd=tmp_path,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)))
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-6000:]}"
    return out.stdout


# One worker process of one thread, Dask's profiler on (its default), the
# tasks of dask_tasks.py: a Pool per task (the shape that crashed), then the
# process-wide reusable pool. The worker process must be the same one at
# the end (a worker that dies is restarted by its nanny, and a task that
# killed 4 workers ends in KilledWorker), and the profiler must have taken
# samples while the interpreters ran.
CLUSTER = """
    import json, os, sys, time
    import dask
    from distributed import Client, LocalCluster
    import dask_tasks

    if __name__ == "__main__":
        report = {"profiler_on": dask.config.get("distributed.worker.profile.enabled")}
        ns = [3000 + 7 * i for i in range(12)]
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            before = client.run(os.getpid)
            pooled = client.gather([client.submit(dask_tasks.fanned_pool, ns, pure=False)
                                    for _ in range(6)])
            reused = client.gather([client.submit(dask_tasks.fanned_reusable, ns, pure=False)
                                    for _ in range(40)])
            time.sleep(1.2)  # one profile cycle: the samples taken so far are counted
            report["samples"] = client.profile()["count"]
            report["where"] = client.submit(dask_tasks.where_workers_run, 4, pure=False).result()
            import xchannels._xchannels as core
            report["guard"] = core._frames_guard
            report["worker_guarded"] = list(client.run(
                lambda: sys._current_frames is getattr(sys.modules["xchannels._xchannels"],
                                                       "_current_frames", None)).values())
            report["same_worker"] = client.run(os.getpid) == before
            report["worker_pid"] = list(before.values())[0]
        expected = [dask_tasks.fact_mod(n) for n in ns]
        report["pooled_ok"] = pooled == [expected] * 6
        report["reused_ok"] = reused == [expected] * 40
        print(json.dumps(report))
    """


def test_fanned_tasks_keep_their_worker_with_the_profiler_on(tmp_path):
    report = json.loads(_run(tmp_path, CLUSTER).strip().splitlines()[-1])
    assert report["profiler_on"] is True
    assert report["pooled_ok"] and report["reused_ok"]
    assert report["same_worker"], "the worker process died and was restarted"
    assert report["samples"] > 0, "Dask's profiler took no samples"
    # The worker interpreters ran in the Dask worker's process, without
    # distributed, one thread each, and saw their own thread only.
    for pid, has_distributed, threads, own_frames in report["where"]:
        assert pid == report["worker_pid"]
        assert not has_distributed
        assert threads == 1
        assert own_frames
    # Where CPython walks every interpreter, the worker's sys holds the guard.
    assert report["worker_guarded"] == [report["guard"]]


# The same cluster without the guard: a preload puts CPython's own
# sys._current_frames back in the worker's sys, and the worker dies as it
# did before bindings/profilers.cpp (free(): invalid pointer, then
# KilledWorker once 4 workers died). This shows the test above can fail.
UNGUARDED = """
    import os, sys
    from distributed import Client, LocalCluster
    import dask_tasks

    if __name__ == "__main__":
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                          preload=["unguard"]) as cluster, Client(cluster) as client:
            before = client.run(os.getpid)
            try:
                client.gather([client.submit(dask_tasks.fanned_pool, [3000] * 12, pure=False)
                               for _ in range(6)])
                print("ran")
            except Exception as e:
                print(type(e).__name__)
            print("same worker" if client.run(os.getpid) == before else "worker died")
    """


@pytest.mark.skipif(not xchannels._xchannels._frames_guard,
                    reason="CPython's sys._current_frames() walks the calling interpreter only on this Python")
def test_without_the_guard_the_worker_dies(tmp_path):
    (tmp_path / "unguard.py").write_text(
        "import sys\nimport xchannels._xchannels as core\nsys._current_frames = core._sys_current_frames\n")
    out = _run(tmp_path, UNGUARDED).split()
    assert "worker" in out and out[-1] == "died", out


# ---- the guide's example, as written ---------------------------------------------

# docs/dask.md shows its files in ```py blocks whose first line names the
# file ("# tasks.py"); test_docs.py runs ```python blocks only, as scripts
# of their own, which these files are not.
BLOCK = re.compile(r"^```py\n# (\w+\.py)\b.*?\n(.*?)^```", re.S | re.M)


def test_the_guides_example_runs(tmp_path):
    files = {m.group(1): f"# {m.group(1)}\n" + m.group(2)
             for m in BLOCK.finditer((ROOT / "docs" / "dask.md").read_text())}
    assert set(files) >= {"tasks.py", "cluster.py"}, files.keys()
    for name, text in files.items():
        if name != "cluster.py":
            (tmp_path / name).write_text(text)
    out = _run(tmp_path, files["cluster.py"])
    # The longest Collatz chain below 300,000 starts at 230,631 (442 steps).
    assert out.strip().splitlines()[-1] == "230631 442"
