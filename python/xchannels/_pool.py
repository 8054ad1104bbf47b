"""python/xchannels/_pool.py: Pool, a concurrent.futures.Executor whose
workers are own-GIL sub-interpreters talking over xchannels (no pickle).

Layout: one task channel shared by every worker (MPMC), one result channel,
one collector thread in the caller that completes futures. Each worker is a
non-daemon thread that creates its interpreter, runs
``_bootstrap.pool_worker`` in it until the task channel is closed and
drained, then destroys it. Workers start on demand, as ThreadPoolExecutor's
threads do: the first with the pool, one more each time the pool has more
tasks in flight than started workers (``Pool._grow``), up to ``workers``.
CPython creates interpreters one after another, not in parallel (3.13: the
creating thread holds the main interpreter's GIL; 3.14/3.15 creations that
overlap take about as long as back to back), so a pool that starts every
worker at once pays that many creations and destructions before a one-task
``with Pool(n)`` block ends. Messages: see ``_protocol``; the worker side is
``_bootstrap``, the ``map`` machinery ``_map``.

Invariants:

- ``_State.pending`` maps the id of every task sent and not yet answered to
  what awaits it: its Future (``submit``) or its ``map`` call's
  ``MapResults``. A GROUP task of k calls stands for the k consecutive ids
  starting at its own, each with its own entry. An entry is added before
  its task is sent, and removed by whoever completes it (collector,
  cancellation, breakage, an abandoned map iterator); a result with no
  entry is dropped.
- The result channel is closed by the last worker thread to exit, after its
  last result; the collector then drains it and exits. So once every worker
  has exited, every answered future is complete.
- A worker thread that sees its task loop end while the task channel is
  still open (or end with an error) sends a ``_protocol.died`` message on
  the result channel after the loop's own results; the collector then marks
  the pool broken, closes and drains the task channel, and fails every
  pending future with BrokenPool. Nothing waits on a worker that hangs
  unless ``shutdown(wait=True)`` is asked to.
- One task's data never ends the collector: it reads leniently
  (``Channel._get_batch``), and a result holding a pickled value that
  cannot be unpickled here fails that call alone
  (``_State.complete_unreceived``). The worker side keeps the same promise
  (see ``_bootstrap``).
- The state object, not the Pool, is what the threads reference, so a Pool
  that is dropped without shutdown is finalized: its task channel is closed
  and its workers exit after the queued tasks. At interpreter exit every live
  pool's task channel is closed before non-daemon threads are joined.

Locking (the caller's threads, the collector thread and the worker-hosting
threads share a ``_State``):

- ``_State.lock`` guards ``next_id`` (task id allocation), ``live`` (worker
  threads started and still running; the last one closes the result
  channel), the starting of workers (``Pool._threads`` grows only under it,
  and never once the pool is shut down or broken, or ``live`` is 0), and the
  transitions of ``broken``/``broken_cause`` (set once) and ``shutdown``
  (set once). Those flags are read without the lock: each only ever goes
  from unset to set, and a reader that misses the change meets the closed
  task channel instead.
- ``_State.pending`` is a dict touched from several threads without a lock:
  each access is one atomic dict operation (``d[k] = v``, ``pop``,
  ``popitem``) under the GIL, and an entry has one remover (whoever pops
  it settles it).
- ``MapResults.cond`` guards its slots (see ``_map``); a Future's own
  condition guards the Future.
- The task claim table (C++, its own mutex) arbitrates between
  ``_TaskFuture.cancel()`` and a worker about to run the task.
- ``_reusable_lock`` guards ``_reusable``, the pool of :func:`reusable_pool`
  (checked, shut down and replaced under it).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from concurrent.futures import BrokenExecutor, CancelledError, Executor, Future, InvalidStateError
from typing import Any, Callable, Iterable, Iterator, Literal, ParamSpec, TypeVar

from xchannels import _bootstrap, _interp, _map
from xchannels._map import MapResults
from xchannels._protocol import CHUNK, DIED, OUTCOMES, call_task, died, pool_config, task_ids
from xchannels._calls import (
    RemoteTraceback,
    alias_main,
    decode_exception,
    explain_unshareable,
    explain_unshareable_map,
    function_reference,
    host_failure,
    kwargs_pairs,
    main_code,
    main_path,
    received_error,
    sys_path,
)
from xchannels._xchannels import (
    Channel,
    ChannelClosed,
    ChannelEmpty,
    NotShareableError,
    _task_cancel,
    _task_forget,
    _task_forget_table,
    _task_running,
    is_shareable,
)

__all__ = ["BrokenPool", "Pool", "reusable_pool"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_RECV_BATCH = 1024  # results per get_many in the collector

# No name is bound in the worker's __main__ (pickles of the caller's script
# look their names up there; see _bootstrap).
_WORKER_CODE = """\
__import__("sys").path[:] = {path!r}
__import__("xchannels._bootstrap", None, None, ["_"]).pool_worker({tasks}, {results}, {config}, {abort}, {main!r})
"""


class BrokenPool(BrokenExecutor):
    """Raised when a worker interpreter of a :class:`Pool` failed outside a
    task (its task loop died, its initializer raised, or its interpreter
    could not be created): every pending future fails with it, and later
    ``submit`` calls raise it. The remote traceback, when there is one, is
    the ``__cause__``.
    """


def _settle(target: Future[Any] | MapResults, tid: int, ok: bool, value: Any) -> None:
    """Complete ``target`` with a result (ok) or an exception instance."""
    if isinstance(target, MapResults):
        target.settle(tid, ok, value)
        return
    try:
        if ok:
            target.set_result(value)
        else:
            target.set_exception(value)
    except InvalidStateError:  # cancelled by its owner meanwhile
        pass


class _TaskFuture(Future[_T]):
    """The future of one :meth:`Pool.submit` task.

    ``cancel()`` and ``running()`` ask the process-wide task claim table
    (``core/include/xchannels/task_claims.h``), where a worker marks each
    call task as started, under one lock, before it runs it: so ``cancel()``
    succeeds only for a task no worker has started (the worker then skips
    it), and ``running()`` is True from the moment a worker started it until
    its outcome is here. The collector settles a future before it forgets
    the task's entry, so ``cancel()`` never succeeds on a task that ran.
    """

    def __init__(self, state: _State, tid: int, name: str) -> None:
        super().__init__()
        self._xc_state = state
        self._xc_tid = tid
        self._xc_name = name  # the function's qualified name, for errors

    def cancel(self) -> bool:
        if self.done():
            return self.cancelled()
        state = self._xc_state
        if not _task_cancel(state.table, self._xc_tid):
            return False  # a worker started it: it runs to its end
        # No worker will run it (one that takes it skips it): no outcome
        # will come, so it leaves the pending map here.
        state.pending.pop(self._xc_tid, None)
        return super().cancel()

    def running(self) -> bool:
        if self.done():
            return False
        return _task_running(self._xc_state.table, self._xc_tid)


def _what(target: Future[Any] | MapResults, tid: int) -> str:
    """What call ``tid`` of ``target`` returns, for an error message."""
    if isinstance(target, MapResults):
        return target.describe(tid)
    return f"the return value of {getattr(target, '_xc_name', 'the task')}()"


def _cancel(target: Future[Any] | MapResults, tid: int) -> None:
    if isinstance(target, MapResults):
        target.settle(tid, False, CancelledError())
    else:
        target.cancel()


class _State:
    """Everything the pool's threads share; see the module invariants."""

    def __init__(self, fallback: Literal["pickle"] | None = None) -> None:
        self.tasks = Channel(fallback=fallback)
        # The pool's id in the task claim table (see _TaskFuture).
        self.table = self.tasks.id
        self.results = Channel(fallback=fallback)
        self.config = Channel(fallback=fallback)
        # Closed (never used otherwise) when the pool's queued work is
        # abandoned: shutdown(cancel_futures=True) or breakage. Workers then
        # stop running the rest of a long map group.
        self.abort = Channel()
        self.pending: dict[int, Future[Any] | MapResults] = {}
        self.lock = threading.Lock()
        self.broken: str | None = None
        self.broken_cause: str | None = None
        self.shutdown = False
        self.live = 0  # worker threads started and not yet exited
        self.next_id = 0

    def alloc(self, count: int) -> int:
        """Reserve ``count`` consecutive task ids; return the first."""
        with self.lock:
            base = self.next_id
            self.next_id += count
        return base

    # -- breakage ------------------------------------------------------------

    def broken_error(self) -> BrokenPool:
        err = BrokenPool(self.broken or "the pool is broken")
        if self.broken_cause:
            err.__cause__ = RemoteTraceback(self.broken_cause)
        return err

    def fail_pending(self) -> None:
        while self.pending:
            try:
                tid, target = self.pending.popitem()
            except KeyError:
                break
            _settle(target, tid, False, self.broken_error())

    def drain_tasks(self) -> list[tuple[Any, ...]]:
        """Take every task still queued (nobody will run them)."""
        taken: list[tuple[Any, ...]] = []
        while True:
            try:
                taken.extend(self.tasks.get_many(_RECV_BATCH, block=False))
            except (ChannelEmpty, ChannelClosed):
                return taken

    def mark_broken(self, index: int, text: str) -> None:
        with self.lock:
            if self.broken is None:
                self.broken = host_failure(
                    text, f"a worker interpreter of the pool (worker {index}) failed"
                )
                self.broken_cause = text
        self.abort.close()
        self.tasks.close()
        self.drain_tasks()
        self.fail_pending()

    # -- threads -------------------------------------------------------------

    def complete(
        self, batch: list[tuple[Any, ...]], failures: dict[int, tuple[BaseException, ...]] | None = None
    ) -> None:
        pending = self.pending
        settled: list[int] = []
        try:
            if failures:
                batch = self.complete_unreceived(batch, failures, settled)
            self._complete(batch, pending, settled)
        finally:
            # After settling: a cancel() that comes between sees the future
            # done, never an absent entry (which it would take as not started).
            if settled:
                _task_forget(self.table, settled)

    def _complete(
        self, batch: list[tuple[Any, ...]], pending: dict[int, Future[Any] | MapResults], settled: list[int]
    ) -> None:
        for tid, status, payload in batch:
            if status == DIED:  # tid: the worker's index; payload: its traceback
                # Results the worker sent before dying may sit behind this
                # message (FIFO holds per producer only): complete them first.
                try:
                    got = self.results._get_batch(_RECV_BATCH, False)
                except ChannelEmpty:
                    got = None
                if got is not None:
                    self.complete(*got)
                self.mark_broken(tid, payload)
                continue
            if status == OUTCOMES:  # one outcome per call, ids tid, tid + 1, ...
                self.complete_group(tid, payload)
                continue
            settled.append(tid)
            target = pending.pop(tid, None)
            if target is None:  # failed by breakage, cancelled or abandoned
                continue
            # status is OK (1) or FAILED (0): the truth value of "ok"
            _settle(target, tid, bool(status), payload if status else decode_exception(payload))

    def complete_unreceived(
        self, batch: list[tuple[Any, ...]], failures: dict[int, tuple[BaseException, ...]], settled: list[int]
    ) -> list[tuple[Any, ...]]:
        """Settle the calls whose outcome holds a pickled value that cannot
        be unpickled here (its exception stands in its place, see
        ``Channel._get_batch``): each fails alone, with an error naming the
        call and the place. Returns the rest of the batch."""
        rest: list[tuple[Any, ...]] = []
        pending = self.pending
        for i, result in enumerate(batch):
            excs = failures.get(i)
            if excs is None:
                rest.append(result)
                continue
            tid, status, payload = result
            if status == OUTCOMES:  # only the calls concerned; the others as usual
                for k, outcome in enumerate(payload):
                    if outcome is not None and any(_bootstrap.place_of(outcome, e) is not None for e in excs):
                        target = pending.pop(tid + k, None)
                        if target is not None:
                            ok, value = outcome
                            _settle(target, tid + k, False, received_error(_what(target, tid + k), ok, value, excs))
                rest.append(result)
            elif status == DIED:  # its payload is text: nothing was pickled
                rest.append(result)
            else:
                settled.append(tid)
                target = pending.pop(tid, None)
                if target is not None:
                    _settle(target, tid, False, received_error(_what(target, tid), bool(status), payload, excs))
        return rest

    def complete_group(self, tid: int, outcomes: tuple[tuple[bool, Any] | None, ...]) -> None:
        """Settle the calls of one OUTCOMES result: a map's run of slots at
        once, under one lock (calls no longer pending are skipped)."""
        pending = self.pending
        run: list[tuple[bool, Any]] = []
        run_start = tid
        run_target: MapResults | None = None
        for i, outcome in enumerate(outcomes):
            target = pending.pop(tid + i, None)
            if not isinstance(target, MapResults) or target is not run_target:
                if run_target is not None and run:
                    run_target.settle_many(run_start, run)
                run, run_start, run_target = [], tid + i, target if isinstance(target, MapResults) else None
            if target is None:
                continue
            if outcome is None:  # cancelled before it ran
                settled: tuple[bool, Any] = (False, CancelledError())
            else:
                ok, payload = outcome
                settled = outcome if ok else (False, decode_exception(payload))
            if run_target is None:  # not a map's: settle alone
                _settle(target, tid + i, *settled)
            else:
                run.append(settled)
        if run_target is not None and run:
            run_target.settle_many(run_start, run)

    def collect(self) -> None:
        """Collector thread: complete futures until the result channel is
        closed and drained."""
        try:
            while True:
                # Lenient: a result that cannot be unpickled here fails its
                # own call (complete_unreceived), never this thread.
                got = self.results._get_batch(_RECV_BATCH)
                if got is None:  # closed and drained
                    break
                self.complete(*got)
        finally:
            # Every worker has exited; whatever is still pending never ran.
            if self.pending and self.broken is None:
                self.broken = "the pool's workers exited before running these tasks"
            self.fail_pending()
            _task_forget_table(self.table)
            _live_states.discard(self)

    def serve(self, index: int, code: str) -> None:
        """Worker thread: host one interpreter for the pool's lifetime."""
        iid: Any = None
        text: str | None = None
        try:
            try:
                iid = _interp.create()
                text = _interp.run(iid, code, filename=f"<xchannels pool worker {index}>")
            except BaseException:
                import traceback

                text = traceback.format_exc()
            if text is None and not self.tasks.closed:
                text = "RuntimeError: the worker's task loop ended while the pool was open\n"
            if text is not None:
                self.results.put(died(index, text))
        finally:
            if iid is not None:
                _interp.destroy_quietly(iid)
            with self.lock:
                self.live -= 1
                last = self.live == 0
            if last:
                self.results.close()

    def close_tasks(self) -> None:
        self.tasks.close()


