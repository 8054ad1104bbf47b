"""ProcessChannel: a channel between processes over shared memory.

Processes are real (multiprocessing with the fork, spawn and forkserver start
methods); so are the signals and the SIGKILLs.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import xchannels
from xchannels import ProcessChannel

START_METHODS = ["fork", "spawn", "forkserver"]

RECORD = {
    "id": 12345678901234567890,
    "name": "Zoë",
    "tags": ["a", "b"],
    "pos": (1.5, -2.0, 3 + 4j),
    "blob": b"\x00\xff" * 40000,  # over 64 KiB: a bytes ref in-process
    "nested": [{"k": {1, 2}}, frozenset({"x"}), None, True],
}


# ---- workers (module level: spawn and forkserver import this module) ------


def _echo(inbox: ProcessChannel, outbox: ProcessChannel) -> None:
    for item in inbox:
        outbox.put(item)
    outbox.close()


def _square_all(ch: ProcessChannel, n: int) -> int:
    return sum(ch.get(timeout=30) ** 2 for _ in range(n))


def _produce(ch: ProcessChannel, start: int, n: int) -> None:
    for i in range(start, start + n):
        ch.put((i, "x" * (i % 50)))


def _blocked_get(ch: ProcessChannel, out: ProcessChannel) -> None:
    try:
        ch.get()
    except xchannels.ChannelClosed:
        out.put("woken by close")


# ---- values ---------------------------------------------------------------


def test_values_round_trip_in_one_process():
    ch = ProcessChannel()
    values = [None, True, False, 0, -1, 2**70, 1.5, "", "ü" * 3, b"xy",
              (), [], {}, RECORD]
    for v in values:
        ch.put(v)
    for v in values:
        got = ch.get_nowait()
        assert got == v and type(got) is type(v)
    buf = xchannels.SharedBuffer(memoryview(struct.pack("4i", 1, 2, 3, 4)).cast("i", (2, 2)))
    ch.put(buf)
    got = ch.get()
    assert isinstance(got, xchannels.SharedBuffer) and got is not buf
    assert memoryview(got).tolist() == [[1, 2], [3, 4]]
    assert ch.qsize() == 0 and ch.empty()


def test_a_channel_cannot_travel_and_nothing_is_lost():
    ch = ProcessChannel()
    ch.put("before")
    with pytest.raises(xchannels.NotShareableError, match="cannot travel to another process"):
        ch.put({"reply_to": xchannels.Channel()})
    with pytest.raises(xchannels.NotShareableError):
        ch.put(object())
    assert ch.qsize() == 1
    assert ch.get() == "before"


def test_pickle_fallback_carries_other_objects():
    ch = ProcessChannel(fallback="pickle")
    assert ch.fallback == "pickle"
    ch.put({"when": time.struct_time((2026, 1, 2, 3, 4, 5, 0, 1, 0))})
    assert ch.get()["when"].tm_year == 2026
    assert ProcessChannel().fallback is None


def test_bounds_items_and_bytes():
    ch = ProcessChannel(2, capacity=4096)
    assert (ch.maxsize, ch.capacity) == (2, 4096)
    ch.put(1)
    ch.put(2)
    assert ch.full()
    with pytest.raises(xchannels.ChannelFull):
        ch.put_nowait(3)
    with pytest.raises(queue.Full):
        ch.put(3, timeout=0.01)
    assert [ch.get(), ch.get()] == [1, 2]
    # Larger than the ring: it goes out of line (test_process_large.py). An
    # empty channel admits it; its 5000 bytes count against the capacity,
    # so nothing else fits until it is taken.
    ch.put(b"x" * 5000, timeout=5)
    assert ch.qsize() == 1 and not ch.full()
    with pytest.raises(xchannels.ChannelFull):
        ch.put_nowait(3)
    assert ch.get() == b"x" * 5000
    ch.put("still usable")
    assert ch.get() == "still usable"


def test_bad_arguments():
    with pytest.raises(ValueError, match="fallback"):
        ProcessChannel(fallback="json")
    with pytest.raises(ValueError, match="capacity"):
        ProcessChannel(capacity=10)
    with pytest.raises(TypeError):
        ProcessChannel(capacity="big")
    with pytest.raises(ValueError, match="timeout"):
        ProcessChannel().get(timeout=-1)


def test_fractional_timeouts():
    ch = ProcessChannel()
    t0 = time.monotonic()
    with pytest.raises(xchannels.ChannelEmpty):
        ch.get(timeout=0.05)
    assert time.monotonic() - t0 >= 0.05
    with pytest.raises(queue.Empty):
        ch.get_nowait()


def test_close_drains_then_raises():
    with ProcessChannel() as ch:
        ch.put(1)
    assert ch.closed
    assert list(ch) == [1]
    with pytest.raises(xchannels.ChannelClosed):
        ch.get()
    with pytest.raises(xchannels.ChannelClosed):
        ch.put(2)
    assert ch.close() is False


# ---- between processes ----------------------------------------------------


@pytest.mark.parametrize("method", START_METHODS)
def test_process_arguments_with_each_start_method(method):
    ctx = multiprocessing.get_context(method)
    inbox, outbox = ProcessChannel(8), ProcessChannel()
    p = ctx.Process(target=_echo, args=(inbox, outbox))
    p.start()
    for i in range(200):
        inbox.put({"i": i, "record": RECORD if i % 50 == 0 else None})
    inbox.close()
    got = list(outbox)
    p.join(30)
    assert p.exitcode == 0
    assert [g["i"] for g in got] == list(range(200))
    assert got[0]["record"] == RECORD


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_task_arguments(method):
    # Outside process start-up the descriptor goes through multiprocessing's
    # resource sharer (a multiprocessing.Queue refuses this).
    ch = ProcessChannel()
    for i in range(10):
        ch.put(i)
    with multiprocessing.get_context(method).Pool(2) as pool:
        total = pool.apply_async(_square_all, (ch, 10)).get(60)
    assert total == sum(i * i for i in range(10))


def test_many_producer_processes_nothing_lost_or_duplicated():
    # forkserver: this test process has threads, where fork() is deprecated.
    ctx = multiprocessing.get_context("forkserver")
    ch = ProcessChannel(64, capacity=16384)
    procs = [ctx.Process(target=_produce, args=(ch, k * 5000, 5000)) for k in range(3)]
    for p in procs:
        p.start()
    got = [ch.get(timeout=30) for _ in range(15000)]
    for p in procs:
        p.join(30)
    assert sorted(i for i, _ in got) == list(range(15000))
    assert all(s == "x" * (i % 50) for i, s in got)


def test_close_wakes_a_waiter_in_another_process():
    ctx = multiprocessing.get_context("spawn")
    ch, out = ProcessChannel(), ProcessChannel()
    p = ctx.Process(target=_blocked_get, args=(ch, out))
    p.start()
    time.sleep(0.5)  # let it block (a premature close also ends in the same reply)
    ch.close()
    assert out.get(timeout=30) == "woken by close"
    p.join(30)
    assert p.exitcode == 0


def test_ctrl_c_between_two_sleeps_is_not_lost(tmp_path):
    # A blocked call sleeps in 250 ms slices; a SIGINT that lands between
    # two (here: 0.5 s in, right at a slice boundary) must still interrupt
    # it. Both a put and a get, in a script that imports the usual peers.
    script = tmp_path / "boundary.py"
    script.write_text(textwrap.dedent("""
        import asyncio, multiprocessing, queue
        import xchannels
        ch = xchannels.ProcessChannel(1)
        ch.put("x")
        for what in ("put", "get"):
            print("ready", flush=True)
            try:
                ch.put("y") if what == "put" else ch.get()
            except KeyboardInterrupt:
                print("interrupted", what, flush=True)
            if what == "put":
                assert ch.get_nowait() == "x"
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        for what in ("put", "get"):
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            assert proc.stdout.readline().strip() == f"interrupted {what}"
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_killed_producer_leaves_the_channel_usable():
    ctx = multiprocessing.get_context("forkserver")
    ch = ProcessChannel(16, capacity=4096)
    p = ctx.Process(target=_produce, args=(ch, 0, 10**9))
    p.start()
    seen = [ch.get(timeout=30) for _ in range(2000)]
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    # What it committed is there, intact and in order; then the channel works.
    while True:
        try:
            seen.append(ch.get_nowait())
        except xchannels.ChannelEmpty:
            break
    assert [i for i, _ in seen] == list(range(len(seen)))
    assert all(s == "x" * (i % 50) for i, s in seen)
    ch.put("after")
    assert ch.get(timeout=5) == "after"


