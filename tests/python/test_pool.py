"""tests/python/test_pool.py: xchannels.Pool (python/xchannels/_pool.py,
_bootstrap.py, _interp.py), with tasks running in real own-GIL
sub-interpreters. xchannels.Worker has its own file, test_worker.py.

Task functions live in pool_script.py, which workers import by name (they
adopt the parent's sys.path, where conftest.py put this folder).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import subprocess
import sys
import textwrap
import time

import pytest

import pool_script as ps
import subinterp
import xchannels

HERE = os.path.dirname(os.path.abspath(__file__))
# Children import the same xchannels as this process (the installed package
# under make test, the source tree under PYTHONPATH=python).
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(xchannels.__file__)))


@pytest.fixture(scope="module")
def pool():
    """One pool shared by the tests that leave it usable (the default
    pool: what does not travel natively is pickled)."""
    with xchannels.Pool(2) as p:
        yield p


@pytest.fixture(scope="module")
def strict_pool():
    """A strict pool (fallback=None): what does not travel natively is
    refused."""
    with xchannels.Pool(2, fallback=None) as p:
        yield p


@pytest.fixture(params=["default", "strict"])
def either_pool(request, pool, strict_pool):
    """The default pool, then the strict one."""
    return pool if request.param == "default" else strict_pool


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE, HERE, env.get("PYTHONPATH", "")])
    return env


# ---- basics -------------------------------------------------------------------


def test_pool_is_an_executor():
    assert issubclass(xchannels.Pool, concurrent.futures.Executor)
    assert issubclass(xchannels.BrokenPool, concurrent.futures.BrokenExecutor)


def test_submit(pool):
    assert pool.submit(ps.square, 12).result(timeout=30) == 144


def test_submit_kwargs_travel_as_pairs(pool):
    assert pool.submit(ps.add, 1, b=2, c=3).result(timeout=30) == 6
    assert pool.submit(ps.add, 1, c=10).result(timeout=30) == 11


def test_values_round_trip(pool):
    big = 3**200
    buf = xchannels.SharedBuffer(b"x" * 100_000)
    got = pool.submit(ps.echo, None, True, big, -0.0, "é\U0001f600", b"\0", (1, (2,)), buf).result(
        timeout=30
    )
    assert got == (None, True, big, -0.0, "é\U0001f600", b"\0", (1, (2,)), buf)
    assert type(got[1]) is bool


def test_tasks_run_in_subinterpreters_of_this_process(pool):
    pid, thread, sys_id = pool.submit(ps.interp_info).result(timeout=30)
    assert pid == os.getpid()
    assert sys_id != str(id(sys))  # another interpreter has its own sys module


def test_builtin_functions_travel(pool):
    assert pool.submit(pow, 2, 100).result(timeout=30) == 2**100
    assert pool.submit(str.upper, "abc").result(timeout=30) == "ABC"


def test_static_and_class_methods_travel(pool):
    assert pool.submit(ps.Methods.static, 1).result(timeout=30) == 2
    assert pool.submit(ps.Methods.klass, 2).result(timeout=30) == "Methods:2"


def test_many_small_tasks(pool):
    futures = [pool.submit(ps.square, i) for i in range(3000)]
    assert [f.result(timeout=60) for f in futures] == [i * i for i in range(3000)]


def test_default_workers_is_cpu_count():
    with xchannels.Pool() as p:
        assert p.workers == (os.cpu_count() or 1)
        assert p.submit(ps.square, 3).result(timeout=30) == 9


@pytest.mark.parametrize("workers", [0, -1, 1.5])
def test_bad_worker_count(workers):
    with pytest.raises(ValueError):
        xchannels.Pool(workers)


# ---- map ---------------------------------------------------------------------------


@pytest.mark.parametrize("chunksize", [1, 3, 7, 1000])
def test_map_keeps_order(pool, chunksize):
    n = 200
    assert list(pool.map(ps.square, range(n), chunksize=chunksize)) == [i * i for i in range(n)]


def test_map_several_iterables_and_empty(pool):
    assert list(pool.map(ps.add, [1, 2, 3], [10, 20, 30, 40])) == [11, 22, 33]
    assert list(pool.map(ps.add, [1, 2, 3], [10, 20, 30], chunksize=2)) == [11, 22, 33]
    assert list(pool.map(ps.square, [])) == []


def test_map_chunk_error_raises_at_its_place(pool):
    it = pool.map(ps.fail_custom, [1, 2], chunksize=2)
    with pytest.raises(ps.CustomError):
        next(it)


def test_map_timeout(pool):
    it = pool.map(ps.sleep_for, [0.5], timeout=0.05)
    with pytest.raises(TimeoutError):
        next(it)


# map(chunksize=1) over many calls groups them into MULTI tasks (one message
# per group, one outcome per call); these tests use enough calls for groups.


def test_grouped_map_keeps_per_call_outcomes(either_pool):
    pool = either_pool
    n = 1000  # groups of min(64, 1000 // 16) = 62 calls
    it = pool.map(ps.square_or_fail, range(n))
    got = []
    with pytest.raises(xchannels.NotShareableError, match=r"^the return value of square_or_fail\(\) cannot be sent back from the worker: function (is not shareable|cannot be pickled)"):
        for _ in range(n):
            got.append(next(it))
    assert got == [i * i for i in range(77)]  # every result before the bad one
    # The calls around a failing one keep their own results.
    it = pool.map(ps.square_or_fail, range(78, n))
    assert [next(it) for _ in range(99 - 78)] == [i * i for i in range(78, 99)]
    with pytest.raises(ps.CustomError) as info:
        next(it)
    assert info.value.args == (99, "ninety-nine")
    # (Calls 62..76 and 78..98 share a group with the failing call: unlike a
    # CHUNK, whose failure loses the whole chunk, they were each yielded.)


def test_grouped_map_hands_long_calls_back_to_idle_workers():
    # 1024 calls in groups of 64 (1024 // 16): the first group holds every
    # slow call. Without hand-back the worker that took it would run all 64
    # while the other finished the fast groups and idled; with it, the rest
    # of the group goes back to the queue after the first slow call, and
    # both workers run slow calls. The order of results still holds.
    # A pool of its own: the shared one may still be busy with an earlier
    # test's abandoned task.
    seconds = [0.005] * 64 + [0.0] * 960
    with xchannels.Pool(2) as pool:
        ids = list(pool.map(ps.slow_interp_id, seconds))
        assert len(ids) == 1024
        assert len(set(ids[:64])) == 2, "one worker ran every slow call"
        assert list(pool.map(ps.square, range(5000))) == [i * i for i in range(5000)]


def test_grouped_map_cancel_and_shutdown():
    p = xchannels.Pool(1)
    gate = xchannels.Channel()
    hung = p.submit(ps.wait_on, gate.id, 60.0)
    time.sleep(0.2)  # the worker holds the hung task
    it = p.map(ps.square, range(500))  # queued as groups
    p.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(concurrent.futures.CancelledError):
        next(it)
    gate.put("go")
    assert hung.result(timeout=30) == "go"
    p.shutdown(wait=True)
    # A group that runs long while the pool shuts down cannot be handed
    # back (the task channel is closed): its worker runs it to the end.
    p = xchannels.Pool(1)
    it = p.map(ps.sleep_for, [0.01] * 40)  # groups of 5 (40 // 8)
    p.shutdown(wait=True)
    assert list(it) == [0.01] * 40


def test_grouped_map_streams_results_of_long_groups():
    # One worker, groups of 40 calls of 5 ms (320 // 8): the first result
    # arrives after a few calls, not after its whole group of 40 ran.
    ran = xchannels.Channel()
    with xchannels.Pool(1) as p:
        it = p.map(ps.sleep_and_count, [ran.id] * 320, [0.005] * 320)
        next(it)
        assert ran.qsize() < 20, f"first result only after {ran.qsize()} calls"
        assert sum(1 for _ in it) == 319


def test_cancel_stops_a_group_a_worker_holds():
    # 512 calls of 20 ms in groups of 64: the worker holds the first group
    # when the pool is cancelled. It stops after the call in progress (the
    # rest of its group is cancelled, not run), so shutdown returns in
    # about one call and the iterator yields only what ran.
    p = xchannels.Pool(1)
    it = p.map(ps.sleep_for, [0.02] * 512)
    got = [next(it)]  # the worker holds the first group (on a loaded machine too)
    p.shutdown(wait=True, cancel_futures=True)
    with pytest.raises(concurrent.futures.CancelledError):
        for x in it:
            got.append(x)
    assert 1 <= len(got) < 20, len(got)


def test_broken_pool_stops_the_groups_workers_hold():
    # One worker's initializer fails after 0.3 s while the other runs a
    # group of 64 calls of 20 ms: the pool breaks, and that worker stops
    # within a call instead of finishing its group. Every call that runs
    # puts a token in `ran`.
    token, ran = xchannels.Channel(), xchannels.Channel()
    token.put(1)
    p = xchannels.Pool(2, initializer=ps.fail_after_token_taken, initargs=(token.id,))
    it = p.map(ps.sleep_and_count, [ran.id] * 1024, [0.02] * 1024)
    with pytest.raises(xchannels.BrokenPool):
        list(it)
    p.shutdown(wait=True)
    assert ran.qsize() < 40, f"{ran.qsize()} calls ran: the group was not stopped"


def test_map_bad_chunksize(pool):
    with pytest.raises(ValueError):
        pool.map(ps.square, [1], chunksize=0)


# ---- errors ----------------------------------------------------------------------------


def test_builtin_exception_keeps_type_and_remote_traceback(pool):
    exc = pool.submit(ps.fail_builtin, "missing").exception(timeout=30)
    assert type(exc) is KeyError and exc.args == ("missing",)
    tb = ps.remote_tb(exc)
    assert "Traceback (most recent call last)" in tb
    assert "pool_script.py" in tb and "fail_builtin" in tb
    assert "KeyError: 'missing'" in tb
    assert "_bootstrap.py" not in tb  # the pool's own frames are left out


def test_importable_custom_exception_is_rebuilt(pool):
    with pytest.raises(ps.CustomError) as info:
        pool.submit(ps.fail_custom, 7).result(timeout=30)
    assert info.value.code == 7 and info.value.text == "custom failure 7"
    assert "fail_custom" in ps.remote_tb(info.value)


def test_unrebuildable_exception_becomes_remote_error(pool):
    exc = pool.submit(ps.fail_unrebuildable).exception(timeout=30)
    assert type(exc) is xchannels.RemoteError
    assert exc.type_name == "pool_script.Unrebuildable"
    assert "fixed" in exc.message
    assert "Unrebuildable" in ps.remote_tb(exc)


def test_exception_with_unshareable_args_becomes_remote_error(pool):
    exc = pool.submit(ps.fail_unshareable_args).exception(timeout=30)
    assert type(exc) is xchannels.RemoteError
    assert exc.type_name == "ValueError" and "with an object" in exc.message
    assert "fail_unshareable_args" in ps.remote_tb(exc)


def test_oserror_is_rebuilt_with_its_subclass(pool, tmp_path):
    exc = pool.submit(ps.fail_oserror, str(tmp_path / "missing")).exception(timeout=30)
    assert type(exc) is FileNotFoundError and exc.errno == 2


def test_exception_notes_travel(pool):
    exc = pool.submit(ps.fail_noted).exception(timeout=30)
    assert type(exc) is ValueError and exc.__notes__ == ["remote note"]


def test_missing_function_in_worker_is_the_task_error(pool):
    # The function exists here but not under that name in the worker.
    exc = pool.submit(ps.square, 1)  # warm
    exc.result(timeout=30)
    ps.late_function = ps.square  # not a real module attribute in workers
    try:

        def late_function(x: int) -> int:
            return x

        late_function.__module__ = "pool_script"
        late_function.__qualname__ = "late_function"
        ps.late_function = late_function
        err = pool.submit(late_function, 1).exception(timeout=30)
        assert type(err) is AttributeError and "late_function" in str(err)
    finally:
        del ps.late_function


def test_pool_reusable_after_task_errors(pool):
    for _ in range(3):
        assert pool.submit(ps.fail_builtin, "k").exception(timeout=30) is not None
    assert list(pool.map(ps.square, range(10))) == [i * i for i in range(10)]


def test_system_exit_in_task_is_its_exception(pool):
    exc = pool.submit(ps.system_exit, 3).exception(timeout=30)
    assert type(exc) is SystemExit and exc.code == 3
    # the worker survived: both workers still answer
    assert list(pool.map(ps.square, range(20))) == [i * i for i in range(20)]


def test_recursion_error_in_task_is_its_exception(pool):
    exc = pool.submit(ps.recurse, 0).exception(timeout=30)
    assert type(exc) is RecursionError
    assert "recurse" in ps.remote_tb(exc)
    assert pool.submit(ps.square, 5).result(timeout=30) == 25


# ---- what cannot travel ------------------------------------------------------------------


def _nested() -> object:
    def inner(x: int) -> int:
        return x

    return inner


class _Holder:
    def method(self) -> int:
        return 1


@pytest.mark.parametrize(
    "fn, words",
    [
        (lambda x: x, "lambda"),
        (_nested(), "nested function or closure"),
        (functools.partial(ps.add, 1), "functools.partial"),
        (_Holder().method, "bound method"),
    ],
    ids=["lambda", "closure", "partial", "bound-method"],
)
def test_function_that_cannot_travel_fails_at_submit(pool, fn, words):
    with pytest.raises(TypeError, match=words):
        pool.submit(fn, 1)
    with pytest.raises(TypeError, match=words):
        pool.map(fn, [1])
    with pytest.raises(TypeError, match=words):
        xchannels.Worker(target=fn)
    assert pool.submit(ps.square, 2).result(timeout=30) == 4


def test_unpicklable_argument_raises_from_submit(pool):
    # The default pool pickles what does not travel natively; what cannot be
    # pickled either raises at once, naming the argument and the place.
    with pytest.raises(xchannels.NotShareableError) as info:
        pool.submit(ps.echo, 1, [2, 3, ps.unpicklable()])
    assert str(info.value).startswith(
        "argument 1 of echo() cannot be sent to a worker interpreter: item [2]: function cannot be pickled"
    )
    with pytest.raises(xchannels.NotShareableError, match="^keyword argument 'c' of add"):
        pool.submit(ps.add, 1, c=ps.unpicklable())
    with pytest.raises(xchannels.NotShareableError, match=r"^item 1 of map\(square\): argument 0 .*cannot be pickled"):
        pool.map(ps.square, [1, (2, [ps.unpicklable()]), 3])
    assert pool.submit(ps.square, 4).result(timeout=30) == 16


def test_unshareable_argument_raises_from_submit(strict_pool):
    pool = strict_pool
    # Paths start at the user's value, never at the task message's layout.
    with pytest.raises(xchannels.NotShareableError) as info:
        pool.submit(ps.echo, 1, [2, 3, object()])
    assert str(info.value).startswith(
        "argument 1 of echo() cannot be sent to a worker interpreter: item [2]: object is not shareable"
    )
    with pytest.raises(xchannels.NotShareableError) as info:
        pool.submit(ps.echo, 1, (2, (3, object())))
    assert str(info.value).startswith(
        "argument 1 of echo() cannot be sent to a worker interpreter: item [1][1]: object is not shareable"
    )
    with pytest.raises(xchannels.NotShareableError, match="^keyword argument 'c' of add"):
        pool.submit(ps.add, 1, c=object())
    with pytest.raises(xchannels.NotShareableError) as info:
        pool.map(ps.square, [1, (2, [object()]), 3])
    assert str(info.value).startswith(
        "item 1 of map(square): argument 0 cannot be sent to a worker interpreter: item [1][0]: object is not shareable"
    )
    with pytest.raises(xchannels.NotShareableError, match=r"^item 1 of map\(square\): argument 0 "):
        pool.map(ps.square, [1, object(), 3], chunksize=2)
    assert pool.submit(ps.square, 4).result(timeout=30) == 16


@pytest.mark.parametrize("fallback", [None, "pickle"])
@pytest.mark.parametrize("chunksize", [1, 3])
def test_long_map_with_a_late_unshareable_argument_runs_nothing(chunksize, fallback):
    # A long map is sent in slices (the workers start while the rest is
    # encoded), but it is still all or none: a bad argument near the end
    # means no call runs (nor, with the fallback, one that cannot be pickled).
    marks = xchannels.Channel()
    with xchannels.Pool(1, fallback=fallback) as pool:
        import xchannels._map as xmap

        assert len(xmap.slices(300, 1)) > 1
        args = [marks.id] * 300
        items = list(range(299)) + [ps.unpicklable()]
        with pytest.raises(xchannels.NotShareableError, match=r"^item 299 of map\(mark\): argument 1 "):
            pool.map(ps.mark, args, items, chunksize=chunksize)
        assert pool.submit(ps.square, 3).result(timeout=30) == 9  # the worker drained its queue
        assert marks.qsize() == 0
        # and a long map that can travel runs in full, in order
        assert list(pool.map(ps.mark, args, range(300), chunksize=chunksize)) == list(range(300))


def test_unshareable_result_fails_that_future(either_pool):
    pool = either_pool
    with pytest.raises(xchannels.NotShareableError) as info:
        pool.submit(ps.return_object).result(timeout=30)
    assert str(info.value).startswith(
        "the return value of return_object() cannot be sent back from the worker: item [1]['k']: function "
    )
    pickled = pool._state.tasks.fallback == "pickle"
    assert str(info.value).split(": function ")[1].startswith("cannot be pickled" if pickled else "is not shareable")
    assert pool.submit(ps.return_list).result(timeout=30) == [1, 2, 3]
    assert pool.submit(ps.square, 6).result(timeout=30) == 36


def test_interactive_main_function_is_refused():
    code = textwrap.dedent(
        """
        import xchannels
        def f(x):
            return x
        with xchannels.Pool(1) as p:
            try:
                p.submit(f, 1)
            except TypeError as e:
                print("TypeError:", e)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "TypeError:" in out.stdout and "interactive session or a `python -c`" in out.stdout


