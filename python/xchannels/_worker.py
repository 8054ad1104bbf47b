"""python/xchannels/_worker.py: the parent side of the worker protocol
(function references, remote exceptions) and :class:`Worker`, one dedicated
long-running interpreter.

Functions travel by reference: ``(module, qualname)``, resolved by import in
the worker (``_bootstrap.resolve``). Exceptions travel as a record
``(module, qualname, args, message, traceback_text, notes)`` and are rebuilt
here by :func:`decode_exception`.

Invariants:

- A hosting thread creates, runs and destroys its interpreter itself (3.12
  requires destroy on the creating thread), and is a non-daemon thread (3.12
  aborts at exit if a sub-interpreter is still running).
- A Worker's future is completed exactly once, after its interpreter is
  destroyed, so ``join()`` returning means the interpreter is gone.
"""

from __future__ import annotations

import functools
import types
import importlib
import itertools
import marshal
import os
import sys
import threading
from concurrent.futures import Future
from typing import Any, Callable, Iterable, Literal, Mapping

from xchannels import _bootstrap, _interp
from xchannels._protocol import worker_config
from xchannels._xchannels import Channel, ChannelEmpty, NotShareableError

__all__ = ["RemoteError", "RemoteTraceback", "Worker"]


class RemoteError(Exception):
    """RemoteError(type_name, message)

    An exception raised in a worker interpreter whose class could not be
    rebuilt in the caller (not importable here, or its ``args`` could not
    travel or did not fit its constructor).

    Attributes
    ----------
    type_name : str
        The remote class as ``module.qualname``.
    message : str
        ``str()`` of the remote exception.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(type_name, message)
        self.type_name = type_name
        self.message = message

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}" if self.message else self.type_name


class RemoteTraceback(Exception):
    """RemoteTraceback(tb)

    The traceback text of an exception raised in a worker interpreter,
    attached as ``__cause__`` of the exception the caller sees (like
    ``concurrent.futures.ProcessPoolExecutor``), so it prints as "The above
    exception was the direct cause of ...".

    Attributes
    ----------
    tb : str
        The remote traceback, as ``traceback.format_exception`` wrote it.
    """

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


# ---- function references -----------------------------------------------------

_refs: dict[Any, tuple[str, str]] = {}


def _describe(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return repr(name) if name else repr(fn)


def function_reference(fn: Callable[..., Any]) -> tuple[str, str]:
    """function_reference(fn) -> (module, qualname)

    The name a worker imports ``fn`` by. Raises ``TypeError`` saying why for
    what cannot travel by name: lambdas, nested functions and closures,
    bound methods of instances, ``functools.partial`` objects, and functions
    of an interactive or ``-c`` ``__main__``.
    """
    try:
        return _refs[fn]
    except (KeyError, TypeError):  # TypeError: unhashable callable
        pass
    if not callable(fn):
        raise TypeError(f"{fn!r} is not callable")
    if isinstance(fn, functools.partial):
        raise TypeError(
            "functools.partial objects cannot be sent to a worker interpreter: "
            "functions travel by reference (module + qualified name); pass the "
            "function and its arguments instead"
        )
    if isinstance(fn, types.MethodType) and not isinstance(fn.__self__, type):
        raise TypeError(
            f"bound method {_describe(fn)} cannot be sent to a worker interpreter: "
            "functions travel by reference (module + qualified name) and the "
            "instance cannot travel; use a module-level function"
        )
    qualname = getattr(fn, "__qualname__", None)
    module = getattr(fn, "__module__", None)
    if module is None and hasattr(fn, "__objclass__"):  # e.g. str.upper
        module = fn.__objclass__.__module__
    if not isinstance(qualname, str) or not isinstance(module, str):
        raise TypeError(
            f"{fn!r} cannot be sent to a worker interpreter: it has no module "
            "and qualified name to import it by"
        )
    if "<lambda>" in qualname:
        raise TypeError(
            f"lambda {qualname!r} (module {module!r}) cannot be sent to a worker "
            "interpreter: functions travel by reference (module + qualified "
            "name), and a lambda cannot be imported by name; define it with "
            "def at module level"
        )
    if "<locals>" in qualname:
        raise TypeError(
            f"{qualname!r} (module {module!r}) is a nested function or closure "
            "and cannot be sent to a worker interpreter: functions travel by "
            "reference (module + qualified name), and a function defined inside "
            "another cannot be imported by name; define it at module level"
        )
    if module == _bootstrap.MAIN_ALIAS:  # a pool started from a worker
        module = "__main__"
    if module == "__main__" and main_path() is None:
        raise TypeError(
            f"{qualname!r} is defined in an interactive session or a `python -c` "
            "__main__, which worker interpreters cannot import (they import "
            "__main__ functions from the script file); define it in a module or "
            "a script"
        )
    owner = sys.modules.get("__main__" if module == "__main__" else module)
    if owner is not None:
        obj: Any = owner
        try:
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            obj = None
        if obj is not fn and obj != fn:
            raise TypeError(
                f"{module}.{qualname} does not name {fn!r} (decorated, rebound "
                "or generated under another name?), so a worker interpreter "
                "cannot import it"
            )
    ref = (module, qualname)
    try:
        if len(_refs) > 4096:
            _refs.clear()
        _refs[fn] = ref
    except TypeError:
        pass
    return ref


def main_path() -> str | None:
    """The file of this process's ``__main__`` script, or None for an
    interactive or ``-c`` main (in a worker: the parent's script)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if isinstance(path, str):
        return os.path.abspath(path)
    return _bootstrap._main_path


# (path, mtime_ns, size) -> the script compiled and marshalled, or None.
_main_code_cache: tuple[tuple[str, int, int], bytes | None] | None = None


def main_code(path: str | None) -> bytes | None:
    """main_code(path) -> bytes | None

    The ``__main__`` script at ``path`` compiled here, once per version of
    the file, as :mod:`marshal` bytes that the workers execute instead of
    compiling the script each (see ``_bootstrap._main_code``). None when
    there is no script or it cannot be read or compiled: a worker then
    compiles it itself and reports the error where the task needs it.
    """
    global _main_code_cache
    if path is None:
        return None
    if path == _bootstrap._main_path and _bootstrap._main_code is not None:
        return _bootstrap._main_code  # a pool made in a worker: its parent's copy
    try:
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        cached = _main_code_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        with open(path, "rb") as f:
            source = f.read()
        data: bytes | None = marshal.dumps(compile(source, path, "exec", dont_inherit=True))
    except (OSError, SyntaxError, ValueError):
        return None
    _main_code_cache = (key, data)
    return data


def kwargs_pairs(kwargs: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """Keyword arguments as the tuple of ``(name, value)`` pairs that
    travel (one shape for every call, cheaper to encode than a dict)."""
    return tuple(kwargs.items()) if kwargs else ()


def explain_unshareable(
    exc: NotShareableError,
    qualname: str,
    args: tuple[Any, ...],
    kwargs: Iterable[tuple[str, Any]],
    fallback: str | None = None,
) -> NotShareableError:
    """A NotShareableError naming the argument of ``qualname`` that cannot
    travel, with a path that starts at that argument (``exc`` names a place
    in the task message, which the user never sees)."""
    where, why = "an argument", None
    for i, a in enumerate(args):
        why = _bootstrap.value_error(a, fallback)
        if why is not None:
            where = f"argument {i}"
            break
    else:
        for name, v in kwargs:
            why = _bootstrap.value_error(v, fallback)
            if why is not None:
                where = f"keyword argument {name!r}"
                break
    return NotShareableError(f"{where} of {qualname}() cannot be sent to a worker interpreter: {why or exc}")


def alias_main() -> None:
    """Let pickles made in worker interpreters resolve here: they name the
    classes of the ``__main__`` script ``__mp_main__.X`` (workers import the
    script under that name). As ``import multiprocessing`` does, make
    ``sys.modules['__mp_main__']`` this interpreter's ``__main__`` unless
    it is set (in a worker it is the script already)."""
    main = sys.modules.get("__main__")
    if main is not None:
        sys.modules.setdefault(_bootstrap.MAIN_ALIAS, main)


def sys_path() -> list[str]:
    """This interpreter's ``sys.path``, which workers adopt, so that they
    import what the caller can."""
    return [p for p in sys.path if isinstance(p, str)]


# ---- exceptions --------------------------------------------------------------


def _find_class(module: str, qualname: str) -> type[BaseException] | None:
    try:
        obj: Any = sys.modules["__main__"] if module == "__main__" else importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except BaseException:  # whatever importing runs (a module that exits)
        return None
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return obj
    return None


def decode_exception(record: tuple[Any, ...]) -> BaseException:
    """decode_exception(record) -> BaseException

    Rebuild a worker's exception from its record: its own class when
    importable here and ``cls(*args)`` works, else :class:`RemoteError`; the
    remote traceback is attached as ``__cause__`` (a :class:`RemoteTraceback`).
    """
    module, qualname, args, message, text, notes = record
    exc: BaseException | None = None
    if args is not None:
        cls = _find_class(module, qualname)
        if cls is not None:
            try:
                exc = cls(*args)
            except BaseException:  # a constructor that refuses its own args
                exc = None
    if exc is None:
        name = qualname if module == "builtins" else f"{module}.{qualname}"
        exc = RemoteError(name, message)
    for note in notes:
        exc.add_note(note)
    exc.__cause__ = RemoteTraceback(text)
    return exc


def received_error(what: str, ok: bool, payload: Any, failures: tuple[BaseException, ...]) -> BaseException:
    """The exception for an outcome in which pickled values could not be
    unpickled here (see ``Channel._get_batch``): for a return value, a
    NotShareableError naming ``what`` (``the return value of f()``) and
    the place; for an exception record, the exception without its args
    (a RemoteError)."""
    if not ok:
        module, qualname, _args, message, text, notes = payload
        notes = tuple(n for n in notes if type(n) is str)
        return decode_exception((module, qualname, None, message, text, notes))
    err = _bootstrap.unpickle_error(f"{what} cannot be received from the worker", payload, failures)
    if err is None:  # not in the value itself: the message around it
        err = NotShareableError(f"{what} cannot be received from the worker")
        err.__cause__ = failures[0]
    return err


def host_failure(text: str, what: str) -> str:
    """Last line of a remote traceback, for short error messages."""
    last = text.strip().splitlines()[-1] if text.strip() else "no traceback"
    return f"{what}: {last}"


# ---- Worker ------------------------------------------------------------------

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
        module, qualname = function_reference(target)
        args = tuple(args)
        pairs = kwargs_pairs(kwargs)
        self._qualname = qualname
        self.name = name or f"xchannels-worker-{next(_worker_ids)}"
        if fallback not in (None, "pickle"):
            raise ValueError(f"fallback must be None or 'pickle', not {fallback!r}")
        self._config = Channel(fallback=fallback)
        self._result = Channel(fallback=fallback)
        path = main_path()
        try:
            self._config.put(worker_config(main_code(path), module, qualname, args, pairs))
        except NotShareableError as exc:
            raise explain_unshareable(exc, qualname, args, pairs, fallback) from None
        if fallback is not None:
            alias_main()
        self._code = _WORKER_CODE.format(
            path=sys_path(), config=self._config.id, result=self._result.id, main=path
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
                    host_failure(text or "", f"worker {self.name}'s interpreter failed")
                )
                err.__cause__ = RemoteTraceback(text or "no traceback\n")
                self._future.set_exception(err)
            else:
                ((ok, payload),), failures = got
                if failures:  # the result cannot be unpickled here
                    what = f"the return value of {self._qualname}()"
                    self._future.set_exception(received_error(what, ok, payload, failures[0]))
                elif ok:
                    self._future.set_result(payload)
                else:
                    self._future.set_exception(decode_exception(payload))

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
