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

And the exit hook for large values: a value sent out of line (or a memfd
SharedBuffer) lives in a memfd that the sending process holds until a
receiver has taken it (a handle dropped meanwhile is kept alive until
then, by the core). A handle that sent one joins ``_sent``; at exit
(``atexit``, and multiprocessing's own exit in a child process, which skips
``atexit``) this process waits until they are taken, as
``multiprocessing.Queue`` flushes its buffer at exit; after a few seconds
it says on stderr what it waits for, and Ctrl-C ends the wait (the values
are then lost). A forked child forgets the parent's: they are the
parent's to wait for.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
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


_sent: weakref.WeakSet[ProcessChannel] = weakref.WeakSet()
_lock = threading.Lock()
_hooked = False


# Seconds the exit wait stays silent: a consumer about to take the value
# is the common case; a process that waits longer says why, and how to leave.
_EXIT_PATIENCE = 3.0


def _all_taken(timeout: float | None) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout

    def left() -> float | None:
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    for ch in list(_sent):
        if not ch._wait_sent(left()):
            return False
    return bool(ProcessChannel._wait_kept(left()))  # handles dropped with values in flight


def _wait_sent() -> None:
    try:
        if _all_taken(_EXIT_PATIENCE):
            return
        print(
            f"xchannels: process {os.getpid()} waits at exit until a receiver takes the large "
            "values it sent through a ProcessChannel (Ctrl-C exits now, and they are lost)",
            file=sys.stderr,
            flush=True,
        )
        _all_taken(None)
    except KeyboardInterrupt:
        print(
            f"xchannels: process {os.getpid()} exits without waiting: the large values it sent "
            "and no receiver took are lost",
            file=sys.stderr,
            flush=True,
        )


def _forget_sent_after_fork() -> None:
    global _hooked
    for ch in list(_sent):
        ch._forget_sent()
    _sent.clear()
    _hooked = False


def _sent_out_of_line(ch: ProcessChannel) -> None:
    """Called once per handle by its first put of a large value."""
    global _hooked
    with _lock:
        _sent.add(ch)
        if _hooked:
            return
        _hooked = True
        # A multiprocessing child leaves through os._exit after running its
        # finalizers, not atexit (the Queue's feeder joins there too); any
        # other process through atexit. Once, either way: a second wait,
        # after Ctrl-C ended the first, could only hang.
        mp = sys.modules.get("multiprocessing")
        if mp is not None and mp.parent_process() is not None:
            sys.modules["multiprocessing.util"].Finalize(None, _wait_sent, exitpriority=-5)
        else:
            atexit.register(_wait_sent)


os.register_at_fork(after_in_child=_forget_sent_after_fork)
