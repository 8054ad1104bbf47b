"""python/xchannels/_interp.py: own-GIL sub-interpreters through the stdlib's
private modules, with the CPython 3.12 / 3.13 differences hidden here.

| CPython | module                | create                   | run                                    |
| ------- | --------------------- | ------------------------ | -------------------------------------- |
| 3.12    | ``_xxsubinterpreters`` | ``create(isolated=True)`` | ``run_string`` raises ``RunFailedError`` (message only) |
| 3.13    | ``_interpreters``      | ``create('isolated')``    | ``exec`` returns ``None`` or an error snapshot |

Invariants the callers rely on:

- :func:`create` returns an opaque handle that the caller keeps until
  :func:`destroy` (on 3.12 dropping it destroys the interpreter).
- :func:`create`, :func:`run` and :func:`destroy` for one interpreter are
  called on the same Python thread (3.12 requires it for ``destroy``; doing it
  everywhere keeps one rule).
- :func:`run` never raises for an error inside the interpreter: it returns the
  remote traceback text (the code is wrapped so that 3.12, whose
  ``RunFailedError`` carries only a message, reports the whole traceback).
- An interpreter is never destroyed while a thread runs in it, and no thread
  may still run in one at process exit: 3.12 aborts with ``Fatal Python
  error: PyInterpreterState_Delete: remaining subinterpreters``. Threads that
  host interpreters are therefore non-daemon threads.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable

from xchannels import _profilers

__all__ = ["HostThread", "create", "destroy", "list_all", "run"]

if sys.version_info >= (3, 13):
    import _interpreters as _mod

    _datetime_primed = False

    def _prime_datetime() -> None:
        # CPython 3.13 (before the fix of gh-136421/gh-136423) initializes and
        # finalizes _datetime's static types in whichever interpreter imports
        # it: two sub-interpreters whose lives overlap, both importing
        # datetime (email.utils, http, Hypercorn...), corrupt the heap when
        # the second is destroyed ("double free or corruption"). Importing it
        # once in the main interpreter first makes the main interpreter their
        # owner, as CPython's fix does at start-up. About 1 ms, once.
        # The flag is set only once the import is done: the import lets
        # other threads run, and one that saw the flag set early could
        # create an interpreter before the main interpreter owns the types.
        global _datetime_primed
        if _mod.get_current()[0] == _mod.get_main()[0]:
            try:
                import _datetime  # type: ignore[import-not-found]  # noqa: F401
            except ImportError:
                pass
        _datetime_primed = True

    def create() -> Any:
        """create() -> handle

        Create an own-GIL ('isolated') sub-interpreter and return its
        handle (an int on 3.13).
        """
        if not _datetime_primed:
            _prime_datetime()
        with _profilers.creating():
            return _mod.create("isolated")

    def _exec(iid: Any, code: str) -> str | None:
        err = _mod.exec(iid, code)
        if err is None:
            return None
        return err.formatted or f"{err.type.__name__}: {err.msg}"

else:  # 3.12
    import _xxsubinterpreters as _mod  # type: ignore[import-not-found]  # no typeshed stub

    def create() -> Any:
        """create() -> handle

        Create an own-GIL (``isolated=True``) sub-interpreter and return its
        handle. On 3.12 the handle is an ``InterpreterID`` object that owns a
        reference to the interpreter: when the last one is dropped, the
        interpreter is destroyed, so keep the handle (never just ``int()``).
        """
        with _profilers.creating():
            return _mod.create(isolated=True)

    def _exec(iid: Any, code: str) -> str | None:
        try:
            _mod.run_string(iid, code)
        except _mod.RunFailedError as e:
            return str(e)
        return None


# The wrapper turns any exception into one whose message is the full
# traceback, so both versions report the same text. It runs the code with
# exec() of the string, not compile(): the first compile() in a fresh
# interpreter builds the ast module's types (about 1 ms, a tenth of a pool
# worker's start-up). exec() names the code "<string>"; the traceback text
# gets the caller's filename back, without the wrapper's own frame.
_WRAPPER = """\
try:
    exec({code!r}, globals())
