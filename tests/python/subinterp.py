"""tests/python/subinterp.py: run code in real own-GIL sub-interpreters.

The differences between CPython 3.12 and 3.13 are hidden by the package's
own shim, ``xchannels._interp`` (the only copy). A failure in the
sub-interpreter surfaces here as :class:`SubinterpreterError` whose message
holds the remote traceback.

Parameters reach the code as globals assigned from their ``repr`` (ints,
strs, bytes, floats, tuples, None, bools), so pass channels by ``.id`` and
attach with ``xchannels.Channel.from_id``.
"""

from __future__ import annotations

import textwrap
import threading
from typing import Any

# The package's own shim over _xxsubinterpreters (3.12) / _interpreters
# (3.13): one copy of the version differences, used by the package, the
# tests and the benchmarks alike.
from xchannels import _interp


class SubinterpreterError(AssertionError):
    """Code in a sub-interpreter raised; the message is its traceback."""


def _prelude(params: dict[str, Any]) -> str:
    lines = []
    for name, value in params.items():
        text = repr(value)
        if eval(text) != value and value == value:  # noqa: S307 - test helper
            raise ValueError(f"parameter {name}={value!r} does not survive repr()")
        lines.append(f"{name} = {text}")
    return "\n".join(lines) + "\n"


def _body(code: str, params: dict[str, Any]) -> str:
    return _prelude(params) + textwrap.dedent(code)


class Subinterpreter:
    """One own-GIL sub-interpreter, created and destroyed on this thread.

    Use as a context manager; :meth:`run` executes code in its ``__main__``
    and raises :class:`SubinterpreterError` if the code raised.
    """

    def __init__(self) -> None:
        self.id = _interp.create()
        self._closed = False

    def run(self, code: str, **params: Any) -> None:
        err = _interp.run(self.id, _body(code, params), filename="<subinterpreter>")
        if err is not None:
            raise SubinterpreterError(f"in sub-interpreter {self.id}:\n{err}")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _interp.destroy(self.id)

    def __enter__(self) -> Subinterpreter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Running:
    """Code running in a fresh sub-interpreter on its own thread."""

    def __init__(self, code: str, params: dict[str, Any]) -> None:
        self.error: BaseException | None = None
        self.started = threading.Event()
        self._thread = threading.Thread(
            target=self._main, args=(code, params), daemon=True
        )
        self._thread.start()

    def _main(self, code: str, params: dict[str, Any]) -> None:
        try:
            # On 3.12 an interpreter must be destroyed by the thread that
            # created it, so both happen here.
            with Subinterpreter() as interp:
                self.started.set()
                interp.run(code, **params)
        except BaseException as e:  # surfaced by join()
            self.error = e
        finally:
            self.started.set()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float = 60.0) -> None:
        """Wait for the code to finish; re-raise its error here."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"sub-interpreter still running after {timeout} s")
        if self.error is not None:
            raise self.error


def start(code: str, **params: Any) -> Running:
    """Start ``code`` in a new own-GIL sub-interpreter on a new thread."""
    return Running(code, params)


def run(code: str, **params: Any) -> None:
    """Run ``code`` in a new own-GIL sub-interpreter and wait for it."""
    with Subinterpreter() as interp:
        interp.run(code, **params)


def run_parallel(codes: list[str], timeout: float = 60.0, **params: Any) -> None:
    """Run each code in its own sub-interpreter, all at once; raise the
    first error."""
    running = [start(c, **params) for c in codes]
    errors: list[BaseException] = []
    for r in running:
        try:
            r.join(timeout)
        except BaseException as e:  # collect all, raise the first
            errors.append(e)
    if errors:
        raise errors[0]


def live_interpreters() -> int:
    return len(_interp.list_all())
