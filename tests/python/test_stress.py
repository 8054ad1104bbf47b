"""tests/python/test_stress.py: 4 producer and 4 consumer interpreters,
bounded and unbounded channels, select and close mixed in; every message
checked by sequence and checksum.

`make test` runs the short version; `make stress` runs 2,000,000 messages
(`-m stress`)."""

from __future__ import annotations

import time

import pytest

import subinterp
from xchannels import Channel

PRODUCER = """
import zlib, xchannels
ch = xchannels.Channel.from_id(cid)
batch = []
for seq in range(n):
    payload = "p%d-%d" % (p, seq) * (seq % 7)
    item = (p, seq, payload, zlib.crc32(payload.encode("utf-8", "surrogatepass")))
    if seq % 64 < 16:  # runs of 16 consecutive items go as one batch
        batch.append(item)
        if len(batch) == 16 or seq == n - 1:
            ch.put_many(batch)
            batch = []
    else:
        ch.put(item)
"""

# Consumers read three ways: get(), get_many(), and select() over the data
# channel plus a side channel that main closes half-way (select must skip a
# closed channel while another is open).
CONSUMER = """
import zlib, xchannels
ch = xchannels.Channel.from_id(cid)
side = xchannels.Channel.from_id(side_id)
counts = [0] * producers
sums = [0] * producers
squares = [0] * producers
last = [-1] * producers
def check(item):
    p, seq, payload, crc = item
    assert zlib.crc32(payload.encode("utf-8", "surrogatepass")) == crc, item
    assert seq > last[p], ("FIFO per producer broken", p, seq, last[p])
    last[p] = seq
    counts[p] += 1
    sums[p] += seq
    squares[p] += seq * seq
try:
    while True:
        if mode == "get":
            check(ch.get())
        elif mode == "many":
            for item in ch.get_many(50):
                check(item)
        else:
            got, item = xchannels.select([side, ch])
            if got == side:
                continue
            check(item)
except xchannels.ChannelClosed:
    pass
xchannels.Channel.from_id(out_id).put((tuple(counts), tuple(sums), tuple(squares)))
"""


def run_stress(per_producer: int, maxsize: int, producers: int = 4, consumers: int = 4) -> None:
    ch, side, out = Channel(maxsize), Channel(), Channel()
    modes = ["get", "many", "select", "select"]
    cons = [
        subinterp.start(CONSUMER, cid=ch.id, side_id=side.id, out_id=out.id, producers=producers, mode=modes[i % 4])
        for i in range(consumers)
    ]
    prods = [subinterp.start(PRODUCER, cid=ch.id, n=per_producer, p=p) for p in range(producers)]
    side.put("noise")
    side.close()  # closed while selects are running
    try:
        # If a consumer fails, close the channel so no producer waits forever
        # on a full channel, then report the consumer's error.
        deadline = time.monotonic() + 600
        while any(p.is_alive() for p in prods):
            assert time.monotonic() < deadline, "producers did not finish"
            if any(not c.is_alive() for c in cons):
                break
            time.sleep(0.05)
    finally:
        ch.close()
        for c in cons:  # a consumer's error first: it is the cause
            c.join(60)
        for p in prods:
            p.join(60)
    reports = [out.get(timeout=10) for _ in range(consumers)]
    n = per_producer
    for p in range(producers):
        count = sum(r[0][p] for r in reports)
        total = sum(r[1][p] for r in reports)
        squares = sum(r[2][p] for r in reports)
        assert count == n, f"producer {p}: {count} received of {n}"
        assert total == n * (n - 1) // 2, f"producer {p}: sequence sum off (lost or duplicated)"
        assert squares == (n - 1) * n * (2 * n - 1) // 6


@pytest.mark.parametrize("maxsize", [0, 16])
def test_stress_short(maxsize):
    run_stress(per_producer=10_000, maxsize=maxsize)


@pytest.mark.stress
@pytest.mark.parametrize("maxsize", [0, 256])
def test_stress_long(maxsize):
    # 4 producers x 250,000 x 2 flavors = 2,000,000 messages.
    run_stress(per_producer=250_000, maxsize=maxsize)