def test_ctrl_c_interrupts_a_blocked_get_in_a_script(tmp_path):
    script = tmp_path / "blocked.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing, queue, sys
        import xchannels
        ch = xchannels.ProcessChannel()
        print("ready", flush=True)
        try:
            ch.get()
        except KeyboardInterrupt:
            ch.put("usable")
            print("interrupted", ch.get(), flush=True)
            sys.exit(0)
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out.strip() == "interrupted usable"


_ITER_ERROR_SCRIPT = """
import sys
import xchannels

fresh = "queue" not in sys.modules  # ChannelClosed not made yet on 3.13+


class Boom:
    def __reduce__(self):
        return (int, ("not a number",))  # fails when unpickled


pc = xchannels.ProcessChannel(fallback="pickle")
pc.put(Boom())
pc.put("next")
try:
    next(iter(pc))
except xchannels.NotShareableError as e:
    assert "cannot be unpickled" in str(e), e
    assert isinstance(e.__cause__, ValueError), repr(e.__cause__)
else:
    raise AssertionError("an unpicklable record was taken")
assert next(iter(pc)) == "next"
pc.close()
assert list(pc) == []  # ChannelClosed ends the iteration
print("ok", fresh)
"""


def test_iteration_passes_on_a_receive_error_before_channel_closed_exists():
    # next() on a ProcessChannel checks whether a failed get() raised
    # ChannelClosed. It made the class to compare (importing queue on 3.13+)
    # with the get's error still set: Python code run with an exception set
    # (a fatal error on a debug CPython; the error could be lost). A fresh
    # process, so queue is not imported yet.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-X", "dev", "-c", _ITER_ERROR_SCRIPT],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ok", "True"]


