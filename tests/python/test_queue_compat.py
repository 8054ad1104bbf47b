"""tests/python/test_queue_compat.py: the queue.Queue drop-in: task_done /
join / unfinished_tasks counted across interpreters, shutdown and
queue.ShutDown, close(immediate=True), close_after for several producers,
maxsize <= 0 and the item= keyword."""

from __future__ import annotations

import asyncio
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import xchannels
from xchannels import Channel, ChannelClosed, ChannelEmpty, SharedBuffer
from xchannels import _xchannels as core

import subinterp

PY313 = sys.version_info >= (3, 13)
needs_shutdown = pytest.mark.skipif(not PY313, reason="queue.ShutDown is new in Python 3.13")


# ---- one interpreter: the queue.Queue contract -------------------------------------


def test_task_done_and_join_count_like_queue():
    ch = Channel()
    assert ch.unfinished_tasks == 0
    ch.join()  # nothing put: returns at once
    with pytest.raises(ValueError, match=r"task_done\(\) called too many times"):
        ch.task_done()
    for i in range(3):
        ch.put(i)
    assert ch.unfinished_tasks == 3
    assert ch.get() == 0
    assert ch.unfinished_tasks == 3  # taking is not finishing
    ch.task_done()
    assert ch.unfinished_tasks == 2
    with pytest.raises(TimeoutError, match="2 task"):
        ch.join(timeout=0.01)
    # task_done may be called for items still queued, as queue.Queue allows.
    ch.task_done()
    ch.task_done()
    ch.join(timeout=0)
    with pytest.raises(ValueError):
        ch.task_done()
    assert ch.unfinished_tasks == 0
    # The refused call changed nothing: the next put counts from zero.
    ch.put("x")
    assert ch.unfinished_tasks == 1


def test_refused_puts_count_nothing():
    ch = Channel(1)
    ch.put(1)
    with pytest.raises(xchannels.ChannelFull):
        ch.put_nowait(2)
    with pytest.raises(xchannels.NotShareableError):
        ch.put(object())
    ch.close()
    with pytest.raises(ChannelClosed):
        ch.put(3)
    assert ch.unfinished_tasks == 1


def test_join_arguments_are_checked():
    ch = Channel()
    ch.put(1)
    with pytest.raises(ValueError, match="timeout"):
        ch.join(timeout=-1)
    with pytest.raises(TypeError, match="timeout"):
        ch.join(timeout="soon")
    with pytest.raises(TypeError):
        ch.join(1, 2)
    assert ch.unfinished_tasks == 1  # nothing changed


@pytest.mark.parametrize("make", [queue.Queue, Channel], ids=["queue.Queue", "Channel"])
def test_same_worker_pattern_as_queue(make):
    """The queue docs' worker example, unchanged, with either class."""
    q = make()
    done = []

    def worker():
        while True:
            try:
                item = q.get()
            except Exception:  # shutdown (3.13) / closed
                return
            if item is None:
                q.task_done()
                return
            done.append(item * 2)
            q.task_done()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for item in range(300):
        q.put(item)
    q.join()
    assert sorted(done) == [2 * i for i in range(300)]
    assert q.unfinished_tasks == 0
    for _ in threads:
        q.put(None)
    q.join()
    for t in threads:
        t.join()


def test_join_in_main_waits_for_four_subinterpreters():
    ch, results = Channel(), Channel()
    n = 400
    for i in range(n):
        ch.put(i)
    code = """
        import time, xchannels
        ch = xchannels.Channel.from_id(ch_id)
        out = xchannels.Channel.from_id(out_id)
        for item in ch:
            time.sleep(0.0005)
            out.put(item)      # the result first ...
            ch.task_done()     # ... then the task is done
    """
    workers = [subinterp.start(code, ch_id=ch.id, out_id=results.id) for _ in range(4)]
    try:
        assert ch.unfinished_tasks > 0
        ch.join(timeout=60)
        # join returned only after every task_done: every result is there.
        assert results.qsize() == n
        assert ch.unfinished_tasks == 0
    finally:
        ch.close()
        for w in workers:
            w.join()
    assert sorted(results.get_many(n)) == list(range(n))


