"""tests/python/test_async.py: asyncio support: get_async, put_async,
async for, select_async; cancellation, timeouts, close, threads and file
descriptors, in the main interpreter and in own-GIL sub-interpreters
(bindings/aio.cpp, python/xchannels/_aio.py)."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time

import pytest

import subinterp
import xchannels
from xchannels import Channel, ChannelClosed, ChannelEmpty, ChannelFull, NotShareableError, select_async
from xchannels import _aio

# CPython 3.12's _asyncio accelerator keeps a freelist in a C static, which
# corrupts memory once an own-GIL sub-interpreter imports it (the process
# aborts at exit; cpython gh-91375, fixed in 3.13). Sub-interpreters that use
# asyncio on 3.12 take the pure-Python asyncio instead.
ASYNCIO_IN_SUB = """
import sys
if sys.version_info < (3, 13):
    sys.modules["_asyncio"] = None
import asyncio
"""


def run(coro):
    return asyncio.run(coro)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# ---- the loop keeps running -----------------------------------------------------


def test_async_for_1000_items_from_a_subinterpreter_while_the_loop_ticks():
    ch = Channel()
    producer_code = """
    import time, xchannels
    ch = xchannels.Channel.from_id(cid)
    for i in range(1000):
        ch.put((i, str(i)))
        if i % 10 == 9:
            time.sleep(0.001)  # arrive in bursts: the consumer must wait
    ch.close()
    """

    async def main():
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.create_task(ticker())
        producer = subinterp.start(producer_code, cid=ch.id)
        got = [item async for item in ch]
        stop = True
        await t
        await asyncio.to_thread(producer.join)
        return got, ticks

    got, ticks = run(main())
    assert got == [(i, str(i)) for i in range(1000)]
    # The producer takes >= 100 ms; a blocked loop would not tick at all.
    assert ticks >= 10, ticks


def test_aiter_is_the_channel_and_anext_stops_when_closed_and_drained():
    ch = Channel()
    assert ch.__aiter__() is ch
    ch.put_many([1, 2])
    ch.close()

    async def main():
        return [x async for x in ch]

    assert run(main()) == [1, 2]


# ---- timeouts, errors --------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0.05, 0.25])
def test_get_async_timeout(timeout):
    ch = Channel()

    async def main():
        start = time.monotonic()
        with pytest.raises(ChannelEmpty, match="get: channel is empty"):
            await ch.get_async(timeout=timeout)
        return time.monotonic() - start

    elapsed = run(main())
    assert timeout - 0.01 <= elapsed < timeout + 1.0
    ch.put(1)
    assert ch.get_nowait() == 1  # nothing was left registered or consumed


def test_put_async_timeout_and_zero_timeouts():
    ch = Channel(1)
    ch.put(0)

    async def main():
        with pytest.raises(ChannelFull, match="put: channel is full"):
            await ch.put_async(1, timeout=0.1)
        with pytest.raises(ChannelFull):
            await ch.put_async(1, timeout=0)
        assert await ch.get_async(timeout=0) == 0
        with pytest.raises(ChannelEmpty):
            await ch.get_async(timeout=0)

    run(main())
    assert ch.empty()


def test_errors_match_the_blocking_calls():
    typed = Channel(type=int)
    ch = Channel(1)

    async def main():
        with pytest.raises(NotShareableError):
            await ch.put_async([object()])
        with pytest.raises(TypeError, match="int"):
            await typed.put_async("one")
        with pytest.raises(ValueError, match="timeout"):
            await ch.get_async(timeout=-1)
        with pytest.raises(TypeError, match="timeout"):
            await ch.get_async(timeout="soon")
        with pytest.raises(ValueError, match="timeout"):
            await ch.put_async(1, timeout=float("nan"))
        with pytest.raises(TypeError):
            await ch.put_async()
        with pytest.raises(ValueError):
            await select_async([])
        with pytest.raises(TypeError, match="not a Channel"):
            await select_async([ch, 3])
        assert ch.empty() and typed.empty()  # nothing was sent
        await ch.put_async(5)
        ch.close()
        with pytest.raises(ChannelClosed):
            await ch.put_async(6)
        assert await ch.get_async() == 5  # drains
        with pytest.raises(ChannelClosed):
            await ch.get_async()

    run(main())


def test_docstrings_have_signature_lines():
    import inspect

    assert str(inspect.signature(Channel.get_async)) == "(self, /, timeout=None)"
    assert str(inspect.signature(Channel.put_async)) == "(self, /, item, timeout=None)"
    assert str(inspect.signature(Channel.join_async)) == "(self, /, timeout=None)"
    ch = Channel()
    assert str(inspect.signature(ch.get_async)) == "(timeout=None)"
    assert str(inspect.signature(ch.put)) == "(item, block=True, timeout=None)"
    assert str(inspect.signature(ch.put_nowait)) == "(item)"
    assert str(inspect.signature(ch.join)) == "(timeout=None)"
    assert str(inspect.signature(ch.close)) == "(immediate=False)"
    assert str(inspect.signature(Channel.from_id)) == "(id, /)"
    assert "ChannelEmpty" in Channel.get_async.__doc__
    assert "ChannelFull" in Channel.put_async.__doc__
    assert select_async.__doc__.startswith("select_async(channels, timeout=None)")
    assert "select_async" in xchannels.__all__


# ---- cancellation --------------------------------------------------------------------


def test_cancelled_get_async_consumes_nothing():
    ch = Channel()

    async def main():
        task = asyncio.create_task(ch.get_async())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ch.get_async(), 0.05)
        if sys.version_info >= (3, 11):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await ch.get_async()
        hub = _aio._hub(asyncio.get_running_loop())
        assert hub._users == 0  # no waiter left registered

    run(main())
    ch.put("item")
    assert ch.get(timeout=1) == "item"  # the cancelled waiters took nothing


def test_cancel_after_notification_passes_it_on():
    """A waiter that was notified but cancelled before it ran must hand the
    notification to the next waiter, or that one sleeps forever."""
    ch = Channel()

    async def main():
        first = asyncio.create_task(ch.get_async())
        await asyncio.sleep(0.02)
        second = asyncio.create_task(ch.get_async())
        await asyncio.sleep(0.02)
        ch.put("x")  # notifies `first` (FIFO), whose task has not run yet
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        return await asyncio.wait_for(second, 10)

    assert run(main()) == "x"


def test_cancelled_put_async_sends_nothing_and_passes_on():
    ch = Channel(1)
    ch.put(0)

    async def main():
        first = asyncio.create_task(ch.put_async(1))
        await asyncio.sleep(0.02)
        second = asyncio.create_task(ch.put_async(2))
        await asyncio.sleep(0.02)
        assert ch.get_nowait() == 0  # frees a slot: notifies `first`
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, 10)

    run(main())
    assert ch.get_nowait() == 2
    assert ch.empty()


# ---- bounded put across interpreters ------------------------------------------------


def test_put_async_on_full_channel_resumes_when_another_interpreter_frees_space():
    ch = Channel(1)
    out = Channel()
    ch.put("first")

    async def main():
        task = asyncio.create_task(ch.put_async("second", timeout=30))
        await asyncio.sleep(0.1)
        assert not task.done()  # full: waiting
        consumer = subinterp.start(
            """
            import xchannels
            ch = xchannels.Channel.from_id(cid)
            out = xchannels.Channel.from_id(oid)
            out.put(ch.get(timeout=30))
            out.put(ch.get(timeout=30))
            """,
            cid=ch.id,
            oid=out.id,
        )
        await task
        await asyncio.to_thread(consumer.join)

    run(main())
    assert out.get_many(2, timeout=5) == ["first", "second"]


# ---- no threads, one fd ----------------------------------------------------------------


def test_1000_waiting_coroutines_use_no_threads_and_one_fd():
    ch = Channel()

    async def main():
        await asyncio.sleep(0)
        threads, fds = threading.active_count(), fd_count()
        tasks = [asyncio.create_task(ch.get_async(timeout=60)) for _ in range(1000)]
        await asyncio.sleep(0.1)
        assert not any(t.done() for t in tasks)
        assert threading.active_count() == threads
        assert fd_count() <= fds + 1  # the hub's eventfd
        assert _aio._hub(asyncio.get_running_loop())._users == 1000
        feeder = threading.Thread(target=ch.put_many, args=(range(1000),))
        feeder.start()
        got = await asyncio.wait_for(asyncio.gather(*tasks), 60)
        feeder.join()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        # idle hub closed its eventfd (<=: an unrelated descriptor, such as
        # one a finished earlier test left to a finalizer, may close meanwhile)
        assert fd_count() <= fds
        return got

    assert sorted(run(main())) == list(range(1000))
    assert ch.empty()


def test_many_asyncio_run_cycles_do_not_leak_fds():
    ch = Channel()

    async def once(i):
        task = asyncio.create_task(ch.get_async(timeout=10))
        await asyncio.sleep(0)
        ch.put(i)
        assert await task == i
        # One left waiting when the loop ends: asyncio.run cancels it.
        asyncio.create_task(ch.get_async())
        await asyncio.sleep(0)

    run(once(-1))  # warm up (imports, first loop)
    gc.collect()
    fds = fd_count()
    for i in range(50):
        run(once(i))
    gc.collect()
    assert fd_count() == fds
    assert len(_aio._hubs) <= 1
    ch.put("after")
    assert ch.get_nowait() == "after"  # the cancelled waiters took nothing


# ---- select_async -----------------------------------------------------------------------


def test_select_async_returns_the_channel_that_became_ready():
    chs = [Channel(), Channel(1), Channel()]

    async def main():
        producer = subinterp.start(
            """
            import time, xchannels
            time.sleep(0.1)
            xchannels.Channel.from_id(cid).put(("late", 1))
            """,
            cid=chs[1].id,
        )
        got = await select_async(chs, timeout=30)
        await asyncio.to_thread(producer.join)
        return got

    ch, item = run(main())
    assert ch is chs[1] and item == ("late", 1)


def test_select_async_ready_timeout_and_closed():
    a, b = Channel(), Channel()

    async def main():
        b.put(2)
        assert await select_async((a, b)) == (b, 2)
        with pytest.raises(ChannelEmpty, match="select"):
            await select_async([a, b], timeout=0.1)
        a.close()
        task = asyncio.create_task(select_async([a, b]))
        await asyncio.sleep(0.05)
        b.put(3)  # a closed channel is skipped while b is open
        assert await asyncio.wait_for(task, 10) == (b, 3)
        b.close()
        with pytest.raises(ChannelClosed):
            await select_async([a, b])

    run(main())


def test_select_async_passes_on_what_the_iterable_raises():
    # As select(): only "not iterable" becomes the TypeError naming the
    # call (its cause kept); the iterable's own error goes through.
    ch = Channel()

    def channels():
        yield ch
        raise ValueError("from the iterable")

    async def main():
        with pytest.raises(ValueError, match="from the iterable"):
            await select_async(channels())
        with pytest.raises(TypeError, match="^select_async\\(\\) needs a sequence of channels$") as info:
            await select_async(5)
        assert isinstance(info.value.__cause__, TypeError)

    run(main())
    with pytest.raises(ValueError, match="from the iterable"):
        xchannels.select(channels())
    ch.put(1)
    assert xchannels.select([ch]) == (ch, 1)


def test_coroutines_read_a_timeout_once():
    from test_bad_input import FloatOnce  # a timeout that answers once

    # _aio_timeout read the object twice: a second __float__ that failed
    # left its error set under the float it returned (a fatal error on a
    # debug CPython).
    ch = Channel(1)
    pc = xchannels.ProcessChannel(1)
    timeouts = [FloatOnce(5.0) for _ in range(5)]

    async def main():
        await ch.put_async("a", timeout=timeouts[0])
        assert await ch.get_async(timeout=timeouts[1]) == "a"
        with pytest.raises(ChannelEmpty):
            await ch.get_async(timeout=FloatOnce(0.01))
        ch.put("b")
        assert await select_async([ch], timeout=timeouts[2]) == (ch, "b")
        await pc.put_async("c", timeout=timeouts[3])
        assert await pc.get_async(timeout=timeouts[4]) == "c"

    run(main())
    assert [t.calls for t in timeouts] == [1] * 5


# ---- close ------------------------------------------------------------------------------


def test_close_wakes_every_async_waiter_with_channel_closed():
    ch = Channel()
    full = Channel(1)
    full.put(0)

    async def main():
        getters = [asyncio.create_task(ch.get_async()) for _ in range(20)]
        putters = [asyncio.create_task(full.put_async(i)) for i in range(5)]
        selector = asyncio.create_task(select_async([ch]))

        async def iterate():
            return [x async for x in ch]

        iterator = asyncio.create_task(iterate())
        await asyncio.sleep(0.05)
        with ch:  # leaving the block closes it...
            pass
        # ... and another interpreter closes the other one.
        await asyncio.to_thread(
            subinterp.run, "import xchannels; xchannels.Channel.from_id(cid).close()", cid=full.id
        )
        results = await asyncio.wait_for(
            asyncio.gather(*getters, *putters, selector, return_exceptions=True), 10
        )
        assert await asyncio.wait_for(iterator, 10) == []
        return results

    results = run(main())
    assert len(results) == 26
    assert all(isinstance(r, ChannelClosed) for r in results), results
    assert full.get_nowait() == 0  # drains; the putters sent nothing


# ---- contention -------------------------------------------------------------------------


def test_async_consumers_and_a_thread_share_items_from_two_subinterpreters():
    ch = Channel(8)
    n = 3000
    producer = """
    import xchannels
    ch = xchannels.Channel.from_id(cid)
    for i in range(n):
        ch.put((p, i), timeout=60)
    """
    thread_got = []

    def thread_consumer():
        try:
            while True:
                thread_got.append(ch.get(timeout=60))
        except ChannelClosed:
            pass

    async def main():
        got = []

        async def consumer():
            async for item in ch:
                got.append(item)

        tasks = [asyncio.create_task(consumer()) for _ in range(20)]
        t = threading.Thread(target=thread_consumer)
        t.start()
        producers = [subinterp.start(producer.replace("(p, i)", f"({p}, i)"), cid=ch.id, n=n) for p in range(2)]
        for pr in producers:
            await asyncio.to_thread(pr.join, 120)
        ch.close()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        await asyncio.to_thread(t.join)
        return got

    got = run(main())
    assert sorted(got + thread_got) == sorted((p, i) for p in range(2) for i in range(n))


# ---- in a sub-interpreter ------------------------------------------------------------------


def test_async_in_a_subinterpreter():
    ch = Channel()
    out = Channel()
    code = ASYNCIO_IN_SUB + """