def test_no_file_is_left_in_dev_shm():
    before = set(os.listdir("/dev/shm"))
    ch = ProcessChannel()
    ch.put(1)
    ctx = multiprocessing.get_context("spawn")
    out = ProcessChannel()
    p = ctx.Process(target=_echo, args=(ch, out))
    p.start()
    ch.close()
    assert list(out) == [1]
    p.join(30)
    del ch, out
    assert set(os.listdir("/dev/shm")) - before == set()


def test_pickled_outside_multiprocessing():
    ch = ProcessChannel()
    data = pickle.dumps(ch)
    other = pickle.loads(data)
    assert other is not ch and other.fileno() != ch.fileno()
    other.put("through another handle")
    assert ch.get() == "through another handle"


def test_unpickling_after_the_handle_is_gone_is_a_clear_error():
    ch = ProcessChannel()
    data = pickle.dumps(ch)
    del ch
    with pytest.raises(xchannels.ChannelError, match="keep a handle open"):
        pickle.loads(data)
    # The descriptor number now names another channel's segment: refused too.
    ch = ProcessChannel()
    data = pickle.dumps(ch)
    fd = ch.fileno()
    del ch
    other = ProcessChannel()
    assert other.fileno() == fd  # the lowest free number, reused
    with pytest.raises(xchannels.ChannelError, match="another channel's segment"):
        pickle.loads(data)