def test_join_in_subinterpreter_waits_for_task_done_in_main():
    ch, report = Channel(), Channel()
    ch.put("job")
    joiner = subinterp.start(
        """
        import xchannels
        ch = xchannels.Channel.from_id(ch_id)
        ch.join()
        xchannels.Channel.from_id(report_id).put(ch.unfinished_tasks)
        """,
        ch_id=ch.id,
        report_id=report.id,
    )
    time.sleep(0.2)
    with pytest.raises(ChannelEmpty):
        report.get(timeout=0.05)  # still joining
    assert ch.get() == "job"
    ch.task_done()
    assert report.get(timeout=30) == 0
    joiner.join()


def test_crawler_pattern_join_waits_for_follow_up_items():
    """Consumers in sub-interpreters put follow-up items before task_done:
    the count never touches zero until the last generation is done."""
    ch, seen = Channel(), Channel()
    depth = 6
    ch.put(depth)
    code = """
        import xchannels
        ch = xchannels.Channel.from_id(ch_id)
        seen = xchannels.Channel.from_id(seen_id)
        for d in ch:
            if d > 0:
                ch.put(d - 1)
                ch.put(d - 1)
            seen.put(d)
            ch.task_done()
    """
    workers = [subinterp.start(code, ch_id=ch.id, seen_id=seen.id) for _ in range(3)]
    try:
        ch.join(timeout=60)
        assert seen.qsize() == 2 ** (depth + 1) - 1
    finally:
        ch.close()
        for w in workers:
            w.join()
    seen.close()
    assert sum(1 for _ in seen) == 2 ** (depth + 1) - 1


def test_join_async_with_task_done_from_a_subinterpreter():
    ch = Channel()
    for i in range(20):
        ch.put(i)

    async def main():
        worker = subinterp.start(
            """
            import time, xchannels
            ch = xchannels.Channel.from_id(ch_id)
            for _ in range(20):
                ch.get()
                time.sleep(0.001)
                ch.task_done()
            """,
            ch_id=ch.id,
        )
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        t = asyncio.create_task(ticker())
        await ch.join_async(timeout=30)
        t.cancel()
        await asyncio.to_thread(worker.join)
        return ticks

    ticks = asyncio.run(main())
    assert ch.unfinished_tasks == 0
    assert ticks > 0  # the loop kept running while it waited


def test_join_async_timeout_and_cancel_leave_nothing_armed():
    ch = Channel()
    ch.put(1)

    async def main():
        with pytest.raises(TimeoutError, match="join"):
            await ch.join_async(timeout=0.02)
        task = asyncio.create_task(ch.join_async())
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # A later join_async still wakes on task_done.
        waiter = asyncio.create_task(ch.join_async(timeout=10))
        await asyncio.sleep(0.01)
        ch.get()
        ch.task_done()
        await waiter
        await ch.join_async(timeout=0)  # nothing unfinished: at once

    asyncio.run(main())


