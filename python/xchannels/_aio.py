"""xchannels._aio: asyncio support: ``Channel.get_async``, ``put_async``,
``join_async``, ``async for item in ch`` and :func:`select_async`.

A waiting coroutine costs no thread. Each (interpreter, event loop) pair has
one hub: an eventfd registered with ``loop.add_reader`` and a ready list in
C++ (``_AioHub``). A waiting coroutine arms an ``_AioWaiter``: one node in
each channel's wait list, notified by senders (from any thread or
interpreter) through the hub instead of a futex wake. The loop's reader
callback then resolves the coroutine's future, and the coroutine retries
its non-blocking operation, re-arming if another consumer was faster. All
Python work happens in the loop's thread.

Cancellation: the ``finally`` of :func:`_wait` disarms the waiter (nothing
stays registered) and, if a sender had already notified it, passes the
notification on to another waiter; a cancelled waiter never takes an item.

The hub's eventfd exists only while some coroutine of that loop waits: it is
closed (and removed from the loop) one loop iteration after the last waiter
leaves, or at once if the loop is already closed, so neither many loops nor
``asyncio.run`` cycles leak descriptors.

ProcessChannel (``process_get_async``, ``process_put_async``) waits through
the same :func:`_wait`, with another park: its wake-up comes from another
process, through a futex in shared memory, which an event loop cannot
watch, so a waiting coroutine has a helper thread sleep on the segment
(``_ProcessWaiter``) and costs a thread while it waits.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Iterable
from typing import Any

from xchannels._xchannels import (
    _AIO_GET,
    _AIO_JOIN,
    _AIO_PUT,
    _AIO_SELECT,
    Channel,
    ChannelClosed,
    ChannelEmpty,
    ChannelFull,
    ProcessChannel,
    _aio_timeout,
    _AioHub,
    _AioWaiter,
)

__all__ = ["select_async"]

# What _AioWaiter.try_op() returns when it would have to wait: no channel
# can carry NotImplemented, so it never stands for a received value.
_WAIT = NotImplemented


class _Hub:
    """One event loop's wake-up channel, in one interpreter."""

    __slots__ = ("__weakref__", "core", "_fd", "_users", "_idle_pending")

    def __init__(self) -> None:
        self.core = _AioHub()
        self._fd = -1
        self._users = 0
        self._idle_pending = False

    def acquire(self, loop: asyncio.AbstractEventLoop) -> None:
        """A coroutine starts waiting: make sure the loop watches the fd."""
        if self._fd < 0:
            fd = self.core.open()
            try:
                loop.add_reader(fd, self._on_readable)
            except BaseException:
                self.core.close()
                raise
            self._fd = fd
        self._users += 1

    def release(self, loop: asyncio.AbstractEventLoop) -> None:
        """A coroutine stops waiting; close the fd once nobody waits."""
        self._users -= 1
        if self._users > 0 or self._idle_pending:
            return
        if loop.is_closed():
            self._shutdown(loop)
            return
        # Not at once: a consumer that loops (async for) is about to wait
        # again, and would reopen the eventfd every time.
        self._idle_pending = True
        try:
            loop.call_soon(self._idle_check, loop)
        except RuntimeError:  # closed meanwhile, or a foreign thread
            self._idle_pending = False
            self._shutdown(loop)

    def _idle_check(self, loop: asyncio.AbstractEventLoop) -> None:
        self._idle_pending = False
        if self._users == 0:
            self._shutdown(loop)

    def _shutdown(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._fd < 0:
            return
        if not loop.is_closed():
            loop.remove_reader(self._fd)
        self.core.close()
        self._fd = -1

    def _on_readable(self) -> None:
        for wake in self.core.drain():
            wake()


# Per interpreter (this module is), per loop; a loop that goes away takes its
# hub with it.
_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hub] = weakref.WeakKeyDictionary()


def _hub(loop: asyncio.AbstractEventLoop) -> _Hub:
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = _Hub()
    return hub


async def _wait(waiter: Any, delay: float | None, on_hub: bool = True) -> Any:
    """The core's wait protocol (detail/waiter.h) with the event loop as the
    park: arm (register, barrier), try_op (re-probe), sleep until notified;
    repeat until waiter.try_op() gives a result, raises, or the delay passes
    (then raise what the blocking call raises on timeout). ``on_hub``: the
    waiter is notified through the loop's hub (a Channel's); a
    ``_ProcessWaiter`` wakes the loop itself."""
    if delay == 0:
        raise waiter.timeout_error()
    loop = asyncio.get_running_loop()
    hub = _hub(loop) if on_hub else None
    fut: asyncio.Future[None] | None = None
    timed_out = False

    def wake() -> None:
        if fut is not None and not fut.done():
            fut.set_result(None)

    def expire() -> None:
        nonlocal timed_out
        timed_out = True
        wake()

    if hub is not None:
        hub.acquire(loop)
    timer = None
    try:
        if delay is not None:
            timer = loop.call_later(delay, expire)
        while True:
            fut = loop.create_future()
            waiter.arm(hub.core if hub is not None else loop, wake)
            result = waiter.try_op()  # the re-check after registering
            if result is not _WAIT:
                return result
            if timed_out:
                raise waiter.timeout_error()
            await fut
            # Notified (or timed out): unlink and go round; the retry uses
            # the notification, so nothing is passed on here.
            waiter.disarm()
            if timed_out and hub is None:
                # A thread-parked waiter: one last probe, not re-armed (which
                # would start a thread only to stop it); we leave either way.
                result = waiter.try_op()
                if result is not _WAIT:
                    return result
                raise waiter.timeout_error()
    finally:
        # Leaving for good (result, error, timeout or cancellation): unlink,
        # and hand on a notification this call will not use.
        waiter.disarm()
        waiter.pass_on()
        if timer is not None:
            timer.cancel()
        if hub is not None:
            hub.release(loop)


