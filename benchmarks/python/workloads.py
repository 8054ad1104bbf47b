"""benchmarks/python/workloads.py: the named workloads, as role code every peer runs.

A workload is a set of actors (producers and consumers) wired by queues and
driven in rounds by ``cell.py``. One round:

1. the orchestrator sends ``n`` to every consumer, which answers ``ready``
   and blocks in its first get;
2. it sends ``n`` and a start time ``t_go`` (a few ms ahead) to every
   producer; each waits until ``t_go`` (so producers start together even
   when the peer's control messages poll), notes ``perf_counter()`` just
   before its first put, puts ``n`` items (or ``n/100`` batches), then one ``None``
   sentinel per consumer (per-producer FIFO puts the sentinels last);
3. a consumer stops after as many sentinels as there are producers feeding
   it, and reports ``perf_counter()`` after that last get and its item count.

Elapsed = latest consumer end - earliest producer start, so start-up
(interpreter and process creation) and control traffic are outside it. Every
consumer counts items; a round whose total is not the number put is an
error. A workload with ``check`` (mpmc-2x2) then runs one untimed round of
distinct ints in which every int must reach exactly one consumer (see
``PRODUCER_CHECKED``). The first rounds warm up and calibrate ``n`` so
that one timed round lasts about ``target`` seconds; then up to three timed
rounds, median kept.

Ping-pong is the exception: the pinger times every round trip itself and
reports the median and p99, stopping at ``n`` or after ``target`` seconds.

Sentinel rule, why it terminates: P producers each put C sentinels (C = the
consumers), so there are P*C; each consumer stops after exactly P, and none
takes more, so each of the C consumers gets its P.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from peers import PAYLOADS

# ---- role code (run after a peer's prelude; see peers.py) ----------------------

PRODUCER = """\
put = Q_data.put
x = make_payload(PAYLOAD)
while True:
    n, t_go = ctrl_get()
    if n < 0:
        break
    wait_until(t_go)
    t0 = perf_counter()
    for _ in range(n):
        put(x)
    for _ in range(NCONS):
        put(None)
    report(("done", ME, t0, n))
x = None
"""

# The same, cycling through NDISTINCT distinct payloads whose total is
# larger than the last-level cache (made before any clock starts), so that
# every put reads its item from memory: with one object put again and again,
# a 1 MiB item sits in the cache and a copy of it runs at cache speed. The
# iterator goes on across rounds.
PRODUCER_CYCLE = """\
from itertools import cycle as _cycle, islice as _islice
put = Q_data.put
it = _cycle(make_payloads(PAYLOAD, NDISTINCT))
while True:
    n, t_go = ctrl_get()
    if n < 0:
        break
    wait_until(t_go)
    t0 = perf_counter()
    for x in _islice(it, n):
        put(x)
    x = None
    for _ in range(NCONS):
        put(None)
    report(("done", ME, t0, n))
it = None
"""

CONSUMER = """\
get = Q_data.get
while True:
    n, t_go = ctrl_get()
    if n < 0:
        break
    report(("ready", ME, 0.0, 0))
    c = 0
    s = 0
    while True:
        x = get()
        if x is None:
            s += 1
            if s == NPROD:
                break
            continue
        c += 1
    x = None
    report(("done", ME, perf_counter(), c))
"""

# mpmc-2x2's roles: PRODUCER and CONSUMER, plus an untimed check round
# (t_go < 0, see cell.Cell.check_round) in which producer IDX puts the
# distinct ints IDX * n .. IDX * n + n - 1 in order, and each consumer counts
# how many times it got each of the NPROD * n ints (a byte each, capped at
# 255), how many items were not one of them, and how many came before an
# earlier item of the same producer (out of that producer's order). The
# orchestrator adds the consumers' counts: every int exactly once = no lost
# and no duplicated item. The timed loops are PRODUCER's and CONSUMER's.
PRODUCER_CHECKED = """\
put = Q_data.put
x = make_payload(PAYLOAD)
while True:
    n, t_go = ctrl_get()
    if n < 0:
        break
    if t_go < 0:
        base = IDX * n
        for i in range(base, base + n):
            put(i)
        for _ in range(NCONS):
            put(None)
        report(("done", ME, perf_counter(), n))
        continue
    wait_until(t_go)
    t0 = perf_counter()
    for _ in range(n):
        put(x)
    for _ in range(NCONS):
        put(None)
    report(("done", ME, t0, n))