def test_pickled_into_a_sub_interpreter(sub):
    # multiprocessing's resource sharer would refuse this (each interpreter
    # has its own authkey); the pickle names the descriptor instead.
    ch = ProcessChannel()
    sub.run(
        """
        import pickle
        ch = pickle.loads(data)
        ch.put(("from a sub-interpreter", 2))
        """,
        data=pickle.dumps(ch),
    )
    assert ch.get(timeout=10) == ("from a sub-interpreter", 2)


def _put_later(ch: ProcessChannel, value: object, delay: float) -> None:
    time.sleep(delay)
    ch.put(value)


def test_select_over_process_channels():
    a, b = ProcessChannel(), ProcessChannel()
    ctx = multiprocessing.get_context("forkserver")
    p = ctx.Process(target=_put_later, args=(b, {"from": "child"}, 0.2))
    p.start()
    got = xchannels.select([a, b], timeout=30)
    p.join(30)
    assert got[0] is b and got[1] == {"from": "child"}
    with pytest.raises(xchannels.ChannelEmpty):
        xchannels.select([a, b], timeout=0.02)
    with pytest.raises(TypeError, match="not a mix"):
        xchannels.select([a, xchannels.Channel()])
    with pytest.raises(TypeError, match="not a mix"):
        xchannels.select([xchannels.Channel(), a])
    a.put(1)
    a.close()
    b.close()
    assert xchannels.select([a, b]) == (a, 1)
    with pytest.raises(xchannels.ChannelClosed):
        xchannels.select([a, b])


# ---- asyncio -------------------------------------------------------------------


def test_get_async_waits_for_another_process_without_blocking_the_loop():
    import asyncio

    ch = ProcessChannel()
    ctx = multiprocessing.get_context("forkserver")
    p = ctx.Process(target=_put_later, args=(ch, {"async": True}, 0.3))

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        p.start()
        got = await ch.get_async(timeout=30)
        t.cancel()
        return got, ticks

    got, ticks = asyncio.run(main())
    p.join(30)
    assert got == {"async": True}
    assert ticks >= 5  # the loop kept running while the coroutine waited


def test_async_timeouts_close_and_bad_values():
    import asyncio

    async def main():
        ch = ProcessChannel(1)
        with pytest.raises(xchannels.ChannelEmpty):
            await ch.get_async(timeout=0.05)
        await ch.put_async(1)
        with pytest.raises(xchannels.ChannelFull):
            await ch.put_async(2, timeout=0.05)
        with pytest.raises(xchannels.NotShareableError):
            await ch.put_async(object())
        with pytest.raises(ValueError):
            await ch.get_async(timeout=-1)
        assert await ch.get_async() == 1
        waiter = asyncio.create_task(ch.get_async())
        await asyncio.sleep(0.05)
        ch.close()
        with pytest.raises(xchannels.ChannelClosed):
            await waiter

    asyncio.run(main())


def test_put_async_waits_for_room():
    import asyncio

    async def main():
        ch = ProcessChannel(1)
        ch.put("first")
        pending = asyncio.create_task(ch.put_async("second"))
        await asyncio.sleep(0.05)
        assert not pending.done()
        assert ch.get() == "first"
        await asyncio.wait_for(pending, 10)
        return ch.get_nowait()

    assert asyncio.run(main()) == "second"


def test_a_cancelled_get_async_takes_nothing_and_leaves_no_thread():
    import asyncio

    ch = ProcessChannel()
    before = threading.active_count()

    async def main():
        task = asyncio.create_task(ch.get_async())
        await asyncio.sleep(0.05)  # it waits, its helper thread asleep
        # An item arrives and the task is cancelled before it runs again:
        # the wake-up reached it, the item must stay in the channel.
        ch.put("kept")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert ch.get_nowait() == "kept"
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


