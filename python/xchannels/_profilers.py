"""python/xchannels/_profilers.py: what CPython's process-wide profiling and
debugging tools may do while worker interpreters run, decided per Python
version.

The frame walkers, ``sys._current_frames()`` and ``sys._current_exceptions()``,
are made safe in C at import (``bindings/profilers.cpp``:
``xchannels._xchannels._frames_guard`` says whether this Python needed it).
Here: tracemalloc, which cannot trace while own-GIL sub-interpreters exist
before CPython 3.15.0rc2 (cpython gh-155725). Its traces keep references
to the file name strings of whichever interpreter allocated, so a worker's
strings are read after the worker is gone and released by the wrong
interpreter: heap corruption on 3.12, a use-after-free on 3.14 (its
Py_DEBUG build aborts in take_snapshot()) and the same references on 3.13
(gh-134604, gh-144172); and on
3.13 and 3.14 creating an interpreter while tracing deadlocks (the new
interpreter's first allocations, made under the runtime's thread-list
lock, wait for the main interpreter's GIL while a thread holding it waits
for that lock) or crashes. On those Pythons, :func:`creating` refuses to
create an interpreter while tracemalloc traces, and from the first
interpreter on, ``tracemalloc.start()`` refuses while any sub-interpreter
exists or is being created.

The other walkers were tried while worker interpreters run, on every tested
Python (tests/python/test_profilers.py): ``threading.enumerate()``,
``gc.get_objects()``, ``sys.setprofile``/``threading.setprofile_all_threads``,
their ``settrace`` twins and ``sys.monitoring`` see the calling interpreter
only.
``faulthandler`` does not load in a sub-interpreter; in the main one it
dumps the main interpreter's threads, as best effort as ever (see
docs/limitations.md).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

__all__ = ["creating", "tracemalloc_unsafe"]

# The first release of each minor version on which tracemalloc may trace
# while own-GIL sub-interpreters exist (None: no fixed release known).
# Minor versions after the table branched after the fix.
_TRACEMALLOC_SAFE_FROM: dict[tuple[int, int], tuple[int, int, int, str, int] | None] = {
    (3, 12): None,  # security fixes only
    (3, 13): None,
    (3, 14): None,  # 3.14.10 still deadlocks
    (3, 15): (3, 15, 0, "candidate", 2),
}


def tracemalloc_unsafe(version: tuple[int, int, int, str, int] | None = None) -> bool:
    """tracemalloc_unsafe(version=sys.version_info) -> bool

    Whether tracemalloc, tracing, breaks own-GIL sub-interpreters on this
    Python (and their creation breaks it)."""
    v = tuple(sys.version_info) if version is None else version
    minor = (int(v[0]), int(v[1]))
    if minor not in _TRACEMALLOC_SAFE_FROM:
        return False
    first = _TRACEMALLOC_SAFE_FROM[minor]
    return first is None or v < first


_TRACEMALLOC_UNSAFE = tracemalloc_unsafe()
_WHY = (
    f"on CPython {sys.version_info[0]}.{sys.version_info[1]}, tracemalloc and "
    "sub-interpreters corrupt the heap or deadlock (cpython gh-134604, "
    "gh-144172; fixed in 3.15 by gh-155725)"
)

# Interpreters being created now (guarded by _lock). The lock is held only
# to count and by tracemalloc.start() itself (microseconds): creations run
# in parallel. Either a creation is counted before start() looks, and
# start() refuses, or start() has finished, and the creation sees tracing.
_lock = threading.Lock()
_creating = 0


class creating:
    """with creating(): create an interpreter

    Raises RuntimeError instead of creating an interpreter while tracemalloc
    traces, on a Python where the two do not mix, and from then on makes
    ``tracemalloc.start()`` refuse while sub-interpreters exist."""

    __slots__ = ("_counted",)

    def __enter__(self) -> None:
        global _creating
        self._counted = False
        if not _TRACEMALLOC_UNSAFE:
            return
        try:
            import _tracemalloc
        except ImportError:  # not loadable in this sub-interpreter: it cannot trace here
            return
        with _lock:
            _creating += 1
        self._counted = True
        if _tracemalloc.is_tracing():
            self.__exit__()
            raise RuntimeError(
                f"xchannels cannot start an interpreter while tracemalloc is tracing: {_WHY}. "
                "Call tracemalloc.stop() first, or run without -X tracemalloc / PYTHONTRACEMALLOC."
            )
        _guard_start(_tracemalloc)

    def __exit__(self, *exc_info: object) -> None:
        global _creating
        if self._counted:
            self._counted = False
            with _lock:
                _creating -= 1


def _guard_start(module: Any) -> None:
    # Puts a tracemalloc.start() that refuses while sub-interpreters exist in
    # _tracemalloc (what `import tracemalloc` copies) and in tracemalloc if
    # it is imported already. Once per interpreter.
    stock = module.start
    if getattr(stock, "__module__", None) == __name__:
        return

    def start(nframe: int = 1, /) -> None:
        from xchannels import _interp

        with _lock:
            if _creating or len(_interp.list_all()) > 1:
                raise RuntimeError(
                    f"tracemalloc cannot start while sub-interpreters exist: {_WHY}. "
                    "Close the xchannels pools and workers first (xchannels.reusable_pool() "
                    "lives until the process exits)."
                )
            stock(nframe)

    start.__doc__ = stock.__doc__
    setattr(module, "start", start)
    tracemalloc = sys.modules.get("tracemalloc")
    if tracemalloc is not None and getattr(tracemalloc, "start", None) is stock:
        setattr(tracemalloc, "start", start)
