"""python/xchannels/_calls.py: the caller's side of the worker protocol,
shared by :class:`~xchannels.Pool` and :class:`~xchannels.Worker`: how a
call's function, the caller's script and the arguments travel, and how an
exception comes back.

Functions travel by reference: ``(module, qualname)``, resolved by import in
the worker (``_bootstrap.resolve``). The caller's ``__main__`` script travels
as its path and its code, compiled once here (:func:`main_code`).
Exceptions travel as a record ``(module, qualname, args, message,
traceback_text, notes)`` and are rebuilt here by :func:`decode_exception`;
one that cannot be rebuilt arrives as :class:`RemoteError`.
"""

from __future__ import annotations

import functools
import importlib
import marshal
import os
import sys
import types
from typing import Any, Callable, Iterable, Mapping

from xchannels import _bootstrap
from xchannels._xchannels import NotShareableError

__all__ = ["RemoteError", "RemoteTraceback"]


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


def _first_unshareable(
    args: Iterable[Any], kwargs: Iterable[tuple[str, Any]], fallback: str | None
) -> tuple[str, NotShareableError] | None:
    """Where the first argument that cannot travel is (``argument 1``,
    ``keyword argument 'k'``), and why; None if every one can."""
    for i, a in enumerate(args):
        why = _bootstrap.value_error(a, fallback)
        if why is not None:
            return f"argument {i}", why
    for name, v in kwargs:
        why = _bootstrap.value_error(v, fallback)
        if why is not None:
            return f"keyword argument {name!r}", why
    return None


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
    found = _first_unshareable(args, kwargs, fallback)
    where, why = found if found is not None else ("an argument", exc)
    return NotShareableError(f"{where} of {qualname}() cannot be sent to a worker interpreter: {why}")


def explain_unshareable_map(
    calls: list[tuple[Any, ...]], qualname: str, fallback: str | None = None
) -> NotShareableError:
    """The error for a map whose arguments cannot all travel, naming the
    first item and argument that cannot."""
    for i, args in enumerate(calls):
        found = _first_unshareable(args, (), fallback)
        if found is not None:
            return NotShareableError(
                f"item {i} of map({qualname}): {found[0]} cannot be sent "
                f"to a worker interpreter: {found[1]}"
            )
    return NotShareableError(f"map({qualname}): an argument cannot be sent to a worker")


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
