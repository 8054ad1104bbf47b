"""python/xchannels/_map.py: the machinery of :meth:`xchannels.Pool.map`.

How a map's calls become tasks (:func:`plan`, :func:`tasks`), where their
outcomes land (:class:`MapResults`, one slot per call, or per chunk with
``chunksize`` > 1), and the iterator that yields them in order
(:func:`iterate`). The pool's collector fills the slots; see ``_pool``.

- ``chunksize=1``: calls travel in GROUP tasks of up to :data:`GROUP_MAX`
  calls (and at most ``len / (8 * workers)``, so every worker gets several),
  one message per group instead of per call, each call still with its own
  outcome; a worker hands the rest of a group back once it runs long
  (``_bootstrap``), so long calls still spread over the workers. Short maps
  travel as one CALL task per call.
- ``chunksize`` > 1: each chunk is one CHUNK task with one outcome; an
  exception loses the rest of its chunk, as with ProcessPoolExecutor.
- ``buffersize`` (3.14's ``Executor.map``): :func:`buffered` reads the
  iterables lazily and keeps at most that many tasks (a call, or a chunk
  with ``chunksize`` > 1) sent and not yet yielded, sending the next as
  each result is yielded, so an endless iterable can be mapped.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from typing import Any, Callable, Iterable, Iterator, MutableMapping

from xchannels._protocol import CALL, CHUNK, GROUP, call_task, chunk_task, group_task

__all__ = ["GROUP_MAX", "MapResults", "buffered", "check_buffersize", "iterate", "plan", "slices", "tasks"]

GROUP_MAX = 64


class MapResults:
    """The outcomes of one ``map`` call, one slot per call (per chunk of
    calls with ``chunksize`` > 1), filled by the collector and read in order
    by the iterator. Cheaper than a Future per call: one lock for the whole
    map.

    Locking: ``cond`` (its lock) guards ``slots`` and ``waiting``. A slot goes
    from None to ``(ok, value)`` once, under ``cond``; ``value`` is the
    result, or the exception to raise. ``waiting`` is the slot the iterator
    sleeps on (-1: none), so settlers notify only when it matters. The
    iterator reads a filled slot without the lock (a slot never changes once
    filled, until the iterator itself clears it).
    """

    __slots__ = ("base", "slots", "cond", "waiting", "name", "first", "chunk")

    def __init__(self, base: int, count: int, name: str = "", first: int = 0, chunk: int = 1) -> None:
        self.base = base
        self.slots: list[tuple[bool, Any] | None] = [None] * count
        self.cond = threading.Condition(threading.Lock())
        self.waiting = -1
        # For error messages: the function's name, the map's item of slot 0,
        # and the calls per slot (chunksize for a chunked map).
        self.name = name
        self.first = first
        self.chunk = chunk

    def describe(self, tid: int) -> str:
        """What slot ``tid`` holds, for an error message."""
        item = self.first + (tid - self.base) * self.chunk
        if self.chunk > 1:
            return f"the results of the chunk from item {item} of map({self.name})"
        return f"the result of item {item} of map({self.name})"

    def settle(self, tid: int, ok: bool, value: Any) -> None:
        i = tid - self.base
        with self.cond:
            if self.slots[i] is None:
                self.slots[i] = (ok, value)
                if self.waiting == i:
                    self.cond.notify()

    def settle_many(self, tid: int, outcomes: list[tuple[bool, Any]]) -> None:
        """settle() for the calls ``tid``, ``tid + 1``, ... under one lock."""
        i = tid - self.base
        with self.cond:
            slots = self.slots
            for k, outcome in enumerate(outcomes, i):
                if slots[k] is None:
                    slots[k] = outcome
            if i <= self.waiting < i + len(outcomes):
                self.cond.notify()

    def wait(self, i: int, deadline: float | None) -> tuple[bool, Any]:
        slot = self.slots[i]
        if slot is not None:
            return slot
        with self.cond:
            self.waiting = i
            try:
                while (slot := self.slots[i]) is None:
                    if deadline is None:
                        self.cond.wait()
                    else:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            raise TimeoutError
                        self.cond.wait(remaining)
            finally:
                self.waiting = -1
        return slot


def plan(calls: list[tuple[Any, ...]], chunksize: int, workers: int) -> tuple[int, list[tuple[Any, ...]]]:
    """plan(calls, chunksize, workers) -> (kind, payloads)

    How a map's argument tuples travel: as CALL tasks (one per call), GROUP
    tasks or CHUNK tasks; ``payloads`` holds one entry per task (an argument
    tuple for CALL, a tuple of them otherwise)."""
    if chunksize > 1:
        return CHUNK, [tuple(calls[i : i + chunksize]) for i in range(0, len(calls), chunksize)]
    group = max(1, min(GROUP_MAX, len(calls) // (8 * workers)))
    if group == 1:
        return CALL, calls
    return GROUP, [tuple(calls[i : i + group]) for i in range(0, len(calls), group)]


def slot_count(kind: int, payloads: list[tuple[Any, ...]], calls: int) -> int:
    """Slots (and task ids) a map needs: one per call, per chunk for CHUNK."""
    return len(payloads) if kind == CHUNK else calls


def tasks(base: int, kind: int, module: str, qualname: str, payloads: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The task messages of a planned map whose first id is ``base``: a
    GROUP task's id is that of its first call."""
    out = []
    tid = base
    if kind == CALL:
        for args in payloads:
            out.append(call_task(tid, module, qualname, args))
            tid += 1
    elif kind == CHUNK:
        for chunk in payloads:
            out.append(chunk_task(tid, module, qualname, chunk))
            tid += 1
    else:
        for group in payloads:
            out.append(group_task(tid, module, qualname, group))
            tid += len(group)
    return out