def test_join_ctrl_c_raises_keyboard_interrupt_and_join_still_works(tmp_path):
    script = tmp_path / "join_ctrl_c.py"
    script.write_text(
        textwrap.dedent(
            """
            import multiprocessing, queue, sys, time, xchannels
            ch = xchannels.Channel()
            ch.put("job")
            print("joining", flush=True)
            try:
                ch.join()
            except KeyboardInterrupt:
                print("interrupted", ch.unfinished_tasks, flush=True)
            ch.get()
            ch.task_done()
            ch.join(timeout=5)
            print("joined", flush=True)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "joining"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.split("\n")[:2] == ["interrupted 1", "joined"]


# ---- shutdown, close(immediate=True) and queue.ShutDown ----------------------------


@needs_shutdown
def test_channel_closed_is_a_queue_shutdown():
    assert issubclass(ChannelClosed, queue.ShutDown)
    assert issubclass(ChannelClosed, xchannels.ChannelError)
    ch = Channel()
    ch.shutdown()
    with pytest.raises(queue.ShutDown):
        ch.put(1)
    with pytest.raises(queue.ShutDown):
        ch.get()


def test_channel_closed_class_is_made_lazily_in_a_fresh_interpreter():
    """On 3.13 ChannelClosed derives from queue.ShutDown, yet importing
    xchannels must not import queue (milliseconds per pool worker): the
    class is made on first use, once per interpreter."""
    report = Channel()
    subinterp.run(
        """
        import sys, xchannels
        report = xchannels.Channel.from_id(report_id)
        report.put("queue" in sys.modules)
        ch = xchannels.Channel()
        ch.close()
        try:
            ch.get()
        except Exception as e:
            raised = type(e)
        report.put(raised is xchannels.ChannelClosed)
        report.put(issubclass(raised, xchannels.ChannelError))
        if sys.version_info >= (3, 13):
            import queue
            report.put(issubclass(raised, queue.ShutDown))
        else:
            report.put(True)
        """,
        report_id=report.id,
    )
    imported_queue, same_class, is_channel_error, is_shutdown = report.get_many(4)
    assert imported_queue is False
    assert same_class and is_channel_error and is_shutdown


def test_pool_workers_do_not_import_queue():
    """A pool worker's start-up and its loop never need queue (the worker
    loop ends on a closed task channel without raising ChannelClosed)."""
    with xchannels.Pool(1) as pool:
        assert pool.submit(eval, "'queue' in __import__('sys').modules").result(timeout=60) is False


def test_shutdown_spellings():
    ch = Channel()
    assert ch.is_shutdown is False
    ch.put(1)
    ch.shutdown()
    assert ch.is_shutdown is True and ch.closed is True
    assert ch.get() == 1  # not immediate: drains first
    with pytest.raises(ChannelClosed):
        ch.get()
    with pytest.raises(TypeError):
        ch.shutdown(True, 1)


def test_close_immediate_drops_and_releases_and_finishes_tasks():
    ch = Channel()
    inner = Channel()
    buffers = core._live_buffers()
    channels = core._live_channels()
    ch.put(SharedBuffer(b"x" * 1000))
    ch.put((inner, [SharedBuffer(b"y")]))
    ch.put({"k": "v"})
    taken = ch.get()  # taken, not done
    assert core._live_buffers() == buffers + 2
    del inner
    ch.close(immediate=True)
    assert ch.closed and ch.qsize() == 0
    # The two dropped items were released (the buffer and the channel in them).
    assert core._live_buffers() == buffers + 1
    assert core._live_channels() == channels - 1  # `inner` is gone
    assert ch.unfinished_tasks == 1  # the one taken is still unfinished
    with pytest.raises(TimeoutError):
        ch.join(timeout=0.01)
    del taken
    ch.task_done()
    ch.join(timeout=0)
    with pytest.raises(ChannelClosed):
        ch.get_nowait()


def test_shutdown_immediate_races_blocked_callers_in_several_interpreters():
    """Blocked getters, putters and joiners in six sub-interpreters; one
    shutdown(immediate=True) wakes them all with the right outcome."""
    # One script for the six: ``op`` says which call blocks (a get on the
    # empty channel, a put or a join on the full one).
    blocked = """
        import xchannels
        ch = xchannels.Channel.from_id(ch_id)
        report = xchannels.Channel.from_id(report_id)
        report.put("ready")
        try:
            if op == "get":
                ch.get()
                report.put("get: got an item")
            elif op == "put":
                ch.put(xchannels.SharedBuffer(b"late"))
                report.put("put: sent")
            else:
                ch.join()
                report.put("join: returned")
        except xchannels.ChannelClosed:
            report.put(op + ": closed")
    """
    for round_ in range(3):
        empty, full, report = Channel(), Channel(2), Channel()
        buffers = core._live_buffers()
        full.put(SharedBuffer(b"a"))
        full.put(SharedBuffer(b"b"))
        codes = ["get", "get", "put", "put", "join", "join"]
        running = [
            subinterp.start(blocked, op=op, ch_id=(empty if op == "get" else full).id, report_id=report.id)
            for op in codes
        ]
        try:
            assert [report.get(timeout=60) for _ in codes] == ["ready"] * 6
            time.sleep(0.05 * round_)  # blocked by now, or about to be
            empty.shutdown(immediate=True)
            full.shutdown(immediate=True)
            outcomes = sorted(report.get(timeout=30) for _ in codes)
        finally:
            for r in running:
                r.join()
        assert outcomes == sorted(["get: closed"] * 2 + ["put: closed"] * 2 + ["join: returned"] * 2)
        assert full.unfinished_tasks == 0 and full.qsize() == 0
        assert core._live_buffers() == buffers  # the dropped buffers were released


# ---- several producers, one close ---------------------------------------------------


def test_close_after_with_producers_in_subinterpreters():
    ch = Channel(8)
    ch.close_after(3)
    assert ch.close_pending == 3
    producer = """
        import xchannels
        with xchannels.Channel.from_id(ch_id) as ch:  # exit counts one close
            for i in range(200):
                ch.put((k, i))
    """
    running = [subinterp.start(producer, ch_id=ch.id, k=k) for k in range(3)]
    got = list(ch)  # ends when the last producer closes: no helper thread
    for r in running:
        r.join()
    assert sorted(got) == [(k, i) for k in range(3) for i in range(200)]
    assert ch.closed and ch.close_pending == 0


def test_close_after_rules():
    ch = Channel()
    with pytest.raises(ValueError, match=">= 1"):
        ch.close_after(0)
    with pytest.raises(TypeError, match="int"):
        ch.close_after("2")
    ch.close_after(2)
    ch.close_after(1)  # adds up
    assert ch.close_pending == 3
    ch.close()
    ch.close()
    assert not ch.closed and ch.close_pending == 1
    ch.put(1)
    ch.close(immediate=True)  # always closes at once
    assert ch.closed and ch.qsize() == 0
    with pytest.raises(ChannelClosed):
        ch.close_after(1)
    ch.close()  # idempotent once closed
    assert ch.closed


# ---- small differences --------------------------------------------------------------


@pytest.mark.parametrize("maxsize", [0, -1, -100])
def test_maxsize_zero_or_less_is_unbounded_and_kept_as_given(maxsize):
    ch = Channel(maxsize)
    q = queue.Queue(maxsize)  # the same rule
    assert ch.maxsize == q.maxsize == maxsize  # kept as given, as queue.Queue does
    assert f"maxsize={maxsize} " in repr(ch)
    for i in range(1000):
        ch.put_nowait(i)
        q.put_nowait(i)
    assert not ch.full() and ch.qsize() == 1000
    # every handle, in every interpreter, says the same
    assert Channel.from_id(ch.id).maxsize == maxsize
    subinterp.run(
        "import xchannels\nassert xchannels.Channel.from_id(cid).maxsize == m",
        cid=ch.id,
        m=maxsize,
    )


def test_item_keyword_as_queue():
    ch = Channel(2)
    ch.put(item=1)
    ch.put_nowait(item=2)
    with pytest.raises(xchannels.ChannelFull):
        ch.put(item=3, block=False)

    async def main():
        ch.get()
        await ch.put_async(item=4)

    asyncio.run(main())
    assert ch.get_many(3) == [2, 4]
    with pytest.raises(TypeError, match="unexpected keyword"):
        ch.put_nowait(obj=1)