async def get_async(ch: Channel, timeout: float | None = None) -> Any:
    """get_async(ch, timeout=None): see Channel.get_async."""
    delay = _aio_timeout(timeout)
    waiter = _AioWaiter(_AIO_GET, (ch,))
    result = waiter.try_op()  # fast path: no registration, no yield
    if result is not _WAIT:
        return result
    return await _wait(waiter, delay)


async def put_async(ch: Channel, item: Any, timeout: float | None = None) -> None:
    """put_async(ch, item, timeout=None): see Channel.put_async."""
    delay = _aio_timeout(timeout)
    waiter = _AioWaiter(_AIO_PUT, (ch,), item)  # type check and encode: may raise
    if waiter.try_op() is not _WAIT:
        return
    await _wait(waiter, delay)


async def join_async(ch: Channel, timeout: float | None = None) -> None:
    """join_async(ch, timeout=None): see Channel.join_async."""
    delay = _aio_timeout(timeout)
    waiter = _AioWaiter(_AIO_JOIN, (ch,))
    if waiter.try_op() is not _WAIT:
        return
    await _wait(waiter, delay)


async def _anext(ch: Channel) -> Any:
    """Channel.__anext__: get_async() until closed and drained."""
    waiter = _AioWaiter(_AIO_GET, (ch,))
    try:
        result = waiter.try_op()
        if result is _WAIT:
            result = await _wait(waiter, None)
    except ChannelClosed:
        raise StopAsyncIteration from None
    return result


async def select_async(channels: Iterable[Channel], timeout: float | None = None) -> tuple[Channel, Any]:
    """select_async(channels, timeout=None) -> (channel, item)

    Coroutine: wait, without blocking the event loop, until one of the
    channels has an item, and take it. As :func:`xchannels.select`: fair;
    closed channels are skipped while others are open; raises
    ``ChannelClosed`` when all are closed and drained, ``ChannelEmpty`` when
    the timeout passes, ``ValueError`` for no channels and ``TypeError`` for
    something that is not a Channel. Cancelling it consumes nothing.
    """
    delay = _aio_timeout(timeout)
    waiter = _AioWaiter(_AIO_SELECT, channels)
    result = waiter.try_op()
    if result is not _WAIT:
        return result  # type: ignore[no-any-return]
    return await _wait(waiter, delay)  # type: ignore[no-any-return]


# ---- ProcessChannel -------------------------------------------------------------------


class _ProcessWaiter:
    """A ProcessChannel operation in :func:`_wait`. ``arm`` reads the
    channel's data (or space) word and has a thread sleep on the segment
    until the word moves (``_wait_seq``: a futex wait registered like a
    blocked get's, so the put that makes progress wakes it), then wake the
    loop; reading the word before the re-probe is what makes a put that
    lands in between wake it. ``disarm`` nudges the channel if the thread
    still sleeps (every waiter wakes and re-checks), so it returns at once;
    a waiter that leaves never takes an item."""

    __slots__ = ("ch", "data", "attempt", "what", "_thread")

    def __init__(self, ch: ProcessChannel, data: bool, attempt: Any, what: str) -> None:
        self.ch, self.data, self.attempt, self.what = ch, data, attempt, what
        self._thread: threading.Thread | None = None

    def try_op(self) -> Any:
        try:
            return self.attempt()
        except (ChannelEmpty if self.data else ChannelFull):
            return _WAIT

    def timeout_error(self) -> BaseException:
        kind = ChannelEmpty if self.data else ChannelFull
        return kind(f"{self.what}: channel is {'empty' if self.data else 'full'}")

    def arm(self, loop: asyncio.AbstractEventLoop, wake: Any) -> None:
        ch, data, seq = self.ch, self.data, self.ch._seq(self.data)

        def watch() -> None:
            try:
                ch._wait_seq(data, seq, None)
            except BaseException:  # noqa: BLE001 - the coroutine's retry raises it
                pass
            finally:
                try:
                    loop.call_soon_threadsafe(wake)
                except RuntimeError:
                    # The loop is closed: nobody will retry. If a put's single
                    # wake-up came here, hand it on to the other waiters.
                    ch._nudge()

        thread = threading.Thread(target=watch, name="xchannels-process-aio", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # an isolated sub-interpreter refuses daemon threads
            thread = threading.Thread(target=watch, name="xchannels-process-aio")
            thread.start()
        self._thread = thread

    def disarm(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self.ch._nudge()  # it returns at once; the others re-check and sleep again

    def pass_on(self) -> None:
        """Nothing to hand on: a nudge in disarm already woke the others."""


async def process_get_async(ch: ProcessChannel, timeout: float | None = None) -> Any:
    """ProcessChannel.get_async(timeout=None): see its docstring."""
    delay = _aio_timeout(timeout)
    waiter = _ProcessWaiter(ch, True, ch.get_nowait, "get_async")
    result = waiter.try_op()  # fast path: no thread, no yield
    if result is not _WAIT:
        return result
    return await _wait(waiter, delay, on_hub=False)


async def process_put_async(ch: ProcessChannel, item: Any, timeout: float | None = None) -> None:
    """ProcessChannel.put_async(item, timeout=None): see its docstring."""
    delay = _aio_timeout(timeout)

    def attempt() -> None:
        ch.put_nowait(item)

    waiter = _ProcessWaiter(ch, False, attempt, "put_async")
    if waiter.try_op() is not _WAIT:
        return
    await _wait(waiter, delay, on_hub=False)