_live_states: set[_State] = set()
_atexit_registered = False
_atexit_lock = threading.Lock()


def _close_all_at_exit() -> None:
    # Runs before the interpreter joins non-daemon threads: let every pool's
    # workers finish the queued tasks and exit.
    for state in list(_live_states):
        state.close_tasks()


def _register_atexit() -> None:
    # Under a lock: two threads starting their first pools at once would
    # otherwise both register (the registration runs Python code).
    global _atexit_registered
    with _atexit_lock:
        if not _atexit_registered:
            threading._register_atexit(_close_all_at_exit)  # type: ignore[attr-defined]
            _atexit_registered = True


class Pool(Executor):
    """Pool(workers=None, *, initializer=None, initargs=(), fallback='pickle')

    A :class:`concurrent.futures.Executor` whose workers are own-GIL
    sub-interpreters (PEP 684), each on its own thread, created once and
    reused. The first worker starts with the pool, the others as tasks
    arrive (one more whenever more tasks are in flight than workers are
    started), as ThreadPoolExecutor starts its threads. Tasks, arguments and
    results travel as xchannels messages; what does not travel natively is
    pickled (``fallback``), as every executor does.

    Parameters
    ----------
    workers : int, optional
        Number of worker interpreters; default ``os.cpu_count()``.
    initializer : callable, optional
        Called as ``initializer(*initargs)`` in each worker before its first
        task; sent by reference like tasks. If it raises, the pool is broken
        (:class:`BrokenPool`).
    initargs : tuple
        Shareable arguments for ``initializer``.
    fallback : {'pickle', None}
        With ``'pickle'`` (the default), arguments and results that do not
        travel natively (and subclasses of the built-ins, such as
        namedtuples, which then keep their class) are pickled, as
        multiprocessing does; native values inside them stay native, and
        classes of the ``__main__`` script resolve on both sides. With None
        (the strict pool) they raise NotShareableError.

    Raises
    ------
    ValueError
        ``workers`` < 1, or ``fallback`` is not None or ``'pickle'``.
    TypeError
        ``initializer`` cannot travel by reference.
    NotShareableError
        ``initargs`` cannot travel.
    RuntimeError
        Called while a worker imports the ``__main__`` script (guard pool
        creation with ``if __name__ == "__main__":``).

    Notes
    -----
    Functions travel by reference (module and qualified name) and are
    imported in the worker; functions of the ``__main__`` script are
    imported from its file under the name ``__mp_main__``, as
    multiprocessing's spawn does. Workers adopt the caller's ``sys.path``
    at pool creation.

    ``Future.cancel()`` succeeds while the caller has no news of the task;
    a task already taken by a worker still runs and its result is dropped.
    Done-callbacks run on the pool's collector thread: keep them short and
    never wait there on another future of the same pool.

    Thread-safe: every method may be called from any thread.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
        fallback: Literal["pickle"] | None = "pickle",
    ) -> None:
        if _bootstrap.importing_main():
            raise RuntimeError(
                "xchannels.Pool was created while a worker interpreter was "
                "importing the __main__ script. Workers import the script "
                "under the name '__mp_main__' to find its functions, so code "
                "that starts a pool must be guarded with\n"
                "    if __name__ == '__main__':"
            )
        if workers is None:
            workers = os.cpu_count() or 1
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, not {workers!r}")
        init = function_reference(initializer) if initializer is not None else None
        initargs = tuple(initargs)
        self._workers = workers
        if fallback not in (None, "pickle"):
            raise ValueError(f"fallback must be None or 'pickle', not {fallback!r}")
        self._state = state = _State(fallback)
        path = main_path()
        try:
            state.config.put_many([pool_config(main_code(path), init, initargs)] * workers)
        except NotShareableError as exc:
            name = init[1] if init else "initializer"
            raise explain_unshareable(exc, name, initargs, (), fallback) from None
        if fallback is not None:
            alias_main()  # results naming __mp_main__.X resolve here
        code = _WORKER_CODE.format(
            path=sys_path(),
            tasks=state.tasks.id,
            results=state.results.id,
            config=state.config.id,
            abort=state.abort.id,
            main=path,
        )
        self._options = (workers, initializer, initargs, fallback)
        _register_atexit()
        _live_states.add(state)
        self._code = code
        self._collector = _interp.HostThread(state.collect, name="xchannels-pool-collector")
        # Worker threads started so far (see _grow); shutdown joins them.
        self._threads: list[_interp.HostThread] = []
        self._collector.start()
        self._grow(1)
        weakref.finalize(self, _State.close_tasks, state)

    def _grow(self, wanted: int) -> None:
        """Start workers until ``min(wanted, workers)`` are started, unless
        the pool is shut down or broken. Called with the number of tasks in
        flight after they are registered: a task that finds every started
        worker busy (or about to be) gets a new one, as in
        ThreadPoolExecutor. Interpreters are not created in parallel by
        CPython, so starting all at once would make a short-lived pool wait
        for every creation (and destruction) whatever its load."""
        state = self._state
        with state.lock:
            if state.shutdown or state.broken is not None or (self._threads and state.live == 0):
                return
            for i in range(len(self._threads), min(wanted, self._workers)):
                t = _interp.HostThread(state.serve, name=f"xchannels-pool-worker-{i}", args=(i, self._code))
                t.start()  # under the lock: shutdown joins only started threads
                self._threads.append(t)
                state.live += 1

    @property
    def workers(self) -> int:
        """Number of worker interpreters."""
        return self._workers

    def _check_open(self) -> None:
        state = self._state
        if state.broken is not None:
            raise state.broken_error()
        if state.shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def _closed_error(self) -> BaseException:
        state = self._state
        if state.broken is not None:
            return state.broken_error()
        return RuntimeError("cannot schedule new futures after shutdown")

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        """submit(fn, /, *args, **kwargs) -> Future

        Schedule ``fn(*args, **kwargs)`` on a worker and return its future.
        Thread-safe. Never blocks.

        Raises
        ------
        TypeError
            ``fn`` cannot travel by reference (lambda, closure, bound method,
            ``functools.partial``, function of an interactive ``__main__``).
        NotShareableError
            An argument cannot travel; nothing is sent, the pool stays usable.
        BrokenPool
            The pool is broken.
        RuntimeError
            After :meth:`shutdown`.
        """
        module, qualname = function_reference(fn)
        self._check_open()
        pairs = kwargs_pairs(kwargs)
        state = self._state
        tid = state.alloc(1)
        fut: _TaskFuture[_T] = _TaskFuture(state, tid, qualname)
        state.pending[tid] = fut
        try:
            state.tasks.put(call_task(tid, module, qualname, args, pairs))
        except NotShareableError as exc:
            del state.pending[tid]
            raise explain_unshareable(exc, qualname, args, pairs, state.tasks.fallback) from None
        except ChannelClosed:
            state.pending.pop(tid, None)
            raise self._closed_error() from None
        except BaseException:  # what a __reduce__ raised that pickle let through
            state.pending.pop(tid, None)
            raise
        if len(self._threads) < self._workers:
            self._grow(len(state.pending))
        return fut

    def map(
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[_T]:
        """map(fn, *iterables, timeout=None, chunksize=1, buffersize=None) -> Iterator

        Like the built-in ``map``, running the calls on the workers; results
        come back in order. Every task is sent before map returns (in
        batches of messages). With ``chunksize`` > 1 each chunk of that many
        calls travels as one task and its results as one message, which pays
        off for many small calls; an exception then loses the rest of its
        chunk, as with ProcessPoolExecutor. With ``chunksize=1`` a long
        map's calls travel in groups too, but each keeps its own outcome
        (results before a failing call are all yielded), and a worker hands
        the rest of a slow group back to the queue for idle workers.

        With ``buffersize`` (as 3.14's ``Executor.map``), the iterables are
        read lazily and at most ``buffersize`` tasks (calls, or chunks with
        ``chunksize`` > 1) are sent and not yet yielded: the next is sent as
        a result is yielded, so an endless iterable can be mapped. The
        first ``buffersize`` tasks are sent before map returns.

        Raises
        ------
        TimeoutError
            From the iterator, when a result is not ready ``timeout`` seconds
            after the call to map.
        Exception
            From the iterator, a call's exception, when its result is reached
            (the iterator stops there).
        TypeError, NotShareableError, BrokenPool, RuntimeError
            As :meth:`submit`, from map itself (nothing of the map runs when
            an argument cannot travel).
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        _map.check_buffersize(buffersize)
        module, qualname = function_reference(fn)
        self._check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        if buffersize is not None:
            def send(
                kind: int, payloads: list[tuple[Any, ...]], batch: list[tuple[Any, ...]], first: int
            ) -> _map.MapResults:
                return self._send_map(module, qualname, kind, payloads, batch, first)

            return _map.buffered(send, self._state.pending, zip(*iterables), chunksize, buffersize, deadline)
        calls = list(zip(*iterables))
        kind, payloads = _map.plan(calls, chunksize, self._workers)
        results = self._send_map(module, qualname, kind, payloads, calls)
        return _map.iterate(self._state.pending, results, deadline, chunked=kind == CHUNK)

    def _send_map(
        self, module: str, qualname: str, kind: int, payloads: list[tuple[Any, ...]], calls: list[tuple[Any, ...]],
        first: int = 0,
    ) -> _map.MapResults:
        """Send the map's tasks, all or none: either every task is sent, or
        none is and this raises.

        A few tasks go in one put_many, which checks and encodes every task
        before sending any. More tasks are checked first (``is_shareable``
        over all arguments, which copies nothing: about a tenth of encoding
        them), then sent in slices that grow from one task per worker, so
        the workers start on the first tasks while the rest are still being
        encoded here (48 MiB of arguments take tens of milliseconds to
        encode)."""
        state = self._state
        count = _map.slot_count(kind, payloads, len(calls))
        base = state.alloc(count)
        chunk = len(payloads[0]) if kind == CHUNK and payloads else 1
        results = _map.MapResults(base, count, qualname, first, chunk)
        tasks = _map.tasks(base, kind, module, qualname, payloads)
        pending = state.pending
        for i in range(base, base + count):
            pending[i] = results
        if len(self._threads) < self._workers:
            # Before sending: interpreters are created while the tasks are
            # being encoded.
            self._grow(len(pending))
        slices = _map.slices(len(tasks), self._workers)
        try:
            if len(slices) > 1 and not is_shareable(tuple(calls)):
                if state.tasks.fallback is None:
                    raise NotShareableError("an argument cannot travel")
                # With the pickle fallback what is_shareable refuses gets
                # pickled, which may fail: one put_many, all or none. (Native
                # values are sent in slices as on a strict pool; only a
                # subclass of a built-in, pickled on this channel, could
                # still fail in a later slice.)
                slices = [(0, len(tasks))]
            for start, stop in slices:
                state.tasks.put_many(tasks[start:stop] if len(slices) > 1 else tasks)
        except (NotShareableError, ChannelClosed) as exc:
            # Nothing was sent, or (the channel closed midway: shutdown)
            # the tasks sent are the pool's to finish or cancel.
            for i in range(base, base + count):
                pending.pop(i, None)
            if isinstance(exc, ChannelClosed):
                raise self._closed_error() from None
            raise explain_unshareable_map(calls, qualname, state.tasks.fallback) from None
        except BaseException:  # what a __reduce__ raised that pickle let through
            for i in range(base, base + count):
                pending.pop(i, None)
            raise
        return results

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """shutdown(wait=True, *, cancel_futures=False) -> None

        Stop accepting tasks; workers finish the queued tasks, then exit and
        their interpreters are destroyed. Idempotent; thread-safe.

        Parameters
        ----------
        wait : bool
            Wait until every worker has exited and every future is complete.
            With False, return at once (a hung worker is not waited for).
        cancel_futures : bool
            Cancel the futures of tasks that no worker has taken yet (their
            ``map`` iterators raise CancelledError), and the calls of a
            ``map`` group that a worker holds but has not run, once that
            group has run for about 2 ms.
        """
        state = self._state
        with state.lock:
            state.shutdown = True
        if cancel_futures:
            state.abort.close()
            for task in state.drain_tasks():
                for tid in task_ids(task):
                    target = state.pending.pop(tid, None)
                    if target is not None:
                        _cancel(target, tid)
        state.close_tasks()
        if wait:
            me = threading.current_thread()
            for t in self._threads:
                if t is not me:
                    t.join()
            if self._collector is not me:
                self._collector.join()

    def __repr__(self) -> str:
        state = self._state
        status = "broken" if state.broken else ("shut down" if state.shutdown else "running")
        return f"<xchannels.Pool workers={self._workers} {status} pending={len(state.pending)}>"


# ---- the reusable pool ---------------------------------------------------------------

# The process-wide pool of reusable_pool() and the options it was made with;
# both guarded by _reusable_lock.
_reusable: Pool | None = None
_reusable_lock = threading.Lock()


def _same(a: Any, b: Any) -> bool:
    """Options compare equal (identity first; == that raises or is not a
    bool, as NumPy arrays give, counts as different)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:
        return False


def reusable_pool(
    workers: int | None = None,
    *,
    initializer: Callable[..., Any] | None = None,
    initargs: Iterable[Any] = (),
    fallback: Literal["pickle"] | None = "pickle",
) -> Pool:
    """reusable_pool(workers=None, *, initializer=None, initargs=(), fallback='pickle') -> Pool

    A process-wide :class:`Pool`, made on the first call and returned again
    by later calls with the same options, so that code which opens short
    parallel sections often pays the workers' start-up once (as loky's
    ``get_reusable_executor``). A call with other options shuts the current
    one down (without waiting: its queued tasks still run) and makes a new
    one; so does a call after it was shut down or broke. It is shut down at
    interpreter exit, like every pool.

    Parameters are those of :class:`Pool`.

    Notes
    -----
    What it shares across calls is the worker interpreters: module globals,
    caches and ``initializer`` effects in the workers persist from one call
    to the next (tasks of unrelated callers see each other's module state).
    For a fresh pool, create a :class:`Pool` of your own, or call
    ``reusable_pool(...).shutdown()``: the next call makes a new one. Do not
    use it in a ``with`` block, which shuts it down on exit.

    Thread-safe: concurrent first calls make one pool.
    """
    global _reusable
    if workers is None:
        workers = os.cpu_count() or 1
    initargs = tuple(initargs)
    options = (workers, initializer, initargs, fallback)
    with _reusable_lock:
        old = _reusable
        if old is not None:
            state = old._state
            if state.broken is None and not state.shutdown and all(
                _same(a, b) for a, b in zip(old._options, options)
            ):
                return old
        # Made before the old one is shut down: options that Pool refuses
        # raise here and leave the current pool as it was.
        pool = Pool(workers, initializer=initializer, initargs=initargs, fallback=fallback)
        _reusable = pool
        if old is not None:
            old.shutdown(wait=False)
        return pool
