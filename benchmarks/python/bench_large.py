"""benchmarks/python/bench_large.py: large values to another process and back (issue 28). An echo process
(spawned) returns what it gets; each figure is the median round trip. ``run(quick)`` returns the figures."""

from __future__ import annotations

import multiprocessing
import statistics
import time
from typing import Any, Callable

MiB = 1 << 20


def _echo(kind: str, inbox: Any, outbox: Any) -> None:
    from multiprocessing import resource_tracker, shared_memory

    while (v := inbox.get()) is not None:
        if kind == "shm":  # a block's name: attach, view, detach, send the name back
            try:
                block = shared_memory.SharedMemory(v, track=False)
            except TypeError:  # 3.12: no track=; the tracker would unlink the block at this process's exit
                block = shared_memory.SharedMemory(v)
                resource_tracker.unregister(block._name, "shared_memory")  # type: ignore[attr-defined]
            memoryview(block.buf)[:1].tobytes()
            block.close()
        outbox.put(v)


def _trips(kind: str, pair: tuple[Any, Any], value: Any, n: int) -> float:
    """The median of ``n`` round trips of ``value`` (after two untimed ones), in seconds."""
    ctx = multiprocessing.get_context("spawn")
    inbox, outbox = pair
    p = ctx.Process(target=_echo, args=(kind, inbox, outbox))
    p.start()
    try:
        times = []
        for i in range(n + 2):
            t = time.perf_counter()
            inbox.put(value)
            back = outbox.get(timeout=120)
            times.append(time.perf_counter() - t)
            del back
        inbox.put(None)
        return statistics.median(times[2:])
    finally:
        p.join(30)
        if p.is_alive():
            p.kill()


def run(quick: bool = False) -> dict[str, Any]:
    import xchannels
    from multiprocessing import shared_memory

    n = 3 if quick else 9
    ctx = multiprocessing.get_context("spawn")
    big = b"\xab" * (64 * MiB)
    block = shared_memory.SharedMemory(create=True, size=64 * MiB)
    block.buf[:] = big
    cases: list[tuple[str, str, Callable[[], tuple[Any, Any]], Any]] = [
        ("bytes-64MiB", "xchannels", lambda: (xchannels.ProcessChannel(), xchannels.ProcessChannel()), big),
        ("bytes-64MiB", "multiprocessing.Queue", lambda: (ctx.Queue(), ctx.Queue()), big),
        ("SharedBuffer-64MiB", "xchannels", lambda: (xchannels.ProcessChannel(), xchannels.ProcessChannel()),
         xchannels.SharedBuffer(big, memfd=True)),
        ("SharedBuffer-1KiB", "xchannels", lambda: (xchannels.ProcessChannel(), xchannels.ProcessChannel()),
         xchannels.SharedBuffer(big[:1024], memfd=True)),
        ("SharedBuffer-64MiB", "shared_memory by hand", lambda: (ctx.Queue(), ctx.Queue()), block.name),
    ]
    rows = []
    try:
        for workload, peer, make, value in cases:
            row: dict[str, Any] = {"workload": workload, "peer": peer}
            try:
                trips = n if workload.startswith("bytes") else 5 * n  # the short trips: more of them
                row["seconds"] = _trips("shm" if peer.startswith("shared_memory") else "", make(), value, trips)
            except Exception as e:  # noqa: BLE001 - recorded, the others go on
                row["error"] = f"{type(e).__name__}: {e}"
            rows.append(row)
    finally:
        block.close()
        block.unlink()
    return {"rows": rows, "trips": n, "short_trips": 5 * n}