import os
import xchannels
ch = xchannels.Channel.from_id(cid)
out = xchannels.Channel.from_id(oid)

async def main():
    first = await ch.get_async(timeout=30)  # sent by the main interpreter
    task = asyncio.create_task(ch.get_async())
    await asyncio.sleep(0.02)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    b = xchannels.Channel(1)
    await b.put_async(1)
    asyncio.get_running_loop().call_later(0.05, b.get_nowait)
    await b.put_async(2, timeout=30)  # resumes when the slot frees
    _, sel = await xchannels.select_async([ch, b], timeout=30)
    out.put("ready")
    rest = [x async for x in ch]  # until the main interpreter closes ch
    return first, sel, tuple(rest)

async def short():
    try:
        await xchannels.Channel().get_async(timeout=0.01)
    except xchannels.ChannelEmpty:
        return "timed out"

out.put(asyncio.run(main()))
fds = len(os.listdir("/proc/self/fd"))
for _ in range(5):  # more loops, each with its own hub: no fd left behind
    assert asyncio.run(short()) == "timed out"
assert len(os.listdir("/proc/self/fd")) == fds
"""
    runner = subinterp.start(code, cid=ch.id, oid=out.id)
    time.sleep(0.2)
    ch.put("hello")
    assert out.get(timeout=60) == "ready"
    ch.put_many(["a", "b"])
    ch.close()
    assert out.get(timeout=60) == ("hello", 2, ("a", "b"))
    runner.join(120)


def test_async_with_a_pool_future():
    import operator

    async def main():
        with xchannels.Pool(2) as pool:
            futs = [asyncio.wrap_future(pool.submit(operator.mul, i, 7)) for i in range(4)]
            return await asyncio.wait_for(asyncio.gather(*futs), 120)

    assert run(main()) == [0, 7, 14, 21]