def slices(count: int, workers: int) -> list[tuple[int, int]]:
    """slices(count, workers) -> [(start, stop), ...]

    How a map's ``count`` tasks are sent: all at once when there are at most
    ``4 * workers``; else a first slice of one task per worker, then slices
    that double, so the workers start early and the number of sends stays
    logarithmic."""
    if count <= 4 * workers:
        return [(0, count)]
    out = []
    start, size = 0, workers
    while start < count:
        stop = min(count, start + size)
        out.append((start, stop))
        start, size = stop, size * 2
    return out


def iterate(
    pending: MutableMapping[int, Any], results: MapResults, deadline: float | None, chunked: bool
) -> Iterator[Any]:
    """Yield a map's results in order. If the iterator is abandoned, the
    results not yet read are dropped from ``pending`` (tasks already queued
    still run)."""
    i = 0
    try:
        for i in range(len(results.slots)):
            ok, value = results.wait(i, deadline)
            results.slots[i] = None  # let the value go once yielded
            if not ok:
                raise value
            if chunked:
                yield from value
            else:
                yield value
        i += 1
    finally:
        for j in range(i, len(results.slots)):
            pending.pop(results.base + j, None)


def check_buffersize(buffersize: Any) -> None:
    """Refuse what ``Executor.map`` refuses (3.14): not an int, or < 1."""
    if buffersize is None:
        return
    if not isinstance(buffersize, int) or isinstance(buffersize, bool):
        raise TypeError("buffersize must be an integer or None")
    if buffersize < 1:
        raise ValueError("buffersize must be None or > 0")


def buffered(
    send: Callable[[int, list[tuple[Any, ...]], list[tuple[Any, ...]], int], MapResults],
    pending: MutableMapping[int, Any],
    calls: Iterable[tuple[Any, ...]],
    chunksize: int,
    buffersize: int,
    deadline: float | None,
) -> Iterator[Any]:
    """A map with at most ``buffersize`` tasks in flight: ``send(kind,
    payloads, calls, first)`` sends one task (a CALL, or a CHUNK of
    ``chunksize`` calls, the first being item ``first`` of the map) and
    returns its results. The first ``buffersize`` tasks are sent
    before this returns (so a bad argument among them raises from map, as
    the unbuffered map raises for any); each later one when a result is
    yielded. Abandoning the iterator drops what it has not read."""
    calls = iter(calls)
    sent = 0

    def send_next() -> MapResults | None:
        nonlocal sent
        batch = list(itertools.islice(calls, chunksize))
        if not batch:
            return None
        first, sent = sent, sent + len(batch)
        if chunksize > 1:
            return send(CHUNK, [tuple(batch)], batch, first)
        return send(CALL, batch, batch, first)

    window: collections.deque[MapResults] = collections.deque()
    for _ in range(buffersize):
        results = send_next()
        if results is None:
            break
        window.append(results)

    def results_in_order() -> Iterator[Any]:
        try:
            while window:
                results = window.popleft()
                more = send_next()
                if more is not None:
                    window.append(more)
                yield from iterate(pending, results, deadline, chunked=chunksize > 1)
        finally:
            for results in window:  # sent, never to be read
                for j in range(len(results.slots)):
                    pending.pop(results.base + j, None)

    return results_in_order()
