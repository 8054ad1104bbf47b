"""tests/python/pool_script.py: task functions for tests/python/test_pool.py
and test_worker.py, importable by worker interpreters as ``pool_script``; the
helper both files use to read a remote traceback (remote_tb); and a script
run as ``python pool_script.py`` to check that functions of ``__main__``
travel the way multiprocessing's spawn makes them travel.

Run as a script, it prints one line per check; test_pool.py asserts them. The
module-level print shows how many times the module body ran and under which
name: once as ``__main__`` in the parent, once as ``__mp_main__`` in each
worker that needed a ``__main__`` function, never running the guarded block
again.
"""

from __future__ import annotations

import os
import sys
import time
from collections import namedtuple
from typing import Any

import xchannels

print(f"module body ran as {__name__}", flush=True)

Point = namedtuple("Point", "x y")


class CustomError(Exception):
    """An importable exception class with two constructor arguments."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text


class Unrebuildable(Exception):
    """Its constructor does not accept its own args, so the caller gets a
    RemoteError."""

    def __init__(self) -> None:
        super().__init__("fixed", "message", 3)


def square(x: int) -> int:
    return x * x


def add(a: int, b: int = 0, *, c: int = 0) -> int:
    return a + b + c


def echo(*args: object) -> tuple[object, ...]:
    return args


def fail_custom(code: int) -> None:
    raise CustomError(code, f"custom failure {code}")


def fail_builtin(key: str) -> None:
    {}[key]


def fail_unrebuildable() -> None:
    raise Unrebuildable()


def fail_noted() -> None:
    err = ValueError("with a note")
    err.add_note("remote note")
    raise err


def fail_unshareable_args() -> None:
    raise ValueError("with an object", object())


def fail_oserror(path: str) -> None:
    open(path)


class Methods:
    @staticmethod
    def static(x: int) -> int:
        return x + 1

    @classmethod
    def klass(cls, x: int) -> str:
        return f"{cls.__name__}:{x}"


def return_list() -> list[int]:
    return [1, 2, 3]


def return_object() -> object:
    """A return value that cannot travel back (nor be pickled)."""
    return [1, {"k": unpicklable()}]


def unpicklable() -> Any:
    """A value that neither travels natively nor pickles: a lambda."""
    return lambda: 0


def return_namedtuple(x: int, y: int) -> Any:
    return Point(x, y)


def system_exit(code: int) -> None:
    sys.exit(code)


def recurse(n: int) -> int:
    return recurse(n + 1) + 1


def interp_info() -> tuple[int, int, str]:
    """(pid, thread ident, id of this interpreter's sys module as a str)."""
    import threading

    return (os.getpid(), threading.get_ident(), str(id(sys)))


def square_or_fail(x: int) -> int:
    """x * x, except for x % 100 == 99 (CustomError) and 77 (a lambda,
    which cannot travel back, natively or pickled)."""
    if x % 100 == 99:
        raise CustomError(x, "ninety-nine")
    if x == 77:
        return unpicklable()  # type: ignore[no-any-return]
    return x * x


def fail_after_token_taken(cid: int) -> None:
    """Initializer: the first worker takes the token and goes on; the
    others fail 0.3 s later."""
    try:
        xchannels.Channel.from_id(cid).get(block=False)
    except xchannels.ChannelEmpty:
        time.sleep(0.3)
        raise RuntimeError("initializer failed on purpose") from None


def sleep_and_count(cid: int, seconds: float) -> None:
    """Sleep, then put a token in channel cid."""
    time.sleep(seconds)
    xchannels.Channel.from_id(cid).put(1)


def slow_interp_id(seconds: float) -> str:
    """Sleep, then say which interpreter ran the call."""
    time.sleep(seconds)
    return str(id(sys))


def mark(cid: int, i: int) -> int:
    """Put i in channel cid (proof that this call ran); return i."""
    xchannels.Channel.from_id(cid).put(i)
    return i


def started_then_wait(started: int, gate: int, timeout: float) -> object:
    """Say it started (a token in channel started), then wait on gate."""
    xchannels.Channel.from_id(started).put(1)
    return wait_on(gate, timeout)


def import_module(name: str) -> str:
    """Import a module in the worker; return its name."""
    import importlib

    return importlib.import_module(name).__name__


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def wait_on(cid: int, timeout: float) -> object:
    """Block on a channel until an item arrives or it closes."""
    ch = xchannels.Channel.from_id(cid)
    try:
        return ch.get(timeout=timeout)
    except xchannels.ChannelClosed:
        return "closed"


_initialized: tuple[object, ...] | None = None


def initialize(*args: object) -> None:
    global _initialized
    _initialized = args


def initialized() -> tuple[object, ...] | None:
    return _initialized


def fail_initializer() -> None:
    raise RuntimeError("initializer failed on purpose")


def kill_task_loop() -> None:
    """Break the worker's own task loop (not this task): the next result it
    sends fails outside any task, an interpreter-level failure."""
    import xchannels._bootstrap as b

    def broken(*_: object) -> None:
        raise RuntimeError("task loop sabotaged")

    b._send = broken


def serve(requests: xchannels.Channel, replies: xchannels.Channel, offset: int) -> int:
    """A service for Worker: answer each request until the channel closes;
    return how many it served."""
    served = 0
    for item in requests:
        replies.put((item, item + offset))
        served += 1
    return served


def work(n: int) -> int:
    k = 1
    for i in range(n, 1, -1):
        k *= i
        k %= 1000000007
    return k


# ---- for the tests in the parent (not a task) ---------------------------------


def remote_tb(exc: BaseException) -> str:
    """The worker-side traceback a Pool or Worker attached to `exc` (shared
    by test_pool.py and test_worker.py)."""
    cause = exc.__cause__
    assert isinstance(cause, xchannels.RemoteTraceback), cause
    return cause.tb


# ---- the script ---------------------------------------------------------------


def main_square(x: int) -> int:
    """Defined in __main__ when run as a script."""
    return x * x + 1


class MainError(Exception):
    pass


def main_fail() -> None:
    raise MainError("raised in a __main__ function")


if __name__ == "__main__":
    print("main block ran", flush=True)
    with xchannels.Pool(2) as pool:
        print("submit", pool.submit(main_square, 7).result(timeout=30), flush=True)
        print("map", list(pool.map(main_square, range(5), chunksize=2)), flush=True)
        err = pool.submit(main_fail).exception(timeout=30)
        print("error", type(err).__module__, type(err).__name__, str(err), flush=True)
        print("same class", type(err) is MainError, flush=True)
    print("done", flush=True)


def import_datetime() -> int:
    """Imports datetime (its C part, _datetime) in the worker."""
    import datetime

    return datetime.date(2000, 1, 1).year