except BaseException as _xc_e:
    import traceback as _xc_tb
    _xc_text = "".join(_xc_tb.format_exception(type(_xc_e), _xc_e, _xc_e.__traceback__.tb_next))
    del _xc_e
    raise RuntimeError("\\n" + _xc_text.replace('File "<string>"', {file_ref!r})) from None
"""


def run(iid: Any, code: str, filename: str = "<xchannels>") -> str | None:
    """run(iid, code, filename='<xchannels>') -> str | None

    Execute ``code`` in the ``__main__`` module of interpreter ``iid`` on the
    calling thread, blocking until it finishes.

    Returns
    -------
    str or None
        None on success, else the remote traceback text.
    """
    text = _exec(iid, _WRAPPER.format(code=code, file_ref=f'File "{filename}"'))
    if text is None:
        return None
    # Strip the wrapper's "RuntimeError:" prefix: 3.13 formats it as
    # "RuntimeError: \n...", 3.12 as "<class 'RuntimeError'>: \n...".
    for marker in ("<class 'RuntimeError'>: \n", "RuntimeError: \n"):
        at = text.find(marker)
        if at >= 0:
            return text[at + len(marker) :].rstrip("\n") + "\n"
    return text


def destroy(iid: Any) -> None:
    """destroy(iid) -> None

    Destroy interpreter ``iid``. Call it on the thread that created it, once
    no thread runs in it.
    """
    _mod.destroy(iid)


def list_all() -> list[Any]:
    """list_all() -> list

    The ids of every interpreter of the process (the main one included)."""
    return [i[0] if isinstance(i, tuple) else i for i in _mod.list_all()]


def destroy_quietly(iid: Any) -> None:
    """Destroy an interpreter on the way out, ignoring failures: it may be
    gone already, and the caller is reporting a more useful error."""
    try:
        destroy(iid)
    except BaseException:
        pass


class HostThread(threading.Thread):
    """HostThread(target, name, args=())

    The non-daemon thread that hosts one interpreter (a pool worker, a
    :class:`xchannels.Worker`, the pool's collector). It blocks SIGINT and
    SIGTERM (see :func:`without_signals`), and its :meth:`join` may be
    interrupted by Ctrl-C on every Python.

    CPython 3.12's ``Thread.join`` is not safe to interrupt: when Ctrl-C
    lands while it waits on the thread's state lock, its cleanup sees the
    lock held (by the running thread), releases it and marks the thread
    stopped. ``is_alive()`` then says False while the thread still runs an
    interpreter, a second ``join()`` returns at once, and the interpreter's
    shutdown no longer waits for the thread, so the process aborts with
    ``Fatal Python error: PyInterpreterState_Delete: remaining
    subinterpreters``. Here :meth:`join` waits on an event that the thread
    sets as its very last step (after its interpreter is destroyed) and only
    then calls ``Thread.join``, which returns at once.
    """

    def __init__(self, target: Callable[..., Any], name: str, args: tuple[Any, ...] = ()) -> None:
        super().__init__(target=without_signals(target), name=name, args=args)
        self._finished = threading.Event()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._finished.set()

    def join(self, timeout: float | None = None) -> None:
        if self._finished.wait(timeout):
            super().join()

    def is_alive(self) -> bool:
        return super().is_alive() and not self._finished.is_set()


def without_signals(fn: Any) -> Any:
    """Wrap a thread target so the thread blocks SIGINT and SIGTERM.

    A process-directed signal goes to any thread that does not block it.
    If it lands on a pool thread, CPython only sets a flag, and the main
    thread, parked in a channel wait, would not see Ctrl-C until the wait
    ends. With the pool's threads blocking them, the kernel delivers these
    signals to the main thread, whose wait returns at once.
    """

    def run(*args: Any, **kwargs: Any) -> Any:
        import signal

        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        except (AttributeError, OSError, ValueError):  # not on this platform
            pass
        return fn(*args, **kwargs)

    return run