# ---- __main__ ----------------------------------------------------------------------------------


def test_main_script_functions_travel_like_spawn():
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "pool_script.py")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=HERE,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "submit 50" in lines
    assert "map [1, 2, 5, 10, 17]" in lines
    assert "error __main__ MainError raised in a __main__ function" in lines
    assert "same class True" in lines
    assert lines.count("main block ran") == 1  # the guarded block ran once
    assert lines.count("module body ran as __main__") == 1
    # each worker that needed a __main__ function imported the script once
    assert 1 <= lines.count("module body ran as __mp_main__") <= 2
    assert lines[-1] == "done"


def test_unguarded_pool_in_main_script_is_refused(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            """
            import xchannels
            def f(x):
                return x + 1
            pool = xchannels.Pool(1)
            try:
                print("result", pool.submit(f, 1).result(timeout=30))
            except RuntimeError as e:
                print("refused", "if __name__ == '__main__'" in str(e))
            pool.shutdown()
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["refused True"]


# ---- initializer -------------------------------------------------------------------------------


def test_initializer_runs_in_each_worker_with_initargs():
    ch = xchannels.Channel()
    with xchannels.Pool(1, initializer=ps.initialize, initargs=(1, "two", ch)) as p:
        got = p.submit(ps.initialized).result(timeout=30)
    assert got[:2] == (1, "two") and got[2].id == ch.id


def test_initializer_failure_breaks_the_pool():
    with xchannels.Pool(1, initializer=ps.fail_initializer) as p:
        fut = p.submit(ps.square, 2)
        with pytest.raises(xchannels.BrokenPool, match="initializer failed on purpose") as info:
            fut.result(timeout=30)
        assert "fail_initializer" in ps.remote_tb(info.value)
        with pytest.raises(xchannels.BrokenPool):
            p.submit(ps.square, 2)


def test_unshareable_initargs_raise_at_construction():
    with pytest.raises(xchannels.NotShareableError, match="is not shareable"):
        xchannels.Pool(1, initializer=ps.initialize, initargs=(object(),), fallback=None)
    with pytest.raises(xchannels.NotShareableError, match="cannot be pickled"):
        xchannels.Pool(1, initializer=ps.initialize, initargs=(ps.unpicklable(),))


# ---- shutdown and failures -------------------------------------------------------------------------


def test_shutdown_waits_for_queued_tasks_then_refuses():
    p = xchannels.Pool(2)
    futures = [p.submit(ps.sleep_for, 0.01) for _ in range(6)]
    p.shutdown(wait=True)
    assert all(f.done() and f.result() == 0.01 for f in futures)
    with pytest.raises(RuntimeError, match="after shutdown"):
        p.submit(ps.square, 1)
    p.shutdown()  # idempotent


def test_shutdown_cancel_futures_with_a_hung_worker_returns_promptly():
    gate = xchannels.Channel()
    p = xchannels.Pool(1)
    hung = p.submit(ps.wait_on, gate.id, 60.0)
    time.sleep(0.2)  # let the worker take it
    queued = [p.submit(ps.square, i) for i in range(5)]
    start = time.monotonic()
    p.shutdown(wait=False, cancel_futures=True)
    assert time.monotonic() - start < 1.0
    assert all(f.cancelled() for f in queued)
    assert not hung.done()
    gate.put("released")
    assert hung.result(timeout=30) == "released"
    p.shutdown(wait=True)


def test_worker_loop_death_breaks_the_pool_without_deadlock():
    p = xchannels.Pool(1)
    first = p.submit(ps.kill_task_loop)
    later = [p.submit(ps.sleep_for, 0.01) for _ in range(3)]
    for fut in [first, *later]:
        with pytest.raises(xchannels.BrokenPool, match="task loop sabotaged") as info:
            fut.result(timeout=30)
        assert "task loop sabotaged" in ps.remote_tb(info.value)
    with pytest.raises(xchannels.BrokenPool):
        p.submit(ps.square, 1)
    p.shutdown(wait=True)


def test_interpreters_are_destroyed_at_shutdown():
    before = subinterp.live_interpreters()
    with xchannels.Pool(2) as p:
        list(p.map(ps.square, range(10)))
        assert subinterp.live_interpreters() >= before + 1
    assert subinterp.live_interpreters() == before


def test_dropped_pool_lets_workers_exit():
    import gc
    import threading

    p = xchannels.Pool(1)
    fut = p.submit(ps.square, 9)
    threads = list(p._threads)
    del p
    gc.collect()
    assert fut.result(timeout=30) == 81
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive()
    assert threading.active_count() >= 1


def test_asyncio_wrap_future(pool):
    async def main() -> list[int]:
        futures = [asyncio.wrap_future(pool.submit(ps.square, i)) for i in range(5)]
        return await asyncio.gather(*futures)

    assert asyncio.run(main()) == [0, 1, 4, 9, 16]

    async def via_loop() -> int:
        return await asyncio.get_running_loop().run_in_executor(pool, ps.square, 7)

    assert asyncio.run(via_loop()) == 49


def _occupy_workers(pool, n):
    """Keep every worker busy in a call until gate gets n items; returns
    (gate, futures) once all n calls have started, so tasks submitted next
    stay queued (a worker may take several queued tasks at once)."""
    started, gate = xchannels.Channel(), xchannels.Channel()
    blockers = []
    for _ in range(n):  # one at a time: a worker may take all queued tasks at once
        blockers.append(pool.submit(ps.started_then_wait, started.id, gate.id, 30.0))
        started.get(timeout=30)
    return gate, blockers


def test_cancel_pending_future_then_result_is_dropped(pool):
    gate, blockers = _occupy_workers(pool, 2)
    fut = pool.submit(ps.square, 3)
    assert fut.cancel()
    gate.put_many(["go", "go"])
    assert [b.result(timeout=30) for b in blockers] == ["go", "go"]
    assert fut.cancelled()
    assert pool.submit(ps.square, 3).result(timeout=30) == 9


def test_running_task_cannot_be_cancelled_and_says_it_runs(pool):
    started, gate = xchannels.Channel(), xchannels.Channel()
    fut = pool.submit(ps.started_then_wait, started.id, gate.id, 30.0)
    started.get(timeout=30)
    assert fut.running()
    assert not fut.cancel()  # concurrent.futures: False once it runs
    assert not fut.cancelled() and fut.running()
    gate.put("go")
    assert fut.result(timeout=30) == "go"
    assert not fut.running() and not fut.cancel()


def test_queued_task_is_not_running_and_cancel_means_it_never_runs():
    before = xchannels._xchannels._task_claims()
    marks = xchannels.Channel()
    with xchannels.Pool(2) as pool:
        gate, blockers = _occupy_workers(pool, 2)
        fut = pool.submit(ps.mark, marks.id, 1)
        assert not fut.running()
        assert fut.cancel() and fut.cancel() and fut.cancelled()
        after = pool.submit(ps.mark, marks.id, 2)
        gate.put_many(["go", "go"])
        assert [b.result(timeout=30) for b in blockers] == ["go", "go"]
        assert after.result(timeout=30) == 2
    # shut down cleanly (not broken by the task that never ran), and the
    # cancelled call never ran
    assert marks.get_many(10, block=False) == [2]
    assert xchannels._xchannels._task_claims() == before


def test_cancel_racing_the_workers_is_truthful():
    # Every future either ran (its mark arrived, its result is there) or was
    # cancelled (no mark): never both, never neither. Repeated until the
    # race really happened (some of each), checked every time.
    mixed = 0
    for _attempt in range(10):
        marks = xchannels.Channel()
        n = 2000
        lag = _attempt % 3  # cancel each future this many submits later
        with xchannels.Pool(2) as pool:
            pool.submit(ps.square, 1).result(timeout=30)  # workers are up
            futs, said = [], []
            for i in range(n):
                futs.append(pool.submit(ps.mark, marks.id, i))
                if i >= lag:
                    said.append(futs[i - lag].cancel())
            said.extend(f.cancel() for f in futs[len(said) :])
        ran = set()
        while True:
            try:
                ran.update(marks.get_many(1024, block=False))
            except xchannels.ChannelEmpty:
                break
        assert [f.cancelled() for f in futs] == said
        assert ran == {i for i in range(n) if not said[i]}
        assert all(f.result(timeout=0) == i for i, f in enumerate(futs) if not said[i])
        if 0 < sum(said) < n:
            mixed += 1
            if mixed == 2:
                break
    assert mixed == 2, "the race never happened"


# ---- benchmark module ------------------------------------------------------------------------


def test_bench_pool_imports_without_side_effects():
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(HERE)), "benchmarks", "python", "bench_pool.py")
    spec = importlib.util.spec_from_file_location("bench_pool_under_test", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    before = list(sys.path)
    spec.loader.exec_module(mod)
    assert sys.path == before
    assert callable(mod.run) and mod.work(10) == 3628800
    # Every worker imports it to find its task, inside the timed region: a
    # refactor once made that import pull in multiprocessing and
    # concurrent.futures, 15 ms on every pool's start-up figure.
    assert mod._imported_with_me() == []


# ---- values: containers, and the pickle fallback -------------------------------------------


def test_lists_and_dicts_travel_both_ways(pool):
    record = {"name": "a", "scores": [1, 2.5], "tags": {"x"}, "pos": (1, 2)}
    assert pool.submit(ps.echo, record, [record]).result(timeout=30) == (record, [record])
    assert list(pool.map(ps.echo, [[1], {"k": 2}])) == [([1],), ({"k": 2},)]
    assert pool.submit(ps.return_list).result(timeout=30) == [1, 2, 3]


def test_namedtuple_result_is_a_tuple_without_the_fallback(strict_pool):
    got = strict_pool.submit(ps.return_namedtuple, 1, 2).result(timeout=30)
    assert type(got) is tuple and got == (1, 2)


def test_pool_and_worker_with_the_pickle_fallback():
    import fractions

    with xchannels.Pool(1, fallback="pickle") as p:
        assert p.submit(ps.echo, fractions.Fraction(1, 3)).result(timeout=30) == (fractions.Fraction(1, 3),)
        got = p.submit(ps.return_namedtuple, 1, 2).result(timeout=30)
        assert type(got) is ps.Point and got == ps.Point(1, 2)
        fracs = [fractions.Fraction(i, 7) for i in range(50)]
        assert list(p.map(ps.echo, fracs)) == [(f,) for f in fracs]  # a long map, pickled
        with pytest.raises(xchannels.NotShareableError, match="cannot be pickled"):
            p.submit(ps.echo, lambda: 1)
        assert p.submit(ps.square, 3).result(timeout=30) == 9
    w = xchannels.Worker(target=ps.return_namedtuple, args=(3, 4), fallback="pickle")
    w.start()
    assert type(w.result(timeout=30)) is ps.Point
    with pytest.raises(ValueError, match="fallback"):
        xchannels.Pool(1, fallback="json")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fallback"):
        xchannels.Worker(target=ps.square, args=(1,), fallback="json")  # type: ignore[arg-type]


# ---- first use under racing threads ------------------------------------------------
# Both run in a fresh process (what they guard is made once per process),
# and slow the guarded step down with a sleep, so that the 8 threads
# started at once on a barrier interleave inside it as a thread switch can.

_ATEXIT_RACE = """
import sys, threading, time
import xchannels._pool as p
real = threading._register_atexit
def slow_register(*a):
    time.sleep(0.01)
    real(*a)
threading._register_atexit = slow_register
for _ in range(5):
    p._atexit_registered = False
    threading._threading_atexits.clear()
    barrier = threading.Barrier(8)
    def hit():
        barrier.wait()
        p._register_atexit()
    ts = [threading.Thread(target=hit) for _ in range(8)]
    for t in ts: t.start()
    for t in ts: t.join()
    n = len(threading._threading_atexits)  # cleared above: ours alone
    assert n == 1, f"registered {n} times"
threading._threading_atexits.clear()
print("ok")
"""


def test_pools_started_at_once_register_one_exit_hook():
    out = subprocess.run([sys.executable, "-c", _ATEXIT_RACE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


_DATETIME_RACE = """
import sys, threading, time
assert "_datetime" not in sys.modules
class SlowDatetime:  # the import of _datetime takes a while
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "_datetime":
            time.sleep(0.05)
        return None
sys.meta_path.insert(0, SlowDatetime)
from xchannels import _interp
barrier = threading.Barrier(8)
early, made = [], []
def hit():
    barrier.wait()
    iid = _interp.create()
    if "_datetime" not in sys.modules:
        early.append(iid)
    made.append(iid)
ts = [threading.Thread(target=hit) for _ in range(8)]
for t in ts: t.start()
for t in ts: t.join()
for iid in made:
    _interp.destroy(iid)
assert not early, f"{len(early)} interpreters made before the main one owned _datetime"
print("ok")
"""


@pytest.mark.skipif(
    sys.version_info < (3, 13),
    reason="the _datetime priming guards a 3.13+ bug (gh-136421); 3.12 has no priming",
)
def test_no_interpreter_is_made_before_datetime_is_primed():
    # _interp.create() first imports _datetime in the main interpreter
    # (3.13's static-type bug); a flag set before that import let other
    # threads create interpreters while it was still running.
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", _DATETIME_RACE], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ---- map(buffersize=...): 3.14's Executor.map, on every Python ---------------------


def test_map_buffersize_reads_an_endless_iterable_lazily(pool):
    import itertools

    out = pool.map(ps.square, itertools.count(), buffersize=4)
    assert list(itertools.islice(out, 50)) == [i * i for i in range(50)]
    out.close()  # abandoned: what it had sent is dropped, the pool goes on
    assert pool.submit(ps.square, 7).result(timeout=60) == 49


def test_map_buffersize_keeps_at_most_that_many_tasks_in_flight(pool):
    sent = []

    def calls():
        for i in range(20):
            sent.append(i)
            yield i

    out = pool.map(ps.square, calls(), buffersize=3)
    assert len(sent) == 3  # sent before map returns, no more
    assert next(out) == 0
    assert len(sent) == 4  # one more for the one yielded
    assert list(out) == [i * i for i in range(1, 20)]


@pytest.mark.parametrize("chunksize", [1, 4])
def test_map_buffersize_keeps_order_errors_and_chunks(pool, chunksize):
    out = list(pool.map(ps.square, range(30), chunksize=chunksize, buffersize=2))
    assert out == [i * i for i in range(30)]
    it = pool.map(ps.square_or_fail, range(95, 110), chunksize=chunksize, buffersize=2)
    if chunksize == 1:  # a chunk's error loses the chunk, as without buffersize
        assert [next(it) for _ in range(4)] == [i * i for i in range(95, 99)]
    with pytest.raises(ps.CustomError):
        list(it)


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_map_refuses_a_bad_buffersize(pool, bad, exc):
    with pytest.raises(exc, match="buffersize"):
        pool.map(ps.square, range(3), buffersize=bad)


def test_workers_start_as_tasks_arrive():
    # One task needs one interpreter: CPython creates interpreters one after
    # another, and a short `with Pool(n)` block used to pay n creations.
    before = subinterp.live_interpreters()
    with xchannels.Pool(4) as p:
        assert p.submit(ps.square, 3).result(timeout=60) == 9
        assert subinterp.live_interpreters() == before + 1
        # more tasks in flight than workers started: more workers, up to 4
        futs = [p.submit(ps.sleep_for, 0.2) for _ in range(8)]
        for f in futs:
            f.result(timeout=60)
        assert before + 2 <= subinterp.live_interpreters() <= before + 4
        assert p.workers == 4
    assert subinterp.live_interpreters() == before