x = None
"""

CONSUMER_CHECKED = """\
get = Q_data.get
while True:
    n, t_go = ctrl_get()
    if n < 0:
        break
    report(("ready", ME, 0.0, 0))
    c = 0
    s = 0
    if t_go < 0:
        total = NPROD * n
        seen = bytearray(total)
        last = [-1] * NPROD
        foreign = 0
        reordered = 0
        while True:
            x = get()
            if x is None:
                s += 1
                if s == NPROD:
                    break
                continue
            c += 1
            if type(x) is not int or not 0 <= x < total:
                foreign += 1
                continue
            if seen[x] < 255:
                seen[x] += 1
            p, i = divmod(x, n)
            if i <= last[p]:
                reordered += 1
            last[p] = i
        report(("done", ME, perf_counter(), c, bytes(seen), foreign, reordered))
        seen = None
        continue
    while True:
        x = get()
        if x is None:
            s += 1
            if s == NPROD:
                break
            continue
        c += 1
    x = None
    report(("done", ME, perf_counter(), c))
"""

SELECT_CONSUMER = """\
qs = [globals()["Q_d%d" % i] for i in range(NPROD)]
while True:
    n, t_go = ctrl_get()
    if n < 0:
        break
    report(("ready", ME, 0.0, 0))
    c = 0
    s = 0
    while True:
        x = select(qs)
        if x is None:
            s += 1
            if s == NPROD:
                break
            continue
        c += 1
    report(("done", ME, perf_counter(), c))
