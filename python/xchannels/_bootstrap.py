"""python/xchannels/_bootstrap.py: the code that runs inside worker
interpreters (the pool's task loop and a dedicated Worker's single call).

Nothing here is public. The parent side of the same protocol lives in
``_calls.py`` (function references, the script, exception decoding),
``_worker.py`` (Worker) and ``_pool.py`` (Pool).

The messages are those of ``_protocol`` (read its docstring first).

Hand-back: a worker whose GROUP task turns out long (its calls so far took
more than ``_BATCH_SECONDS``) while the task channel is empty (another worker
may be idle) sends the outcomes so far and puts the calls not yet run back
on the task channel as a new GROUP task; if the channel is closed (shutdown)
it runs them itself. Once the pool's abort channel is closed
(``shutdown(cancel_futures=True)``, or the pool broke), the calls of a long
group not yet run are not run: their outcome is None ("cancelled").

Claims: before running CALL tasks, a worker claims them in the task claim
table (``_task_start``); those the caller cancelled first are skipped.

The script's classes (the spawn rule, both ways): pickles made in the
caller name the script's classes ``__main__.X``, pickles made here name
them ``__mp_main__.X``. Here both names lead to the script module: until a
worker needs the script, this interpreter's own ``__main__`` (also
registered as ``__mp_main__``, as ``import multiprocessing`` would) looks
up what it lacks in the script, importing it on first use (a PEP 562
``__getattr__``); once the script is imported, ``sys.modules['__main__']``
and ``sys.modules['__mp_main__']`` are the script module itself, as in a
multiprocessing spawn child. The caller aliases ``__mp_main__`` to its
``__main__`` (``_calls.alias_main``).

Received values: tasks are read leniently (``Channel._get_batch``): a
pickled argument that cannot be unpickled here stands as the exception its
unpickling raised, and fails its own call (:func:`unpickle_error` names the
argument and the place in it), never the task loop.

Invariants:

- The task loop never lets a task's exception escape, BaseException included
  (SystemExit, RecursionError, ...): each one becomes that task's result.
  Nor does anything one task's data can do: an argument that cannot be
  unpickled, a result (or an exception's ``args``) that cannot be encoded,
  a hand-back that cannot be re-encoded each fail that task or call alone.
  The loop ends normally only when the task channel is closed and drained;
  any other end is an interpreter-level failure, which the parent reports by
  marking the pool broken.
- Every call taken gets exactly one outcome: in its task's result message,
  or in the hand-back task's. Results of one worker go out in the order the
  calls ran.
"""

from __future__ import annotations

import _thread
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds in every fresh worker interpreter
    from types import ModuleType
    from typing import Any, Callable

from xchannels._protocol import (
    CALL,
    CHUNK,
    GROUP,
    OUTCOMES,
    TASK_ID,
    TASK_KIND,
    exception_record,
    failed_result,
    group_task,
    ok_result,
    outcomes_result,
    worker_failed,
    worker_ok,
)
from xchannels import _xchannels
from xchannels._xchannels import (
    Channel,
    NotShareableError,
    _encode_decode,
    _task_start,
    is_shareable,
)

# The name under which a worker imports the parent's ``__main__`` script, so
# that its ``if __name__ == "__main__":`` block does not run (multiprocessing's
# spawn uses the same name).
MAIN_ALIAS = "__mp_main__"

# Adaptive batching: a worker takes as many queued tasks at once as fit in
# about this much work (measured on the tasks it ran last), between 1 and
# _MAX_BATCH. Long tasks are taken one by one, so load stays balanced; tiny
# tasks are taken in batches, so per-message costs are shared. Results are
# sent when the batch ends or as soon as this much time passed since the last
# send, so a task that runs long does not hold back finished results.
_BATCH_SECONDS = 0.002
_MAX_BATCH = 64

_main_path: str | None = None
# The parent's script compiled once, in the parent (marshal bytes), or None.
# Executing it saves each worker compiling the file: a fresh interpreter's
# first compile() also builds the AST types, together about 3 ms of a pool's
# start-up.
_main_code: bytes | None = None
_importing_main = False
# The parent's script as this interpreter imported it. Kept here, not looked
# up in sys.modules: ``import multiprocessing`` (in the script, in a module
# it imports, or in a task) rebinds ``sys.modules['__mp_main__']`` to this
# interpreter's own ``__main__``, which has none of the script's functions.
_main_mod: ModuleType | None = None
# Held while the script is executed: executing it lets other threads of this
# interpreter run, and a second thread that also found _main_mod unset would
# execute the script a second time (two module objects, two copies of every
# class). Reentrant: the script's own imports may resolve names again.
_main_lock = _thread.RLock()
# The script module while it is being executed (its module-level code may
# unpickle or resolve its own names before _main_mod is set).
_main_executing: ModuleType | None = None
_cache: dict[tuple[str, str], Callable[..., Any]] = {}


