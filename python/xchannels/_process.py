"""Pickling support for ``xchannels.ProcessChannel``.

A ProcessChannel is a shared-memory segment (a memfd) and a file descriptor
for it. Pickled, it becomes a duplicate of that descriptor, passed with
multiprocessing's own machinery (``multiprocessing.reduction.DupFd``):

- while a child process is being started (``Process(args=...)`` with the
  spawn or forkserver start method), the descriptor is handed to the child
  with the process itself;
- at any other time (a ``Pool`` task, a ``multiprocessing.Queue`` item,
  ``pickle.dumps``), multiprocessing's resource sharer serves it once over a
  Unix socket, to a process of the same user that unpickles it.

Unpickling attaches a new handle to the same segment. There is no name in
the file system: nothing is left in ``/dev/shm``, and the segment goes away
with the last descriptor or mapping.
"""

from __future__ import annotations

import os
from typing import Any

from xchannels._xchannels import ProcessChannel


def _reduce(ch: ProcessChannel) -> tuple[Any, tuple[Any, ...]]:
    from multiprocessing import reduction

    return _rebuild, (reduction.DupFd(ch.fileno()),)


def _rebuild(dupfd: Any) -> ProcessChannel:
    fd = dupfd.detach()
    try:
        return ProcessChannel._from_fd(fd)
    finally:
        os.close(fd)
