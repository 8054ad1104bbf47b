"""tests/python/dask_tasks.py: the tasks test_dask.py's Dask cluster runs.

An importable module, as the Dask guide asks: Dask's worker process
imports it to run a task, and xchannels' worker interpreters import it to
run the functions a task fans out. So it imports xchannels and never
``distributed`` (which cannot load in an own-GIL sub-interpreter: psutil's
extension refuses).
"""

from __future__ import annotations

import os
import sys
import threading

import xchannels


def fact_mod(n: int) -> int:
    """Pure-Python CPU work: n! modulo a prime."""
    r = 1
    for i in range(2, n):
        r = (r * i) % 1_000_003
    return r


def fanned_pool(ns: list[int]) -> list[int]:
    """The issue's task: a Pool of its own per task (each task pays the
    workers' start-up)."""
    with xchannels.Pool(2) as p:
        return list(p.map(fact_mod, ns))


def fanned_reusable(ns: list[int]) -> list[int]:
    """The guide's task: the process-wide pool, made by the first task."""
    return list(xchannels.reusable_pool(2).map(fact_mod, ns))


def where(_: object) -> tuple[int, bool, int, bool]:
    """Run in a worker interpreter: its process, whether ``distributed`` was
    imported there, how many threads the interpreter has, and whether
    sys._current_frames() lists this interpreter's thread only."""
    return (os.getpid(), "distributed" in sys.modules, len(threading.enumerate()),
            set(sys._current_frames()) == {threading.get_ident()})


def where_workers_run(n: int) -> list[tuple[int, bool, int, bool]]:
    return list(xchannels.reusable_pool(2).map(where, range(n)))
