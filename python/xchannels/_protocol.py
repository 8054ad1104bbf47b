"""python/xchannels/_protocol.py: the messages between a caller and its
worker interpreters (Pool and Worker), in one place.

Every message is a tuple of shareable values (never pickled), built by the
constructors below and read by unpacking in the order given here, so that no
other module indexes a message by a bare number. Imported in every worker
interpreter: keep it free of imports.

Pool task (caller -> task channel -> a worker)::

    (task_id, kind, module, qualname, payload, kwargs)

- ``kind`` :data:`CALL`: ``payload`` is the argument tuple of one call and
  ``kwargs`` a tuple of ``(name, value)`` pairs.
- ``kind`` :data:`CHUNK`: ``payload`` is a tuple of argument tuples run as one
  unit (``map(chunksize=n)``); its result is the tuple of their results.
- ``kind`` :data:`GROUP`: ``payload`` is a tuple of argument tuples for the
  calls with ids ``task_id``, ``task_id + 1``, ..., each with its own outcome
  (``map`` with ``chunksize=1`` sends its calls this way).

Pool result (a worker -> result channel -> the collector)::

    (task_id, status, payload)

- :data:`OK`: ``payload`` is the return value; :data:`FAILED`: an exception
  record (below); :data:`OUTCOMES`: the outcomes of a GROUP task's calls
  ``task_id``, ``task_id + 1``, ..., in order, each ``(True, value)``,
  ``(False, record)`` or None (cancelled: not run).
- :data:`DIED`: not a task's result. The thread hosting worker ``task_id``
  (its index) saw the task loop end abnormally; ``payload`` is the
  traceback text.

Exception record: ``(module, qualname, args, message, traceback_text,
notes)``; ``args`` is None when they cannot travel.

Configuration, one message each on a channel of its own:

- pool worker: ``(main_code, initializer, initargs)``, ``initializer`` None
  or ``(module, qualname)``;
- dedicated Worker: ``(main_code, module, qualname, args, kwargs)``, and its
  one result ``(ok, payload)``: the return value, or an exception record.

The path of the caller's ``__main__`` script is not in them: it is an
argument of the worker's entry point, in the code the worker runs, so that
the worker can resolve the script's classes (which pickled arguments may
name) before it receives anything.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds in every fresh worker interpreter
    from typing import Any

# Field positions of a task, for the hot loops that cannot afford to unpack
# every message; everything else unpacks.
TASK_ID = 0
TASK_KIND = 1

# Task kinds (field 1 of a task).
CALL = 0
CHUNK = 1
GROUP = 2

# Result statuses (field 1 of a result). OK and FAILED are also the truth
# values of "ok", so ``if status:`` reads as "succeeded".
FAILED = 0
OK = 1
OUTCOMES = 2
DIED = 3


# ---- tasks -----------------------------------------------------------------------


def call_task(task_id: int, module: str, qualname: str, args: tuple[Any, ...], kwargs: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    """One call ``module.qualname(*args, **dict(kwargs))``."""
    return (task_id, CALL, module, qualname, args, kwargs)


def chunk_task(task_id: int, module: str, qualname: str, calls: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    """Calls run as one unit with one outcome (``map(chunksize=n)``)."""
    return (task_id, CHUNK, module, qualname, calls, ())


def group_task(task_id: int, module: str, qualname: str, calls: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    """Calls with ids ``task_id``, ``task_id + 1``, ..., one outcome each."""
    return (task_id, GROUP, module, qualname, calls, ())


def task_ids(task: tuple[Any, ...]) -> range:
    """The call ids a task stands for (a GROUP task: one per call)."""
    task_id, kind, _module, _qualname, payload, _kwargs = task
    return range(task_id, task_id + (len(payload) if kind == GROUP else 1))


# ---- results ---------------------------------------------------------------------


def ok_result(task_id: int, value: Any) -> tuple[Any, ...]:
    return (task_id, OK, value)


def failed_result(task_id: int, record: tuple[Any, ...]) -> tuple[Any, ...]:
    return (task_id, FAILED, record)


def outcomes_result(task_id: int, outcomes: tuple[tuple[bool, Any] | None, ...]) -> tuple[Any, ...]:
    """The outcomes of calls ``task_id``, ``task_id + 1``, ... of a group."""
    return (task_id, OUTCOMES, outcomes)


def died(worker_index: int, traceback_text: str) -> tuple[Any, ...]:
    """A worker thread's task loop ended abnormally (not a task's result)."""
    return (worker_index, DIED, traceback_text)


# ---- exceptions and configuration ---------------------------------------------------


def exception_record(
    module: str, qualname: str, args: tuple[Any, ...] | None, message: str, text: str, notes: tuple[str, ...]
) -> tuple[Any, ...]:
    return (module, qualname, args, message, text, notes)


def pool_config(
    main_code: bytes | None, initializer: tuple[str, str] | None, initargs: tuple[Any, ...]
) -> tuple[Any, ...]:
    """A pool worker's configuration. ``main_code``: the parent's script
    compiled once and marshalled (``main_code()`` in _calls.py), or None:
    the worker then compiles the file itself."""
    return (main_code, initializer, initargs)


def worker_ok(value: Any) -> tuple[bool, Any]:
    """A dedicated Worker's result: its target returned ``value``."""
    return (True, value)


def worker_failed(record: tuple[Any, ...]) -> tuple[bool, Any]:
    """A dedicated Worker's result: its target raised (an exception record)."""
    return (False, record)


def worker_config(
    main_code: bytes | None, module: str, qualname: str, args: tuple[Any, ...], kwargs: tuple[Any, ...],
) -> tuple[Any, ...]:
    return (main_code, module, qualname, args, kwargs)