def importing_main() -> bool:
    """True while this interpreter executes the parent's ``__main__`` script.

    ``Pool`` checks it to refuse to start workers from an unguarded script
    (which would otherwise start pools recursively).
    """
    return _importing_main


def _main_module() -> ModuleType:
    if _main_mod is not None:
        return _main_mod
    with _main_lock:
        if _main_mod is not None:  # another thread executed it meanwhile
            return _main_mod
        return _execute_main()


def _execute_main() -> ModuleType:
    global _importing_main, _main_mod, _main_executing
    import importlib.util

    if _main_path is None:
        raise ImportError(
            "the parent's __main__ has no file to import (interactive or -c)"
        )
    spec = importlib.util.spec_from_file_location(MAIN_ALIAS, _main_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import the parent's __main__ from {_main_path!r}")
    mod = importlib.util.module_from_spec(spec)
    before = sys.modules.get(MAIN_ALIAS)
    sys.modules[MAIN_ALIAS] = mod
    _importing_main = True
    _main_executing = mod
    try:
        if _main_code is not None:
            import marshal

            exec(marshal.loads(_main_code), mod.__dict__)
        else:
            spec.loader.exec_module(mod)
    except BaseException:
        if sys.modules.get(MAIN_ALIAS) is mod:
            if before is None:
                del sys.modules[MAIN_ALIAS]
            else:
                sys.modules[MAIN_ALIAS] = before
        raise
    finally:
        _importing_main = False
        _main_executing = None
    _main_mod = mod
    # As in a multiprocessing spawn child: both names are the script now, so
    # pickles naming __main__.X (from the caller) or __mp_main__.X (from a
    # worker) resolve without a detour, whatever `import multiprocessing`
    # (which rebinds __mp_main__ to __main__) does later.
    sys.modules["__main__"] = sys.modules[MAIN_ALIAS] = mod
    return mod


def _main_getattr(name: str) -> Any:
    """PEP 562 ``__getattr__`` of this interpreter's own ``__main__`` until
    the script is imported: what it lacks (a class or function of the
    caller's script that a pickle names) comes from the script, imported on
    first use. Dunder names are not looked up there (``__file__`` and the
    like are probed by tools and must not import the script)."""
    if name[:2] == "__" and name[-2:] == "__":
        raise AttributeError(f"module '__main__' has no attribute {name!r}")
    mod = _main_executing
    if mod is None:
        mod = _main_module()
    return getattr(mod, name)


def _alias_main() -> None:
    """Let pickles that name the caller's script (``__main__.X``, or
    ``__mp_main__.X`` from another worker) resolve in this interpreter,
    importing the script on first use; see the module docstring."""
    main = sys.modules.get("__main__")
    if main is None or main is _main_mod:
        return
    main.__getattr__ = _main_getattr  # type: ignore[method-assign]
    sys.modules.setdefault(MAIN_ALIAS, main)


def _import(module: str) -> ModuleType:
    """importlib.import_module for an absolute name, without importing
    importlib (a fraction of a millisecond in every fresh worker)."""
    __import__(module)
    return sys.modules[module]


def resolve(module: str, qualname: str) -> Callable[..., Any]:
    """Import ``module`` and walk ``qualname``; ``__main__`` means the
    parent's script, imported as ``__mp_main__``. Cached per interpreter."""
    key = (module, qualname)
    fn = _cache.get(key)
    if fn is None:
        obj: Any = _main_module() if module == "__main__" else _import(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        fn = _cache[key] = obj
    return fn


def _import_note(exc: ImportError) -> str:
    """The note a worker adds to an ImportError: which module failed, and
    the command that checks modules before a pool runs tasks."""
    failed: str | None = None
    e: BaseException | None = exc
    seen = 0
    while e is not None and seen < 16:  # the innermost named module decides
        if isinstance(e, ImportError):
            # An extension without sub-interpreter support raises a plain
            # ImportError with no .name: "module X does not support loading
            # in subinterpreters".
            text = str(e)
            if text.startswith("module ") and "does not support loading in subinterpreters" in text:
                failed = text.split()[1]
            elif e.name:
                failed = e.name
        e = e.__cause__ or e.__context__
        seen += 1
    what = f"importing {failed!r}" if failed else "an import"
    top = (failed or "MODULE").split(".")[0]
    return (
        f"xchannels: {what} failed in a worker interpreter (an own-GIL sub-interpreter, "
        "where many C extensions cannot load yet). Check which modules can be "
        f"imported there with: python -m xchannels check {top}"
    )


def _text(value: Any) -> str:
    """``value`` as an exact str (a str subclass would be pickled on its
    way back, and could fail there)."""
    return value if type(value) is str else str.__str__(value) if isinstance(value, str) else repr(value)


def encode_exception(exc: BaseException) -> tuple[Any, ...]:
    """The record of ``exc`` that travels:
    ``(module, qualname, args or None, message, traceback_text, notes)``.

    ``args`` is None when they are not shareable (the parent then raises a
    RemoteError). The traceback omits this module's own leading frames.
    Never raises: whatever the exception's class does (a ``__str__``,
    ``args`` or ``__notes__`` that raise), the record is made of exact
    strings and native values.
    """
    try:
        return _encode_exception(exc)
    except BaseException:
        cls = type(exc)
        name = _text(getattr(cls, "__qualname__", "exception"))
        return exception_record(
            "builtins", "RuntimeError", None, f"a task raised {name}, which could not be reported",
            f"{name} (could not be formatted)\n", (),
        )


def _encode_exception(exc: BaseException) -> tuple[Any, ...]:
    cls = type(exc)
    if isinstance(exc, ImportError):
        try:
            exc.add_note(_import_note(exc))
        except BaseException:
            pass
    module = _text(cls.__module__)
    if module == MAIN_ALIAS:
        module = "__main__"
    try:
        args: tuple[Any, ...] | None = exc.args
        if type(args) is not tuple or not is_shareable(args):
            args = None
    except BaseException:  # an args property that raises
        args = None
    try:
        message = _text(str(exc))
    except BaseException:  # a broken __str__ must not kill the worker
        message = f"<{cls.__name__} with unprintable message>"
    import traceback  # only on failure: it costs ~10 ms to import

    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    try:
        text = _text("".join(traceback.format_exception(cls, exc, tb)))
    except BaseException:
        text = f"{cls.__qualname__}: {message}\n(traceback could not be formatted)\n"
    try:
        notes = tuple(_text(n) for n in getattr(exc, "__notes__", ()) if isinstance(n, str))
    except BaseException:  # __notes__ that is not a sequence
        notes = ()
    return exception_record(module, _text(cls.__qualname__), args, message, text, notes)


# ---- values that could not be unpickled ------------------------------------------


def place_of(value: Any, target: object, depth: int = 0) -> str | None:
    """Where ``target`` (by identity) sits in ``value``, a decoded value
    (built-in containers only), written as the encoder writes places
    (``[1]['k']``, ``.keys()[0]``, ``{#2}``): "" for ``value`` itself, None
    if it is not there. For error paths only."""
    if value is target:
        return ""
    if depth > 256:
        return None
    t = type(value)
    if t is tuple or t is list:
        for i, v in enumerate(value):
            p = place_of(v, target, depth + 1)
            if p is not None:
                return f"[{i}]{p}"
    elif t is dict:
        for i, (k, v) in enumerate(value.items()):
            p = place_of(k, target, depth + 1)
            if p is not None:
                return f".keys()[{i}]{p}"
            p = place_of(v, target, depth + 1)
            if p is not None:
                return f"[{k!r}]{p}"
    elif t is set or t is frozenset:
        for i, v in enumerate(value):
            p = place_of(v, target, depth + 1)
            if p is not None:
                return f"{{#{i}}}{p}"
    return None


def unpickle_error(what: str, value: Any, failures: tuple[BaseException, ...]) -> NotShareableError | None:
    """If one of ``failures`` (the exceptions that stand where pickled
    values could not be unpickled, see ``Channel._get_batch``) sits in
    ``value``: the error that replaces ``value``, starting with ``what``
    and naming the place, its cause that exception; else None."""
    for exc in failures:
        place = place_of(value, exc)
        if place is None:
            continue
        try:
            why = f"{type(exc).__name__}: {exc}"
        except BaseException:
            why = type(exc).__name__
        where = f"item {place}: " if place else ""
        err = NotShareableError(
            f"{what}: {where}a pickled value (sent with fallback='pickle') cannot be "
            f"unpickled in this interpreter: {why}"
        )
        err.__cause__ = exc
        return err
    return None


def _argument_error(
    qualname: str, args: tuple[Any, ...], kwargs: tuple[Any, ...], failures: tuple[BaseException, ...],
    where: str = "",
) -> NotShareableError:
    """The error of a call whose arguments hold values that could not be
    unpickled, naming the first such argument."""
    suffix = " cannot be received in the worker interpreter"
    for i, a in enumerate(args):
        err = unpickle_error(f"argument {i} of {qualname}(){where}{suffix}", a, failures)
        if err is not None:
            return err
    for name, v in kwargs:
        err = unpickle_error(f"keyword argument {name!r} of {qualname}(){where}{suffix}", v, failures)
        if err is not None:
            return err
    err = NotShareableError(f"an argument of {qualname}(){where}{suffix}: a pickled value cannot be unpickled")
    err.__cause__ = failures[0] if failures else None
    return err


def _bad_calls(task: tuple[Any, ...], failures: tuple[BaseException, ...]) -> dict[int, NotShareableError]:
    """The calls of ``task`` whose arguments could not be unpickled, by
    their index in the task (0 for a CALL or CHUNK task), with their error."""
    _task_id, kind, _module, qualname, payload, kwargs = task
    bad: dict[int, NotShareableError] = {}
    if kind == CALL:
        bad[0] = _argument_error(qualname, payload, kwargs, failures)
    elif kind == CHUNK:
        for k, args in enumerate(payload):
            if any(place_of(args, exc) is not None for exc in failures):
                bad[0] = _argument_error(qualname, args, (), failures, f" (call {k} of its chunk)")
                break
        else:
            bad[0] = _argument_error(qualname, (), (), failures)
    else:
        for k, args in enumerate(payload):
            if any(place_of(args, exc) is not None for exc in failures):
                bad[k] = _argument_error(qualname, args, (), failures)
    return bad


def _call(module: str, qualname: str, args: tuple[Any, ...], kwargs: tuple[Any, ...]) -> Any:
    fn = resolve(module, qualname)
    if kwargs:
        return fn(*args, **dict(kwargs))
    return fn(*args)


def _run_task(task: tuple[Any, ...]) -> tuple[Any, ...]:
    """Run a CALL or CHUNK task; return its result message."""
    task_id, kind, module, qualname, payload, kwargs = task
    try:
        if kind == CHUNK:
            fn = resolve(module, qualname)
            value: Any = tuple([fn(*a) for a in payload])
        else:
            value = _call(module, qualname, payload, kwargs)
    except BaseException as exc:  # SystemExit and RecursionError included
        return failed_result(task_id, encode_exception(exc))
    return ok_result(task_id, value)


def _bad_task(task: tuple[Any, ...], failures: tuple[BaseException, ...]) -> tuple[Any, ...]:
    """The result message of a CALL or CHUNK task whose arguments could not
    be unpickled here: its error, naming the argument and the place."""
    return failed_result(task[TASK_ID], encode_exception(_bad_calls(task, failures)[0]))


def _run_group(
    task: tuple[Any, ...], tasks: Channel, out: Channel, abort: Channel, clock: Callable[[], float],
    failures: tuple[BaseException, ...] | None = None,
) -> tuple[Any, ...]:
    """Run a GROUP task's calls, each with its own outcome (None: cancelled,
    not run). Once the calls since the last delivery took long: deliver the
    outcomes so far, then hand the rest back to the task channel if it is
    empty (a worker may be idle), or stop if the pool aborted. Returns the
    result message of the calls not yet delivered. With ``failures`` (some
    arguments could not be unpickled), those calls fail alone and the group
    is not handed back."""
    task_id, _kind, module, qualname, calls, _kwargs = task
    outcomes: list[tuple[bool, Any] | None] = []
    append = outcomes.append
    bad = _bad_calls(task, failures) if failures else None
    try:
        fn = resolve(module, qualname)
    except BaseException as exc:  # every call fails as it would alone
        record = encode_exception(exc)
        return outcomes_result(task_id, tuple([(False, record)] * len(calls)))
    t0 = clock()  # after resolve: a first import is not the calls' time
    base = task_id  # id of outcomes[0]
    last = len(calls) - 1
    may_hand_back = bad is None
    for i, args in enumerate(calls):
        # An outcome is (True, value) or (False, exception record).
        if bad is not None and i in bad:
            append((False, encode_exception(bad[i])))
            continue
        try:
            append((True, fn(*args)))
        except BaseException as exc:  # SystemExit and RecursionError included
            append((False, encode_exception(exc)))
        if i < last and clock() - t0 > _BATCH_SECONDS:
            if abort.closed:  # cancelled or broken: the rest is not run
                outcomes.extend([None] * (last - i))
                break
            if may_hand_back and tasks.empty():
                try:
                    tasks.put(group_task(task_id + i + 1, module, qualname, calls[i + 1 :]))
                    break
                except _xchannels.ChannelError:  # closed: shutting down, nobody else will take them
                    may_hand_back = False
                except BaseException:
                    # The arguments, unpickled here, cannot be encoded again
                    # (a __reduce__ that fails in a worker): run them here.
                    may_hand_back = False
            # Long calls: deliver what is done rather than hold it back.
            _send_one(out, outcomes_result(base, tuple(outcomes)), qualname)
            base = task_id + i + 1
            outcomes.clear()
            t0 = clock()
    return outcomes_result(base, tuple(outcomes))


def value_error(value: Any, fallback: str | None = None) -> NotShareableError | None:
    """Why ``value`` cannot travel (on a channel with ``fallback``), with a
    path that starts at ``value`` itself (``item [1][0]: ...``), or None if
    it can. For error paths only: it encodes the value."""
    try:
        if fallback is None:
            _encode_decode(value)
        else:
            Channel(fallback=fallback).put(value)  # type: ignore[arg-type]
    except NotShareableError as exc:
        return exc
    return None


def result_error(qualname: str, value: Any, exc: BaseException, out: Channel | None = None) -> NotShareableError:
    """The error that replaces a return value that cannot travel back."""
    try:
        why: BaseException = value_error(value, out.fallback if out is not None else None) or exc
    except BaseException:  # encoding raised something else: say that
        why = exc
    if not isinstance(why, NotShareableError):
        why_text = f"{type(why).__name__}: {_safe_str(why)}"
    else:
        why_text = _safe_str(why)
    err = NotShareableError(f"the return value of {qualname}() cannot be sent back from the worker: {why_text}")
    err.__cause__ = why.__cause__ if isinstance(why, NotShareableError) else why
    return err


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:
        return f"<{type(exc).__name__} with unprintable message>"


def _not_shareable(
    task_id: int, qualname: str, value: Any, exc: BaseException, out: Channel
) -> tuple[Any, ...]:
    return failed_result(task_id, encode_exception(result_error(qualname, value, exc, out)))


def _send_one(out: Channel, result: tuple[Any, ...], qualname: str) -> None:
    """Send one result; a value that cannot travel becomes its call's
    error (per call for a group's outcomes). Whatever encoding the value
    raises (NotShareableError, or what a ``__reduce__`` raises that pickle
    lets through: SystemExit, RecursionError...) is that call's error."""
    task_id, status, payload = result
    if status == OUTCOMES:
        try:
            out.put(result)
        except _xchannels.ChannelError:
            raise  # the channel itself (closed): not the value's fault
        except BaseException:
            # One outcome cannot travel: send them call by call instead.
            for i, outcome in enumerate(payload):
                if outcome is None:  # cancelled: travels as a one-call group
                    out.put(outcomes_result(task_id + i, (None,)))
                elif outcome[0]:
                    _send_one(out, ok_result(task_id + i, outcome[1]), qualname)
                else:
                    _send_one(out, failed_result(task_id + i, outcome[1]), qualname)
        return
    try:
        out.put(result)
    except _xchannels.ChannelError:
        raise
    except BaseException as exc:
        if status:
            out.put(_not_shareable(task_id, qualname, payload, exc, out))
        else:  # an exception record (its args or notes pickled): without them
            module, name, _args, message, text, _notes = payload
            out.put(failed_result(task_id, exception_record(module, name, None, message, text, ())))


def _send(out: Channel, results: list[tuple[Any, ...]], qualnames: list[str]) -> None:
    try:
        if len(results) == 1:
            out.put(results[0])
        else:
            out.put_many(results)
    except _xchannels.ChannelError:
        raise
    except BaseException:
        # put_many checks every item before sending any: resend one by one,
        # replacing the values that cannot travel by an error record.
        for r, q in zip(results, qualnames):
            _send_one(out, r, q)


def _setup(main_path: str | None) -> None:
    """Before anything is received: the caller's script, so that pickles
    naming its classes resolve here (see the module docstring)."""
    global _main_path
    _main_path = main_path
    _alias_main()


def _receive_config(config_cid: int) -> tuple[tuple[Any, ...], tuple[BaseException, ...] | None]:
    """The one configuration message (decoded leniently) and the
    exceptions standing in it, if any; sets the script's compiled code,
    which the message starts with."""
    global _main_code
    got = Channel.from_id(config_cid)._get_batch(1)
    assert got is not None, "the configuration channel was closed"
    (config,), failures = got
    _main_code = config[0]
    return config, failures[0] if failures else None


def pool_worker(task_cid: int, result_cid: int, config_cid: int, abort_cid: int, main_path: str | None) -> None:
    """Serve the pool's task channel until it is closed and drained.

    The config channel holds a ``_protocol.pool_config`` message; an
    initializer's exception escapes, which the parent reports as a broken
    pool (and so do initargs that cannot be unpickled here).
    """
    _setup(main_path)
    tasks = Channel.from_id(task_cid)
    out = Channel.from_id(result_cid)
    abort = Channel.from_id(abort_cid)
    (_code, initializer, initargs), failures = _receive_config(config_cid)
    if initializer is not None:
        if failures:
            raise _argument_error(initializer[1], initargs, (), failures, " (the pool's initializer)")
        resolve(*initializer)(*initargs)
    batch = 1
    clock = time.perf_counter
    table = tasks.id  # the pool's id in the task claim table
    while True:
        # None once the pool closed the channel and it is drained (no
        # ChannelClosed: on 3.13 that class costs an import of queue).
        got = tasks._get_batch(batch)
        if got is None:
            return
        taken, failed = got
        # Tasks with arguments that could not be unpickled, by task id.
        bad = None if failed is None else {taken[i][TASK_ID]: excs for i, excs in failed.items()}
        # Claim the call tasks before running them; skip those the caller
        # cancelled first (their futures are settled already).
        calls = [t[TASK_ID] for t in taken if t[TASK_KIND] == CALL]
        if calls:
            refused = _task_start(table, calls)
            if refused is not None:
                taken = [t for t in taken if t[TASK_KIND] != CALL or t[TASK_ID] not in refused]
                if not taken:
                    continue
        start = last = clock()
        results = []
        names = []
        for task in taken:
            task_id, kind, _module, qualname, _payload, _kwargs = task
            excs = None if bad is None else bad.get(task_id)
            if kind == GROUP:
                results.append(_run_group(task, tasks, out, abort, clock, excs))
            elif excs is not None:
                results.append(_bad_task(task, excs))
            else:
                results.append(_run_task(task))
            names.append(qualname)
            now = clock()
            if now - last > _BATCH_SECONDS:
                # A task ran long: deliver what is done instead of holding it
                # behind the rest of the batch.
                _send(out, results, names)
                results = []
                names = []
                last = now
        if results:
            _send(out, results, names)
        per_task = (clock() - start) / len(taken)
        batch = max(1, min(_MAX_BATCH, int(_BATCH_SECONDS / per_task) if per_task > 0 else _MAX_BATCH))


def worker_main(config_cid: int, result_cid: int, main_path: str | None) -> None:
    """Run one call for :class:`xchannels.Worker` and put its result
    (``_protocol.worker_ok`` / ``worker_failed``); the config channel holds
    a ``_protocol.worker_config`` message."""
    _setup(main_path)
    out = Channel.from_id(result_cid)
    (_code, module, qualname, args, kwargs), failures = _receive_config(config_cid)
    if failures:
        out.put(worker_failed(encode_exception(_argument_error(qualname, args, kwargs, failures))))
        return
    try:
        value = _call(module, qualname, args, kwargs)
    except BaseException as exc:  # reported, like the pool's tasks
        out.put(worker_failed(encode_exception(exc)))
        return
    try:
        out.put(worker_ok(value))
    except _xchannels.ChannelError:
        raise
    except BaseException as exc:
        out.put(worker_failed(encode_exception(result_error(qualname, value, exc, out))))