# ---- chaos: several threads per interpreter, channels closed under them --------------
# 6 interpreters x 2 threads pick random operations on random channels
# (bounded and not), while main closes half of the channels one by one.
# Each thread records what it sent (put_many's `.sent` when it stops midway)
# and what it received. Every item sent must arrive exactly once, and nothing
# arrives that was not recorded as sent. This found the first-use race of
# ChannelClosed (3.13+): a put_many whose ChannelClosed slipped past
# `except xc.ChannelClosed` lost the record of what it had sent.

CHAOS = """
import random, threading
import xchannels as xc
chans = [xc.Channel.from_id(c) for c in cids]
stop = xc.Channel.from_id(stop_id)
results = xc.Channel.from_id(out_id)

def run(t):
    rng = random.Random(me * 1000 + t)
    sent, got, seq = [], [], 0
    try:
        while not stop.closed:
            ch = rng.choice(chans)
            op = rng.random()
            if op < 0.3:
                item = (me, t, seq)
                seq += 1
                try:
                    ch.put(item, timeout=0.002)
                    sent.append(item)
                except (xc.ChannelFull, xc.ChannelClosed):
                    pass
            elif op < 0.5:
                batch = [(me, t, seq + k) for k in range(rng.randint(1, 6))]
                seq += len(batch)
                try:
                    ch.put_many(batch, timeout=0.002)
                    sent.extend(batch)
                except (xc.ChannelFull, xc.ChannelClosed) as e:
                    sent.extend(batch[: e.sent])
            elif op < 0.7:
                try:
                    got.append(ch.get(timeout=0.002))
                except (xc.ChannelEmpty, xc.ChannelClosed):
                    pass
            elif op < 0.85:
                try:
                    got.extend(ch.get_many(rng.randint(1, 8), timeout=0.002))
                except (xc.ChannelEmpty, xc.ChannelClosed):
                    pass
            else:
                try:
                    got.append(xc.select(rng.sample(chans, 3), timeout=0.002)[1])
                except (xc.ChannelEmpty, xc.ChannelClosed):
                    pass
        for ch in chans:  # main closed them all before `stop`
            got.extend(ch)
        results.put((None, sent, got))
    except BaseException as e:
        results.put((f"thread {t}: {type(e).__module__}.{type(e).__qualname__}: {e}", sent, got))

threads = [threading.Thread(target=run, args=(t,)) for t in range(2)]
for th in threads: th.start()
for th in threads: th.join()
"""


def run_chaos(seconds: float, interpreters: int = 6, channels: int = 12) -> None:
    import collections
    import random

    chans = [Channel(random.choice([0, 4, 16])) for _ in range(channels)]
    stop, out = Channel(), Channel()
    cids = tuple(c.id for c in chans)
    running = [subinterp.start(CHAOS, cids=cids, stop_id=stop.id, out_id=out.id, me=i) for i in range(interpreters)]
    try:
        step = seconds / (channels // 2 + 1)
        for ch in chans[: channels // 2]:  # half of them closed under the threads
            time.sleep(step)
            ch.close()
        time.sleep(step)
    finally:
        for ch in chans:
            ch.close()
        stop.close()
        for r in running:
            r.join(120)
    reports = [out.get(timeout=10) for _ in range(interpreters * 2)]
    errors = [e for e, _, _ in reports if e is not None]
    assert not errors, errors
    sent = collections.Counter(item for _, s, _ in reports for item in s)
    got = collections.Counter(item for _, _, g in reports for item in g)
    assert max(sent.values(), default=1) == 1
    never_sent = got - sent
    lost = sent - got
    duplicated = {k: n for k, n in got.items() if n > 1}
    assert not never_sent, f"{len(never_sent)} received that were never recorded as sent"
    assert not lost, f"{len(lost)} sent and never received"
    assert not duplicated, f"{len(duplicated)} received twice or more"
    assert len(sent) > 1000, f"only {len(sent)} items went through"


def test_chaos_short():
    run_chaos(seconds=3)


@pytest.mark.stress
def test_chaos_long():
    run_chaos(seconds=20)