def test_pickled_records_are_refused_without_the_fallback():
    # A record holding a pickle (as a faulty or hostile writer could put in
    # the segment) is not unpickled on a channel that did not opt in.
    ch = ProcessChannel(fallback="pickle")
    ch.put(time.struct_time((2026, 1, 2, 3, 4, 5, 0, 1, 0)))
    plain = ProcessChannel()
    seg = mmap.mmap(ch.fileno(), 4096 + ch.capacity)
    seg2 = mmap.mmap(plain.fileno(), 4096 + plain.capacity)
    try:
        # head, tail and count (after the header's fields and the mutex:
        # offset 72 on x86-64 Linux), then the record itself.
        state = slice(72, 96)
        (length,) = struct.unpack_from("<I", seg, 4096)
        seg2[state] = seg[state]
        seg2[4096 : 4096 + 8 + length] = seg[4096 : 4096 + 8 + length]
        assert plain.qsize() == 1
        with pytest.raises(xchannels.ChannelError, match="not unpickled"):
            plain.get_nowait()
        assert isinstance(ch.get_nowait(), time.struct_time)  # opted in: decodes
    finally:
        seg.close()
        seg2.close()


# ---- untrusted shared memory ------------------------------------------------


def test_a_corrupted_segment_raises_channel_error():
    ch = ProcessChannel(capacity=4096)
    ch.put("one")
    ch.put("two")
    seg = mmap.mmap(ch.fileno(), 4096 + 4096)
    try:
        # The ring's first record header: a length far past what is queued.
        seg[4096:4100] = struct.pack("<I", 10**6)
        with pytest.raises(xchannels.ChannelError, match="corrupted"):
            ch.get()
        # A record whose bytes are not a valid flat item.
        ch2 = ProcessChannel(capacity=4096)
        ch2.put("abc")
        seg2 = mmap.mmap(ch2.fileno(), 8192)
        seg2[4096 + 8] = 0xEE  # the kind byte
        with pytest.raises(xchannels.ChannelError, match="malformed"):
            ch2.get()
        seg2.close()
    finally:
        seg.close()
    ch.close()  # closing a corrupted channel still works


# ---- sub-interpreters ---------------------------------------------------------


def test_a_sub_interpreter_attaches_by_descriptor(sub):
    ch = ProcessChannel()
    sub.run(
        """
        import xchannels
        ch = xchannels.ProcessChannel._from_fd(fd)
        ch.put(("from a sub-interpreter", [1, 2]))
        """,
        fd=ch.fileno(),
    )
    assert ch.get(timeout=10) == ("from a sub-interpreter", [1, 2])


def test_blocking_between_interpreters_and_threads(sub):
    ch, back = ProcessChannel(4), ProcessChannel()
    t = threading.Thread(
        target=sub.run,
        args=("""
            import xchannels
            ch = xchannels.ProcessChannel._from_fd(fd)
            back = xchannels.ProcessChannel._from_fd(bfd)
            back.put(sum(ch))
            """,),
        kwargs={"fd": ch.fileno(), "bfd": back.fileno()},
    )
    t.start()
    for i in range(1000):
        ch.put(i)
    ch.close()
    assert back.get(timeout=30) == sum(range(1000))
    t.join(30)