"""

BATCH_PRODUCER = """\
putb = batch_putter(Q_data)
put = Q_data.put
b = [12345] * 100 if NATIVE_BATCH else (12345,) * 100
while True:
    n, t_go = ctrl_get()
    if n < 0:
        break
    wait_until(t_go)
    nb = max(1, n // 100)
    t0 = perf_counter()
    for _ in range(nb):
        putb(b)
    put(None)
    report(("done", ME, t0, nb * 100))
"""

BATCH_CONSUMER = """\
getb = batch_getter(Q_data)
while True:
    n, t_go = ctrl_get()
    if n < 0:
        break
    report(("ready", ME, 0.0, 0))
    c = 0
    while True:
        xs = getb()
        if xs is None:
            break
        if xs[-1] is None:
            c += len(xs) - 1
            break
        c += len(xs)
    report(("done", ME, perf_counter(), c))
"""

PINGER = """\
put = Q_ping.put
get = Q_pong.get
while True:
    n, t_go = ctrl_get()
    if n < 0:
        break
    wait_until(t_go)
    lat = []
    app = lat.append
    t0 = perf_counter()
    stop = t0 + TARGET
    t2 = t0
    for i in range(n):
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
    report(("done", ME, t0, k, lat[k // 2], lat[min(k - 1, (k * 99) // 100)], t2 - t0))
"""

PONGER = """\
get = Q_ping.get
put = Q_pong.put
while True:
    n, t_go = ctrl_get()
    if n < 0:
        break
    report(("ready", ME, 0.0, 0))
    c = 0
    while True:
        x = get()
        if x is None:
            break
        put(x)
        c += 1
    report(("done", ME, perf_counter(), c))
"""


@dataclass
class Workload:
    name: str
    description: str  # one line, for the README and docs
    producers: int
    consumers: int
    payload: str
    producer_role: str
    consumer_role: str
    topology: str  # "shared" | "per-producer" | "pingpong"
    n0: int  # first warm-up round, items per producer
    n_max: int  # cap on items per producer in a round
    kind: str = "throughput"  # or "latency"
    tags: list[str] = field(default_factory=list)
    # A busy-loop process per core runs during the cell (started before the
    # actors, killed after): waiters cannot spin their way past the parking
    # path, so it is what gets measured.
    busy: bool = False
    # The producers cycle through distinct payloads larger than the LLC in
    # total (PRODUCER_CYCLE, peers.distinct_count) instead of one object.
    distinct: bool = False
    # After the timed rounds, one untimed round of distinct ints checks that
    # no item was lost or duplicated (roles PRODUCER_CHECKED and
    # CONSUMER_CHECKED; cell.Cell.check_round).
    check: bool = False

    @property
    def payload_bytes(self) -> int:
        return PAYLOADS[self.payload][1]


def _stream(payload: str, n0: int, n_max: int, what: str, distinct: bool = False) -> Workload:
    return Workload(
        name=f"stream-{payload}",
        description=f"1 producer -> 1 consumer, {what}; items/s and MB/s",
        producers=1,
        consumers=1,
        payload=payload,
        producer_role=PRODUCER_CYCLE if distinct else PRODUCER,
        distinct=distinct,
        consumer_role=CONSUMER,
        topology="shared",
        n0=n0,
        n_max=n_max,
        tags=["stream"],
    )


WORKLOADS: list[Workload] = [
    _stream("int", 2000, 20_000_000, "the int 12345"),
    _stream("5-tuple", 2000, 10_000_000, '(1, 2.5, "abc", b"xyz", None)'),
    _stream("dict-10", 2000, 10_000_000, 'a 10-key dict {"k0": 1000, ..., "k9": 1009}'),
    _stream("str-100", 2000, 10_000_000, "a 100-char str"),
    _stream("bytes-1KiB", 1000, 5_000_000, "1 KiB bytes"),
    _stream("bytes-1MiB", 20, 20_000,
            "1 MiB bytes, cycling through distinct objects of max(4 x LLC, 64 MiB) in total", distinct=True),
    _stream("bytes-64MiB", 2, 48, "64 MiB bytes"),
    _stream(
        "SharedBuffer-64MiB",
        2,
        1_000_000,
        "a 64 MiB xchannels.SharedBuffer (zero-copy; interp-queues: a shared memoryview)",
    ),
    Workload(
        name="pingpong",
        description="1 pinger <-> 1 ponger over two queues, int; round-trip latency µs (median, p99)",
        producers=1,
        consumers=1,
        payload="int",
        producer_role=PINGER,
        consumer_role=PONGER,
        topology="pingpong",
        n0=50,
        n_max=10_000_000,
        kind="latency",
    ),
    Workload(
        name="mpmc-2x2",
        description="2 producers -> 1 shared queue -> 2 consumers, int; items/s in total; "
        "then an untimed round of distinct ints checks that no item is lost or duplicated",
        producers=2,
        consumers=2,
        payload="int",
        producer_role=PRODUCER_CHECKED,
        consumer_role=CONSUMER_CHECKED,
        topology="shared",
        n0=1000,
        n_max=10_000_000,
        check=True,
    ),
    Workload(
        name="fanout-1x2",
        description="1 producer -> 1 shared queue -> 2 competing consumers (work split, Go-style fan-out), int; items/s",
        producers=1,
        consumers=2,
        payload="int",
        producer_role=PRODUCER,
        consumer_role=CONSUMER,
        topology="shared",
        n0=2000,
        n_max=20_000_000,
    ),
    Workload(
        name="select-4",
        description="4 producers, each on its own queue -> 1 consumer selecting over the 4, int; items/s in total",
        producers=4,
        consumers=1,
        payload="int",
        producer_role=PRODUCER,
        consumer_role=SELECT_CONSUMER,
        topology="per-producer",
        n0=500,
        n_max=5_000_000,
    ),
    Workload(
        name="batch",
        description="1 producer -> 1 consumer, batches of 100 ints (put_many/get_many where native); ints/s",
        producers=1,
        consumers=1,
        payload="int",
        producer_role=BATCH_PRODUCER,
        consumer_role=BATCH_CONSUMER,
        topology="shared",
        n0=10_000,
        n_max=200_000_000,
    ),
]

# The parking path (issue 15): pingpong with a busy-loop process per core.
WORKLOADS.insert(
    [w.name for w in WORKLOADS].index("pingpong") + 1,
    replace(
        next(w for w in WORKLOADS if w.name == "pingpong"),
        name="pingpong-busy",
        description="pingpong with a busy-loop process on every core, so a wait often parks; "
        "round-trip latency µs (median, p99)",
        n_max=1_000_000,
        busy=True,
    ),
)

BY_NAME = {w.name: w for w in WORKLOADS}
