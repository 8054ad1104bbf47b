"""benchmarks/python/workloads.py: the named workloads, and the role functions every actor imports.

A role is a function of one argument ``a`` (built by ``peers.actor_main``): ``a.q[name]`` the queues,
``a.ctrl_get()`` the next ``(n, t_go)`` (n < 0: stop), ``a.report(tuple)``, and ``ME``, ``IDX``, ``PAYLOAD``,
``NCONS``, ``NPROD``, ``TARGET``, ``NDISTINCT``. The round protocol: benchmarks/README.md, Method.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from itertools import cycle, islice
from time import perf_counter

MiB = 1024 * 1024
# kind -> (maker, size in bytes used for MB/s). dict-10: 10 keys "k0".."k9"
# -> 1000..1009 (not the small-int cache), 10 x (2 + 8) bytes for MB/s.
PAYLOADS = {
    "int": (lambda a: 12345, 8),
    "5-tuple": (lambda a: (1, 2.5, "abc", b"xyz", None), 22),
    "str-100": (lambda a: "x" * 100, 100),
    "dict-10": (lambda a: {"k%d" % i: 1000 + i for i in range(10)}, 100),
    "bytes-1KiB": (lambda a: b"\xab" * 1024, 1024),
    "bytes-1MiB": (lambda a: b"\xab" * MiB, MiB),
    "bytes-64MiB": (lambda a: b"\xab" * (64 * MiB), 64 * MiB),
    "SharedBuffer-64MiB": (lambda a: a.shared_64mib(), 64 * MiB),
}


def make_payloads(a, k: int) -> list:
    """k distinct payloads (bytes kinds when k > 1), each its own buffer, the last 8 bytes differing."""
    x = PAYLOADS[a.PAYLOAD][0](a)
    if k <= 1:
        return [x]
    return [x[:-8] + i.to_bytes(8, "little") for i in range(k)]


def wait_until(t: float) -> None:
    d = t - perf_counter()
    if d > 0.002:
        time.sleep(d - 0.002)
    while perf_counter() < t:
        pass


# ---- roles ------------------------------------------------------------------------


def rounds(a, ready: bool):
    """Each round's (n, t_go) until the stop message; a consumer (``ready``) answers ready first."""
    while (m := a.ctrl_get())[0] >= 0:
        if ready:
            a.report(("ready", a.ME, 0.0, 0))
        yield m


def producer(a) -> None:
    """n items (one object, or cycling through NDISTINCT ones), then NCONS sentinels; a check round
    (t_go < 0) puts the distinct ints IDX*n .. IDX*n + n - 1 instead, untimed."""
    put, report, ncons, me = a.q["data"].put, a.report, a.NCONS, a.ME
    items = make_payloads(a, a.NDISTINCT)
    x, it = items[0], (cycle(items) if len(items) > 1 else None)
    del items
    for n, t_go in rounds(a, False):
        if t_go < 0:
            for i in range(a.IDX * n, a.IDX * n + n):
                put(i)
            t0 = perf_counter()
        else:
            wait_until(t_go)
            t0 = perf_counter()
            if it is None:
                for _ in range(n):
                    put(x)
            else:
                for y in islice(it, n):
                    put(y)
                y = None
        for _ in range(ncons):
            put(None)
        report(("done", me, t0, n))


def consumer(a) -> None:
    """Counts items until NPROD sentinels; a check round (t_go < 0) counts each of the NPROD*n distinct
    ints (a byte each), the items not one of them, and those out of their producer's order."""
    get, report, nprod, me = a.q["data"].get, a.report, a.NPROD, a.ME
    for n, t_go in rounds(a, True):
        c = s = 0
        if t_go < 0:
            _check(get, report, nprod, me, n)
            continue
        while True:
            x = get()
            if x is None:
                s += 1
                if s == nprod:
                    break
                continue
            c += 1
        x = None
        report(("done", me, perf_counter(), c))


def _check(get, report, nprod: int, me: int, n: int) -> None:
    total, c, s, foreign, reordered = nprod * n, 0, 0, 0, 0
    seen, last = bytearray(nprod * n), [-1] * nprod
    while s < nprod:
        x = get()
        if x is None:
            s += 1
            continue
        c += 1
        if type(x) is not int or not 0 <= x < total:
            foreign += 1
            continue
        seen[x] = min(255, seen[x] + 1)
        p, i = divmod(x, n)
        reordered += i <= last[p]
        last[p] = i
    report(("done", me, perf_counter(), c, bytes(seen), foreign, reordered))


def pinger(a) -> None:
    put, get, report, me = a.q["ping"].put, a.q["pong"].get, a.report, a.ME
    for n, t_go in rounds(a, False):
        wait_until(t_go)
        lat = []
        app = lat.append
        t0 = t2 = perf_counter()
        stop = t0 + a.TARGET
        for _ in range(n):
            t = perf_counter()
            put(1)
            get()
            t2 = perf_counter()
            app(t2 - t)
            if t2 > stop:
                break
        put(None)
        lat.sort()
        k = len(lat)
        report(("done", me, t0, k, lat[k // 2], lat[min(k - 1, (k * 99) // 100)], t2 - t0))


def ponger(a) -> None:
    get, put, report, me = a.q["ping"].get, a.q["pong"].put, a.report, a.ME
    for n, t_go in rounds(a, True):
        c = 0
        while (x := get()) is not None:
            put(x)
            c += 1
        report(("done", me, perf_counter(), c))


# ---- the table ---------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """A row of benchmarks/README.md's Workloads table."""

    name: str
    producers: int
    consumers: int
    payload: str
    producer_role: str  # a role function's name, imported by the actors
    consumer_role: str
    n0: int  # first warm-up round, items per producer
    n_max: int  # cap on items per producer in a round
    kind: str = "throughput"  # or "latency": a ping and a pong queue, not a shared one
    busy: bool = False  # a busy-loop process per core during the cell (parking path)
    distinct: bool = False  # producers cycle through payloads > 4 x LLC in total
    check: bool = False  # an untimed check round of distinct ints after the timed ones

    @property
    def payload_bytes(self) -> int:
        return PAYLOADS[self.payload][1]


def _stream(payload: str, n0: int, n_max: int, distinct: bool = False) -> Workload:
    return Workload(f"stream-{payload}", 1, 1, payload, "producer", "consumer", n0, n_max, distinct=distinct)


_PING = Workload("pingpong", 1, 1, "int", "pinger", "ponger", 50, 10_000_000, kind="latency")
WORKLOADS: list[Workload] = [
    _stream("int", 2000, 20_000_000), _stream("5-tuple", 2000, 10_000_000), _stream("dict-10", 2000, 10_000_000),
    _stream("str-100", 2000, 10_000_000), _stream("bytes-1KiB", 1000, 5_000_000),
    _stream("bytes-1MiB", 20, 20_000, distinct=True), _stream("bytes-64MiB", 2, 48),
    _stream("SharedBuffer-64MiB", 2, 1_000_000),
    _PING,
    replace(_PING, name="pingpong-busy", n_max=1_000_000, busy=True),
    Workload("mpmc-2x2", 2, 2, "int", "producer", "consumer", 1000, 10_000_000, check=True),
    Workload("fanout-1x2", 1, 2, "int", "producer", "consumer", 2000, 20_000_000),
]
BY_NAME = {w.name: w for w in WORKLOADS}