def _stopped_holder(pc: ProcessChannel, watchdog: float = 8) -> subprocess.Popen[str]:
    """A process that takes pc's mutex and stops itself (SIGSTOP) holding
    it; a watchdog grandchild kills it after `watchdog` seconds should the
    test hang. The caller kills it; it is killed here if it does not get
    that far."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(
            """
            import ctypes, mmap, os, signal, sys, time
            m = mmap.mmap(int(sys.argv[1]), 4096)
            addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
            if ctypes.CDLL(None).pthread_mutex_lock(ctypes.c_void_p(addr + 32)) != 0:
                sys.exit(3)
            me = os.getpid()
            if os.fork() == 0:
                time.sleep(float(sys.argv[2]))
                if os.getppid() == me:
                    os.kill(me, signal.SIGKILL)
                os._exit(0)
            print("locked", flush=True)
            os.kill(me, signal.SIGSTOP)
            """), str(pc.fileno()), str(watchdog)],
        pass_fds=[pc.fileno()], stdout=subprocess.PIPE, text=True)
    def state() -> str:
        with open(f"/proc/{holder.pid}/stat") as f:
            return f.read().split()[2]

    try:
        assert holder.stdout is not None
        with holder.stdout:  # nothing more is read from it
            assert holder.stdout.readline() == "locked\n"
        deadline = time.monotonic() + 10
        while state() != "T":
            assert time.monotonic() < deadline, "the holder did not stop"
            time.sleep(0.01)
    except BaseException:
        holder.kill()
        holder.wait()
        raise
    return holder


def test_a_stopped_process_holding_the_mutex_does_not_freeze_the_interpreter():
    """A process stopped (SIGSTOP, a debugger) while it holds the segment's
    mutex: a get_nowait() here waits for the mutex without the GIL, so the
    interpreter's other threads run on; it takes the item once the holder
    dies (robust mutex). Before, it waited with the GIL held and every
    thread of the interpreter froze until a watchdog killed the holder (4 s
    later): the ticker thread's longest gap shows it."""
    pc = ProcessChannel()
    pc.put("queued")
    holder = _stopped_holder(pc, watchdog=4)
    stamps: list[float] = []
    stop = False
    result: list[object] = []

    def ticker() -> None:
        while not stop:
            stamps.append(time.monotonic())
            time.sleep(0.002)

    t = threading.Thread(target=ticker)
    g = threading.Thread(target=lambda: result.append(pc.get_nowait()))
    try:
        t.start()
        g.start()
        time.sleep(0.6)
        waited = g.is_alive() and result == []
        holder.kill()  # dies holding the mutex: the next locker repairs and goes on
        g.join(10)
    finally:
        stop = True
        holder.kill()
        holder.wait()
        if t.ident is not None:
            t.join()
        if g.ident is not None:
            g.join(10)
    gap = max(b - a for a, b in zip(stamps, stamps[1:]))
    assert gap < 1.0, f"the interpreter froze for {gap:.1f} s while get_nowait() waited for the mutex"
    assert waited, "get_nowait() returned while a stopped process held the mutex"
    assert result == ["queued"]
    pc.put("after")
    assert pc.get_nowait() == "after"


class _Poked(Exception):
    pass


def _poke(signum: int, frame: object) -> None:
    raise _Poked


def test_calls_with_a_timeout_or_a_signal_leave_a_stopped_mutex_holder() -> None:
    """put/get with a timeout give up on a stopped holder of the mutex 250
    ms past their timeout with Full/Empty, and a blocking get answers a
    signal; they used to wait as long as the holder stayed stopped (here:
    until its watchdog killed it, 8 s later)."""
    pc = ProcessChannel(maxsize=4)
    holder = _stopped_holder(pc)
    old = signal.signal(signal.SIGUSR1, _poke)
    try:
        t0 = time.monotonic()
        with pytest.raises(queue.Full):
            pc.put("x", timeout=0.05)
        assert 0.3 <= time.monotonic() - t0 < 6
        t0 = time.monotonic()
        with pytest.raises(queue.Empty):
            pc.get(timeout=0.4)
        assert 0.65 <= time.monotonic() - t0 < 6
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
        t0 = time.monotonic()
        with pytest.raises(_Poked):
            timer.start()
            pc.get()
        assert time.monotonic() - t0 < 6
        timer.join()
    finally:
        signal.signal(signal.SIGUSR1, old)
        holder.kill()
        holder.wait()
    # The holder died holding the mutex: the next caller repairs it.
    pc.put("after", timeout=5)
    assert pc.get(timeout=5) == "after"
