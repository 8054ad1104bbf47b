"""tests/python/test_channel.py: blocking MPMC channels across own-GIL
sub-interpreters: close, timeouts, select, bounded waits, MPMC, Ctrl-C
(bindings/channel.cpp)."""

from __future__ import annotations

import gc
import pickle
import queue
import signal
import threading
import time

import pytest

import subinterp
import xchannels
from xchannels import (
    Channel,
    ChannelClosed,
    ChannelEmpty,
    ChannelError,
    ChannelFull,
    ChannelNotFoundError,
)

# ---- the queue.Queue surface, in one interpreter ----------------------------


def test_exception_hierarchy():
    assert issubclass(ChannelClosed, ChannelError)
    assert issubclass(ChannelEmpty, ChannelError) and issubclass(ChannelEmpty, queue.Empty)
    assert issubclass(ChannelFull, ChannelError) and issubclass(ChannelFull, queue.Full)
    assert issubclass(ChannelNotFoundError, ChannelError)
    assert issubclass(ChannelNotFoundError, LookupError)
    assert issubclass(xchannels.NotShareableError, TypeError)
    assert ChannelClosed.__module__ == "xchannels"


def test_put_get_nowait_and_sizes():
    ch = Channel(2)
    assert (ch.maxsize, ch.qsize(), ch.empty(), ch.full()) == (2, 0, True, False)
    ch.put_nowait(1)
    ch.put(2, block=False)
    assert (ch.qsize(), ch.empty(), ch.full()) == (2, False, True)
    with pytest.raises(ChannelFull):
        ch.put_nowait(3)
    with pytest.raises(ChannelFull):
        ch.put(3, timeout=0.01)
    assert ch.get_nowait() == 1
    assert ch.get(block=False) == 2
    with pytest.raises(ChannelEmpty):
        ch.get_nowait()
    with pytest.raises(queue.Empty):
        ch.get(timeout=0)


def test_unbounded_never_full():
    ch = Channel()
    for i in range(100_000):
        ch.put_nowait(i)
    assert not ch.full() and ch.qsize() == 100_000 and ch.maxsize == 0
    assert ch.get_many(200_000) == list(range(100_000))


@pytest.mark.parametrize("timeout", [0.05, 0.25])
def test_get_timeout_waits_about_that_long(timeout):
    ch = Channel()
    start = time.monotonic()
    with pytest.raises(ChannelEmpty):
        ch.get(timeout=timeout)
    elapsed = time.monotonic() - start
    assert timeout <= elapsed < timeout + 0.5


