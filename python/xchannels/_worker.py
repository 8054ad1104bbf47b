"""python/xchannels/_worker.py: :class:`Worker`, one dedicated long-running
interpreter. What a call needs on the caller's side (function references,
the script, arguments, remote exceptions) is in ``_calls``, shared with the
Pool.

Invariants:

- A hosting thread creates, runs and destroys its interpreter itself (3.12
  requires destroy on the creating thread), and is a non-daemon thread (3.12
  aborts at exit if a sub-interpreter is still running).
- A Worker's future is completed exactly once, after its interpreter is
  destroyed, so ``join()`` returning means the interpreter is gone.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import Future
from typing import Any, Callable, Iterable, Literal, Mapping

from xchannels import _calls, _interp
from xchannels._protocol import worker_config
from xchannels._xchannels import Channel, ChannelEmpty, NotShareableError

__all__ = ["Worker"]


# No name is bound in the worker's __main__ (pickles of the caller's script
# look their names up there; see _bootstrap).
_WORKER_CODE = """\
__import__("sys").path[:] = {path!r}
__import__("xchannels._bootstrap", None, None, ["_"]).worker_main({config}, {result}, {main!r})
"""

_worker_ids = itertools.count(1)


class Worker:
    """Worker(target, args=(), kwargs=None, *, name=None, fallback=None)

    One dedicated own-GIL sub-interpreter on its own thread that runs
    ``target(*args, **kwargs)`` once, like :class:`threading.Thread` but in
    parallel with the caller. Meant for long-running services that loop on a
    channel passed as an argument.

    Parameters
    ----------
    target : callable
        A module-level function (or one of the ``__main__`` script), sent by
        reference and imported in the worker; see :class:`xchannels.Pool`.
    args : tuple
        Shareable positional arguments (channels, buffers, tuples, ...).
    kwargs : mapping, optional
        Shareable keyword arguments.
    name : str, optional
        Thread name; default ``xchannels-worker-N``.
    fallback : {None, 'pickle'}
        As for :class:`xchannels.Pool`: pickle the arguments and the result
        that do not travel natively.

    Raises
    ------
    TypeError
        ``target`` cannot travel by reference (lambda, closure, ...).
    NotShareableError
        An argument cannot travel; nothing is started.

    Notes
    -----
    The hosting thread is not a daemon: like a thread, a worker that never
    returns keeps the process alive at exit (close the channel it serves).
    Thread-safe: ``join``, ``is_alive`` and ``result`` may be called from any
    thread.
    """

    def __init__(
        self,
        target: Callable[..., Any],
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        fallback: Literal["pickle"] | None = None,
    ) -> None:
        module, qualname = _calls.function_reference(target)
        args = tuple(args)
        pairs = _calls.kwargs_pairs(kwargs)
        self._qualname = qualname
        self.name = name or f"xchannels-worker-{next(_worker_ids)}"
        if fallback not in (None, "pickle"):
            raise ValueError(f"fallback must be None or 'pickle', not {fallback!r}")
        self._config = Channel(fallback=fallback)
        self._result = Channel(fallback=fallback)
        path = _calls.main_path()
        try:
            self._config.put(worker_config(_calls.main_code(path), module, qualname, args, pairs))
        except NotShareableError as exc:
            raise _calls.explain_unshareable(exc, qualname, args, pairs, fallback) from None
        if fallback is not None:
            _calls.alias_main()
        self._code = _WORKER_CODE.format(
            path=_calls.sys_path(), config=self._config.id, result=self._result.id, main=path
        )
        self._future: Future[Any] = Future()
        self._thread: _interp.HostThread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """start() -> None

        Create the interpreter and start running the target in it. Returns
        at once. Raises RuntimeError if called more than once.
        """
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("a Worker can only be started once")
            self._thread = _interp.HostThread(self._host, name=self.name)
            self._thread.start()

    def _host(self) -> None:
        iid: Any = None
        text: str | None = None
        try:
            iid = _interp.create()
            text = _interp.run(iid, self._code, filename=f"<{self.name}>")
        except BaseException:
            import traceback

            text = traceback.format_exc()
        finally:
            if iid is not None:
                _interp.destroy_quietly(iid)
            try:
                got = self._result._get_batch(1, False)
            except ChannelEmpty:
                got = None
            if got is None:
                err = RuntimeError(
                    _calls.host_failure(text or "", f"worker {self.name}'s interpreter failed")
                )
                err.__cause__ = _calls.RemoteTraceback(text or "no traceback\n")
                self._future.set_exception(err)
            else:
                ((ok, payload),), failures = got
                if failures:  # the result cannot be unpickled here
                    what = f"the return value of {self._qualname}()"
                    self._future.set_exception(_calls.received_error(what, ok, payload, failures[0]))
                elif ok:
                    self._future.set_result(payload)
                else:
                    self._future.set_exception(_calls.decode_exception(payload))

    def join(self, timeout: float | None = None) -> None:
        """join(timeout=None) -> None

        Wait until the target has returned and the interpreter is destroyed,
        at most ``timeout`` seconds; check :meth:`is_alive` afterwards, as
        with :meth:`threading.Thread.join`. Raises RuntimeError if the worker
        was not started. Ctrl-C may interrupt it on every Python: the worker
        stays alive and joinable, and the process still waits for it at exit.
        """
        if self._thread is None:
            raise RuntimeError("cannot join a Worker before it is started")
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        """is_alive() -> bool

        True from :meth:`start` until the target has returned and the
        interpreter is destroyed.
        """
        return self._thread is not None and self._thread.is_alive()

    def result(self, timeout: float | None = None) -> Any:
        """result(timeout=None) -> Any

        Wait for the target like :meth:`join`, then return its return value
        or raise its exception, rebuilt like the pool's (type kept, remote
        traceback as ``__cause__``).

        Raises
        ------
        TimeoutError
            Still running after ``timeout`` seconds.
        RuntimeError
            Not started, or the interpreter itself failed.
        """
        if self._thread is None:
            raise RuntimeError("cannot get the result of a Worker before it is started")
        return self._future.result(timeout)

    def __repr__(self) -> str:
        state = "initial" if self._thread is None else ("started" if self.is_alive() else "stopped")
        return f"<xchannels.Worker {self.name} {state}>"
