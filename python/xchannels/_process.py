"""Pickling support for ``xchannels.ProcessChannel``.

A ProcessChannel is a shared-memory segment (a memfd) and a file descriptor
for it; pickled, it names that descriptor, and unpickling attaches a new
handle to the same segment:

- while multiprocessing starts a child (``Process(args=...)`` under spawn or
  forkserver), the descriptor is duplicated and handed to the child with the
  process itself (``multiprocessing.reduction.DupFd``); under fork the child
  inherits the handle and nothing is pickled;
- at any other time (a ``Pool`` task, a ``multiprocessing.Queue`` item,
  ``pickle.dumps``), the pickle holds the process id and the descriptor's
  number: the same process (any of its interpreters) duplicates it, another
  process of the same user opens ``/proc/PID/fd/N``. The pickling process
  must still hold its handle when the other side unpickles.

Each segment carries a random id, checked after attaching, so a descriptor
number that meanwhile names another file is refused. There is no name in
the file system: nothing is left in ``/dev/shm``, and the segment goes away
with the last descriptor or mapping.
"""

from __future__ import annotations

import os
from typing import Any

from xchannels._xchannels import ChannelError, ProcessChannel


def _reduce(ch: ProcessChannel) -> tuple[Any, tuple[Any, ...]]:
    from multiprocessing import context

    if context.get_spawning_popen() is not None:
        from multiprocessing import reduction

        return _rebuild_inherited, (reduction.DupFd(ch.fileno()), ch._segment_id)
    return _rebuild, (os.getpid(), ch.fileno(), ch._segment_id)


def _checked(ch: ProcessChannel, segment_id: int, where: str) -> ProcessChannel:
    if ch._segment_id != segment_id:
        raise ChannelError(
            f"cannot unpickle the ProcessChannel: {where} is now another "
            "channel's segment (the pickling process closed its handle; keep "
            "it open until the receiver has unpickled it)"
        )
    return ch


def _rebuild_inherited(dupfd: Any, segment_id: int) -> ProcessChannel:
    fd = dupfd.detach()
    try:
        return _checked(ProcessChannel._from_fd(fd), segment_id, f"descriptor {fd}")
    finally:
        os.close(fd)


def _rebuild(pid: int, fd: int, segment_id: int) -> ProcessChannel:
    where = f"descriptor {fd} of process {pid}"
    if pid == os.getpid():
        try:
            ch = ProcessChannel._from_fd(fd)
        except (OSError, ValueError) as e:
            raise ChannelError(
                f"cannot unpickle the ProcessChannel: {where} is closed or is no "
                "longer its segment (keep a handle open until the receiver has "
                f"unpickled it): {e}"
            ) from None
        return _checked(ch, segment_id, where)
    try:
        own = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        raise ChannelError(
            f"cannot unpickle the ProcessChannel: {where} cannot be opened "
            f"({e.strerror}); the pickling process must be alive, of the same "
            "user, and still hold its handle"
        ) from None
    try:
        return _checked(ProcessChannel._from_fd(own), segment_id, where)
    except ValueError as e:
        raise ChannelError(f"cannot unpickle the ProcessChannel: {where}: {e}") from None
    finally:
        os.close(own)


# ---- asyncio -------------------------------------------------------------------
#
# A coroutine that must wait reads the channel's data (or space) word, tries
# the non-blocking operation, and, if it would block, has a helper thread
# sleep on the segment until the word moves (``_wait_seq``: a futex wait
# registered like a blocked get's, so the put that makes progress wakes it).
# The thread then resolves a future in the loop and the coroutine tries
# again. Reading the word before trying is what makes a put that lands in
# between wake it. A cancelled coroutine nudges the channel (every waiter
# wakes and re-checks), so its thread returns at once; it never takes an
# item. Unlike a Channel's asyncio waiter, a waiting coroutine here holds a
# thread while it sleeps: the wake-up comes from another process, through a
# futex in shared memory, which an event loop cannot watch.


async def get_async(ch: ProcessChannel, timeout: float | None = None) -> Any:
    """get_async(timeout=None): see ProcessChannel.get_async."""
    from xchannels._xchannels import ChannelEmpty

    return await _async_op(ch, True, timeout, ch.get_nowait, ChannelEmpty, "get_async")


async def put_async(ch: ProcessChannel, item: Any, timeout: float | None = None) -> None:
    """put_async(item, timeout=None): see ProcessChannel.put_async."""
    from xchannels._xchannels import ChannelFull

    def attempt() -> None:
        ch.put_nowait(item)

    await _async_op(ch, False, timeout, attempt, ChannelFull, "put_async")


async def _async_op(
    ch: ProcessChannel,
    data: bool,
    timeout: float | None,
    attempt: Any,
    would_block: type[BaseException],
    what: str,
) -> Any:
    import asyncio

    from xchannels._xchannels import _aio_timeout

    loop = asyncio.get_running_loop()
    delay = _aio_timeout(timeout)
    deadline = None if delay is None else loop.time() + delay
    while True:
        seq = ch._seq(data)
        try:
            return attempt()
        except would_block:
            pass
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            raise would_block(f"{what}: channel is {'empty' if data else 'full'}")
        await _sleep_on(loop, ch, data, seq, remaining)


async def _sleep_on(loop: Any, ch: ProcessChannel, data: bool, seq: int, remaining: float | None) -> None:
    import asyncio
    import threading

    fut = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    def watch() -> None:
        try:
            ch._wait_seq(data, seq, remaining)
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
    try:
        await fut
    except asyncio.CancelledError:
        ch._nudge()  # the watcher returns at once; others re-check and sleep again
        raise