def test_bad_arguments():
    assert Channel(-1).maxsize == -1  # as queue.Queue: kept as given, <= 0 is unbounded
    with pytest.raises(TypeError):
        Channel("3")
    with pytest.raises(TypeError):
        Channel(1.5)
    ch = Channel(1)
    with pytest.raises(ValueError, match="timeout"):
        ch.get(timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        ch.put(1, timeout=float("nan"))
    with pytest.raises(TypeError, match="timeout"):
        ch.get(timeout="soon")
    with pytest.raises(TypeError):
        ch.put()
    with pytest.raises(TypeError, match="unexpected keyword"):
        ch.put(1, blocking=False)
    with pytest.raises(TypeError, match="multiple values"):
        ch.put(1, item=2)
    with pytest.raises(ValueError, match="max_items"):
        ch.get_many(0)
    # Nothing was lost or half-sent by any of that.
    assert ch.empty()
    ch.put(1, True, None)
    assert ch.get(True, 1.0) == 1


def test_close_semantics():
    ch = Channel()
    ch.put(1)
    ch.put(2)
    ch.close()
    ch.close()  # idempotent
    assert ch.closed
    with pytest.raises(ChannelClosed):
        ch.put(3)
    assert ch.get() == 1  # drains
    assert ch.get_nowait() == 2
    with pytest.raises(ChannelClosed):
        ch.get()
    with pytest.raises(ChannelClosed):
        ch.get_nowait()


def test_iteration_until_closed_and_drained():
    ch = Channel()
    ch.put_many(range(5))
    ch.close()
    assert list(ch) == [0, 1, 2, 3, 4]


def test_context_manager_closes():
    with Channel() as ch:
        ch.put(1)
    assert ch.closed


def test_put_many_get_many():
    ch = Channel()
    assert ch.put_many([1, "a", (2,)]) == 3
    assert ch.put_many(iter(range(3))) == 3
    assert ch.get_many(2) == [1, "a"]
    assert ch.get_many(10) == [(2,), 0, 1, 2]
    with pytest.raises(ChannelEmpty):
        ch.get_many(3, timeout=0.01)


def test_put_many_is_all_or_nothing_on_bad_items():
    ch = Channel()
    with pytest.raises(xchannels.NotShareableError, match=r"items\[2\].*nothing was sent"):
        ch.put_many([1, 2, [3, object()], 4])
    assert ch.empty()


def test_put_many_reports_how_many_went_when_full():
    ch = Channel(3)
    with pytest.raises(ChannelFull) as info:
        ch.put_many(range(5), timeout=0.01)
    assert info.value.sent == 3
    assert ch.get_many(10) == [0, 1, 2]


def test_identity_from_id_pickle_repr():
    ch = Channel(5)
    other = Channel.from_id(ch.id)
    assert other == ch and hash(other) == hash(ch) and other is not ch
    assert other != Channel()
    other.put("x")
    assert ch.get_nowait() == "x"
    clone = pickle.loads(pickle.dumps(ch))
    assert clone == ch and clone.maxsize == 5
    assert f"id={ch.id}" in repr(ch) and "maxsize=5" in repr(ch) and "open" in repr(ch)
    with pytest.raises(ChannelNotFoundError):
        Channel.from_id(10**12)
    with pytest.raises(ChannelNotFoundError):
        Channel.from_id(-1)
    with pytest.raises(TypeError):
        Channel.from_id("1")


def test_ids_are_never_reused():
    ids = set()
    for _ in range(100):
        ids.add(Channel().id)  # each is freed right away
    assert len(ids) == 100


def test_channel_lives_while_a_handle_or_queued_reference_exists(no_channel_leak):
    carrier = Channel()
    inner = Channel()
    cid = inner.id
    carrier.put(inner)
    del inner
    gc.collect()
    assert Channel.from_id(cid).id == cid  # kept alive by the queued message
    got = carrier.get_nowait()
    assert got.id == cid
    del got
    gc.collect()
    with pytest.raises(ChannelNotFoundError):
        Channel.from_id(cid)


def test_channel_inside_a_message_is_the_same_channel(sub):
    ch, reply = Channel(), Channel()
    ch.put(("reply to", reply))
    sub.run(
        """
        import xchannels
        tag, reply = xchannels.Channel.from_id(cid).get()
        reply.put((tag, reply.id))
        """,
        cid=ch.id,
    )
    assert reply.get(timeout=5) == ("reply to", reply.id)


def test_messages_survive_their_sender(no_channel_leak):
    ch = Channel()
    subinterp.run(
        """
        import xchannels
        ch = xchannels.Channel.from_id(cid)
        for i in range(1000):
            ch.put((i, str(i) * 10, bytes(i)))
        """,
        cid=ch.id,
    )
    for i in range(1000):
        assert ch.get_nowait() == (i, str(i) * 10, bytes(i))


# ---- across real own-GIL sub-interpreters -----------------------------------


def test_close_wakes_getters_blocked_in_three_interpreters():
    ch, ready, results = Channel(), Channel(), Channel()
    code = """
    import time, xchannels
    ch = xchannels.Channel.from_id(cid)
    xchannels.Channel.from_id(ready_id).put(1)
    try:
        ch.get()
    except xchannels.ChannelClosed:
        xchannels.Channel.from_id(results_id).put(time.monotonic())
    """
    getters = [subinterp.start(code, cid=ch.id, ready_id=ready.id, results_id=results.id) for _ in range(3)]
    for _ in range(3):
        ready.get(timeout=30)
    time.sleep(0.1)  # let them park
    closed_at = time.monotonic()
    ch.close()
    woke = [results.get(timeout=10) for _ in range(3)]
    for g in getters:
        g.join()
    assert max(woke) - closed_at < 0.1  # milliseconds, not a poll interval


def test_get_timeout_in_subinterpreter(sub):
    sub.run(
        """
        import time, xchannels
        ch = xchannels.Channel()
        t = time.monotonic()
        try:
            ch.get(timeout=0.25)
        except xchannels.ChannelEmpty:
            pass
        elapsed = time.monotonic() - t
        assert 0.25 <= elapsed < 0.75, elapsed
        """
    )


def test_select_returns_the_channel_that_became_ready():
    chans = [Channel() for _ in range(4)]
    ids = tuple(c.id for c in chans)
    worker = subinterp.start(
        """
        import time, xchannels
        time.sleep(0.05)
        xchannels.Channel.from_id(ids[2]).put("third")
        """,
        ids=ids,
    )
    ch, item = xchannels.select(chans, timeout=10)
    worker.join()
    assert ch is chans[2] and item == "third"


def test_select_in_subinterpreter_and_its_errors(sub):
    sub.run(
        """
        import xchannels
        a, b = xchannels.Channel(), xchannels.Channel()
        b.put(1)
        assert xchannels.select([a, b]) == (b, 1)
        try:
            xchannels.select([a, b], timeout=0.01)
        except xchannels.ChannelEmpty:
            pass
        else:
            raise AssertionError("no timeout")
        a.close(); b.put(2); b.close()
        assert xchannels.select([a, b]) == (b, 2)  # closed a is skipped
        try:
            xchannels.select([a, b])
        except xchannels.ChannelClosed:
            pass
        else:
            raise AssertionError("all closed and drained should raise")
        for bad in ([], [1], "x"):
            try:
                xchannels.select(bad)
            except (TypeError, ValueError):
                pass
            else:
                raise AssertionError(bad)
        """
    )


def test_select_is_fair():
    a, b = Channel(), Channel()
    a.put_many(range(1000))
    b.put_many(range(1000))
    picks = [xchannels.select([a, b])[0] is a for _ in range(1000)]
    assert 300 < sum(picks) < 700


def test_bounded_put_blocks_and_resumes():
    ch, started = Channel(1), Channel()
    ch.put("first")
    producer = subinterp.start(
        """
        import time, xchannels
        ch = xchannels.Channel.from_id(cid)
        xchannels.Channel.from_id(started_id).put(time.monotonic())
        ch.put("second")  # blocks until main takes "first"
        xchannels.Channel.from_id(started_id).put(time.monotonic())
        """,
        cid=ch.id,
        started_id=started.id,
    )
    started.get(timeout=30)
    time.sleep(0.2)
    assert producer.is_alive() and ch.full()
    taken_at = time.monotonic()
    assert ch.get() == "first"
    resumed_at = started.get(timeout=10)
    assert ch.get(timeout=10) == "second"
    producer.join()
    assert resumed_at - taken_at < 0.1


@pytest.mark.parametrize("maxsize", [0, 64])
def test_two_producers_two_consumers_400k(maxsize):
    n = 200_000  # per producer
    ch, out = Channel(maxsize), Channel()
    producer = """
    import xchannels
    ch = xchannels.Channel.from_id(cid)
    for i in range(n):
        ch.put((p, i))
    """
    consumer = """
    import xchannels
    ch = xchannels.Channel.from_id(cid)
    last = {0: -1, 1: -1}
    count = 0
    total = 0
    for p, i in ch:
        assert i > last[p], ("FIFO per producer broken", p, i, last[p])
        last[p] = i
        count += 1
        total += i
    xchannels.Channel.from_id(out_id).put((count, total, last[0], last[1]))
    """
    consumers = [subinterp.start(consumer, cid=ch.id, out_id=out.id) for _ in range(2)]
    producers = [subinterp.start(producer.replace("(p, i)", f"({p}, i)"), cid=ch.id, n=n) for p in range(2)]
    for p in producers:
        p.join(120)
    ch.close()
    for c in consumers:
        c.join(120)
    reports = [out.get(timeout=10) for _ in range(2)]
    assert sum(r[0] for r in reports) == 2 * n  # none lost, none duplicated
    assert sum(r[1] for r in reports) == 2 * n * (n - 1) // 2


def test_ctrl_c_interrupts_a_blocked_get_in_main():
    ch = Channel()
    ch_keep = Channel()
    main = threading.main_thread().ident
    assert threading.current_thread().ident == main
    timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        ch.get()
    assert time.monotonic() - start < 5
    timer.join()
    # Nothing was lost: the channel works and an item put now is received.
    ch.put("after")
    assert ch.get(timeout=1) == "after"
    ch_keep.close()


def test_signal_handler_that_does_not_raise_keeps_waiting():
    ch = Channel()
    calls = []
    old = signal.signal(signal.SIGUSR1, lambda *a: calls.append(1))
    try:
        main = threading.main_thread().ident
        threading.Timer(0.05, signal.pthread_kill, (main, signal.SIGUSR1)).start()
        threading.Timer(0.3, ch.put, ("late",)).start()
        assert ch.get(timeout=5) == "late"
        assert calls == [1]
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_blocked_get_releases_the_gil():
    ch = Channel()
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    with pytest.raises(ChannelEmpty):
        ch.get(timeout=0.3)
    before = counter[0]
    time.sleep(0.1)
    stop.set()
    t.join()
    assert before > 1000  # the other thread ran while we were blocked


# ---- the barrier modes (core/include/xchannels/detail/barrier.h) -------------

_PARKING_SCRIPT = r"""
import os, sys, threading, time
import xchannels

# Ping-pong where both sides keep running out of spin and parking, then a
# close racing three senders: a lost wake-up hangs (the timeouts catch it),
# a lost item breaks the count.
ping, pong = xchannels.Channel(), xchannels.Channel(1)
def echo():
    for item in ping:
        if item % 3 == 0:
            time.sleep(0.00003)
        pong.put(item)
t = threading.Thread(target=echo)
t.start()
for i in range(1500):
    if i % 5 == 0:
        time.sleep(0.00003)
    ping.put(i)
    assert pong.get(timeout=20) == i
ping.close()
t.join()

for rnd in range(20):
    ch = xchannels.Channel()
    sent = [0, 0, 0]
    def sender(k):
        try:
            while True:
                ch.put(k)
                sent[k] += 1
        except xchannels.ChannelClosed:
            pass
    threads = [threading.Thread(target=sender, args=(k,)) for k in range(3)]
    for th in threads:
        th.start()
    time.sleep(0.002 * (rnd % 4))
    ch.close()
    for th in threads:
        th.join()
    got = [0, 0, 0]
    for k in ch:
        got[k] += 1
    assert got == sent, (got, sent)

if hasattr(os, "fork"):
    # The membarrier registration must survive fork(): a child that parks
    # (a blocking get) needs the heavy barrier.
    ch = xchannels.Channel()
    pid = os.fork()
    if pid == 0:
        try:
            c2 = xchannels.Channel()
            threading.Timer(0.05, c2.put, args=(42,)).start()
            os._exit(0 if c2.get(timeout=20) == 42 else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
print("ok", xchannels._xchannels._asymmetric_barriers())
"""


@pytest.mark.parametrize("symmetric", ["0", "1"])
def test_parking_close_and_fork_in_both_barrier_modes(symmetric):
    import os
    import subprocess
    import sys

    env = dict(os.environ, XCHANNELS_SYMMETRIC_BARRIERS=symmetric)
    r = subprocess.run(
        [sys.executable, "-c", _PARKING_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[0] == "ok"
    if symmetric == "1":
        assert out[1] == "False"


# ---- _get_batch: the pool's lenient reads --------------------------------------


def _refuse_unpickling():
    raise ValueError("refused here")


class _RefusesUnpickling:
    def __reduce__(self):
        return (_refuse_unpickling, ())


def test_get_batch_is_lenient_with_values_that_cannot_be_unpickled():
    # A pickled value whose unpickling raises fails neither the read nor the
    # other items: the exception stands in its place, and the failures dict
    # says which items hold one. (get_many raises, and used to lose every
    # item it had taken.)
    ch = xchannels.Channel(fallback="pickle")
    ch.put_many([(1, [2, _RefusesUnpickling()]), (2, "fine"), {"k": _RefusesUnpickling()}])
    items, failures = ch._get_batch(10)
    assert items[1] == (2, "fine")
    assert sorted(failures) == [0, 2]
    (first,) = failures[0]
    assert isinstance(first, ValueError) and str(first) == "refused here"
    assert items[0] == (1, [2, first]) and items[0][1][1] is first
    assert items[2]["k"] is failures[2][0]
    ch.put(7)
    assert ch._get_batch(10, False) == ([7], None)
    with pytest.raises(xchannels.ChannelEmpty):
        ch._get_batch(1, False)
    ch.close()
    assert ch._get_batch(1) is None  # closed and drained
    # get() stays strict
    ch2 = xchannels.Channel(fallback="pickle")
    ch2.put([_RefusesUnpickling()])
    with pytest.raises(xchannels.NotShareableError, match=r"item \[0\]: a pickled value .* cannot be unpickled"):
        ch2.get()
