"""tests/python/test_profilers.py: profilers and debuggers that look at every
thread, while worker interpreters run (bindings/profilers.cpp and
python/xchannels/_profilers.py).

CPython's own sys._current_frames() and sys._current_exceptions() walk the
threads of every interpreter on 3.12, 3.13, 3.14 before 3.14.8 and 3.15
before 3.15.0rc3, and the process dies of heap corruption once another
interpreter runs (cpython gh-158364); xchannels puts versions that walk the
calling interpreter's threads only in sys there. tracemalloc cannot trace
while interpreters are created before 3.15.0rc2; xchannels refuses to
create one then. The other walkers are tried while workers run. Every test
that could crash the process runs a script in a fresh Python (the same one
as the test) and asserts on its exit.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import textwrap
import threading

import pytest

import xchannels
import xchannels._xchannels as core
from xchannels import _profilers

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(xchannels.__file__)))
GUARD = core._frames_guard
GIL_BUILD = hasattr(core, "_current_frames")  # not built free-threaded


def _no_core() -> None:
    # A child that crashes (the point of some tests) leaves no core file.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _run(tmp_path, code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE, HERE, env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, str(script), *args], env=env, capture_output=True, text=True,
        timeout=timeout, cwd=tmp_path, preexec_fn=_no_core,
    )


def _ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stderr[-4000:]}"
    return out.stdout


# ---- which Pythons are guarded ---------------------------------------------------


def test_sys_holds_the_guard_exactly_where_it_is_needed():
    if GUARD:
        assert sys._current_frames is core._current_frames
        assert sys._current_exceptions is core._current_exceptions
        assert core._sys_current_frames.__self__ is sys  # CPython's own, kept
    else:
        assert sys._current_frames.__self__ is sys
        assert sys._current_exceptions.__self__ is sys
        assert not hasattr(core, "_sys_current_frames")


def test_info_names_the_guards():
    assert xchannels.info()["workarounds"] == {
        "frames_guard": GUARD, "tracemalloc_guard": _profilers.tracemalloc_unsafe()}


def test_the_version_table_matches_cpython(tmp_path):
    # CPython's own function (no xchannels in this script) called inside a
    # sub-interpreter while the main thread runs Python code: where xchannels
    # guards, it lists the main interpreter's threads and the process aborts
    # (the frame object it makes for the main thread is freed by the main
    # interpreter's allocator; seen every time on 3.12.1 and 3.13.0); where
    # it does not, CPython is fixed and lists the sub-interpreter's own
    # thread only. If this fails, kFramesFixedIn in bindings/profilers.cpp
    # is out of date for this Python.
    out = _run(tmp_path, """
        import sys, threading
        if sys.version_info >= (3, 13):
            import _interpreters as interpreters
            iid = interpreters.create("isolated")
            run = lambda code: interpreters.exec(iid, code)
        else:
            import _xxsubinterpreters as interpreters
            iid = interpreters.create(isolated=True)
            run = lambda code: interpreters.run_string(iid, code)
        assert "xchannels" not in sys.modules
        release = threading.Event()
        other = threading.Thread(target=release.wait)
        other.start()

        def call_it_inside():
            return run(
                "import sys, threading\\n"
                "seen = sys._current_frames()\\n"
                "assert set(seen) == {threading.get_ident()}, seen\\n"
                "assert set(sys._current_exceptions()) == {threading.get_ident()}\\n"
            )

        try:
            err = call_it_inside()
        except Exception as e:  # 3.12 raises what 3.13+ returns
            err = type(e).__name__
        finally:
            release.set()
            other.join()
        interpreters.destroy(iid)
        print("survived", err)
        """)
    if GUARD:
        # It aborts, or the check inside fails: it listed the other
        # interpreter's threads.
        assert out.returncode != 0 or out.stdout.strip() != "survived None", (
            "CPython's own sys._current_frames() walked only its interpreter: "
            "is this Python fixed? " + out.stdout + out.stderr[-2000:])
    else:
        assert _ok(out).strip() == "survived None"


@pytest.mark.parametrize(("version", "unsafe"), [
    ((3, 12, 1, "final", 0), True),
    ((3, 13, 9, "final", 0), True),
    ((3, 14, 10, "final", 0), True),
    ((3, 15, 0, "candidate", 1), True),
    ((3, 15, 0, "candidate", 2), False),
    ((3, 15, 2, "final", 0), False),
    ((3, 16, 0, "alpha", 1), False),
])
def test_tracemalloc_table(version, unsafe):
    assert _profilers.tracemalloc_unsafe(version) is unsafe


# ---- the replacements themselves -------------------------------------------------


@contextlib.contextmanager
def _thread_in(park):
    """A thread running ``park(started, release)``, which sets ``started``
    where the test looks at it and then waits for ``release``."""
    started, release = threading.Event(), threading.Event()
    t = threading.Thread(target=park, args=(started, release))
    t.start()
    started.wait()
    try:
        yield t
    finally:
        release.set()
        t.join()


@pytest.mark.skipif(not GIL_BUILD, reason="not built free-threaded")
def test_current_frames_lists_this_interpreters_threads():
    def parked(started, release):
        started.set()
        release.wait()

    with _thread_in(parked) as t:
        frames = core._current_frames()
        assert {threading.get_ident(), t.ident} <= frames.keys()
        assert frames[threading.get_ident()].f_code is (
            test_current_frames_lists_this_interpreters_threads.__code__)
        names = []
        f = frames[t.ident]
        while f is not None:
            names.append(f.f_code.co_name)
            f = f.f_back
        assert "parked" in names


@pytest.mark.skipif(not GIL_BUILD, reason="not built free-threaded")
def test_current_exceptions_gives_what_each_thread_handles():
    def handling(started, release):
        try:
            raise KeyError("in the thread")
        except KeyError:
            started.set()
            release.wait()

    with _thread_in(handling) as t:
        exc = core._current_exceptions()
        assert isinstance(exc[t.ident], KeyError) and exc[t.ident].args == ("in the thread",)
        assert exc[threading.get_ident()] is None
        try:
            raise ValueError("here")
        except ValueError as e:
            assert core._current_exceptions()[threading.get_ident()] is e


def test_audit_events_and_a_replaced_function_left_alone(tmp_path):
    # The replacements raise CPython's audit events; a sys._current_frames
    # that someone replaced before xchannels is not touched.
    out = _run(tmp_path, """
        import sys
        events = []
        sys.addaudithook(lambda name, args: name.startswith("sys._current") and events.append(name))
        def mine():
            return {}
        sys._current_frames = mine
        import xchannels, xchannels._xchannels as core
        assert sys._current_frames is mine
        assert (sys._current_exceptions is core._current_exceptions) == core._frames_guard
        if hasattr(core, "_current_frames"):
            core._current_frames()
            core._current_exceptions()
        print(events)
        """)
    expected = "['sys._current_frames', 'sys._current_exceptions']" if GIL_BUILD else "[]"
    assert _ok(out).strip() == expected


# The CPU-bound task both scripts below map (defined in each script: the
# workers import it from there).
FACT = """
    def fact(n):
        r = 1
        for i in range(2, n):
            r *= i
        return r.bit_length()
"""


# ---- sampling while worker interpreters run ----------------------------------------

# A sampling profiler's thread: sys._current_frames() (and
# sys._current_exceptions()) every millisecond during 5 pool maps. Every
# frame it sees must belong to this interpreter: its globals are a module
# of this interpreter's. Without the guard, 3.12 and 3.13 abort with
# "free(): invalid pointer" / "double free or corruption" within the
# first maps.
SAMPLER = """
    import sys, threading, time
    import xchannels
""" + FACT + """
    def sample(stop, seen):
        while not stop.is_set():
            for thread_id, frame in sys._current_frames().items():
                g = frame.f_globals
                mod = sys.modules.get(g.get("__name__"))
                seen["frames"] += 1
                if mod is None or mod.__dict__ is not g:
                    seen["foreign"] += 1
            sys._current_exceptions()
            time.sleep(0.001)

    if __name__ == "__main__":
        stop, seen = threading.Event(), {"frames": 0, "foreign": 0}
        t = threading.Thread(target=sample, args=(stop, seen))
        t.start()
        try:
            for _ in range(5):
                with xchannels.Pool(2) as pool:
                    assert sum(pool.map(fact, [400] * 200)) > 0
        finally:
            stop.set()
            t.join()
        print(seen["frames"] > 0, seen["foreign"])
    """


def test_sampler_thread_survives_pool_maps(tmp_path):
    assert _ok(_run(tmp_path, SAMPLER)).split() == ["True", "0"]


# The same inside worker interpreters: each task samples its own
# interpreter every millisecond while the other worker computes. A worker
# interpreter has one thread, its host thread. Without the guard, 3.12 and
# 3.13 abort.
IN_WORKER = """
    import sys, threading, time
    import xchannels

    def sample(_):
        me = threading.get_ident()
        seen, excs = set(), set()
        end = time.monotonic() + 0.03
        while time.monotonic() < end:
            seen.update(sys._current_frames())
            excs.update(sys._current_exceptions())
            r = 1
            for i in range(2, 300):
                r *= i
            time.sleep(0.001)
        return seen == {me} and excs == {me}

    if __name__ == "__main__":
        for _ in range(5):
            with xchannels.Pool(2) as pool:
                assert all(pool.map(sample, range(6)))
        print("ok")
    """


def test_sampling_inside_worker_interpreters(tmp_path):
    assert _ok(_run(tmp_path, IN_WORKER)).strip() == "ok"


# ---- the other walkers --------------------------------------------------------------

# Each walker, called over and over by a thread of the main interpreter
# while a pool maps, and inside the workers' tasks. All see the calling
# interpreter only, on every tested Python.
WALKERS = """
    import gc, sys, threading, time
    import xchannels
""" + FACT + """
    def hook(*args):
        return hook

    def walk(kind):
        if kind == "enumerate":
            return len(threading.enumerate()) > 0
        if kind == "gc":
            return len(gc.get_objects()) > 0
        if kind in ("setprofile", "settrace"):
            set_all = getattr(threading, kind + "_all_threads")
            set_all(hook)
            fact(50)
            set_all(None)
            return getattr(sys, "get" + kind[3:])() is None
        if kind == "monitoring":
            m = sys.monitoring
            m.use_tool_id(5, "xchannels-test")
            m.register_callback(5, m.events.PY_START, hook)
            m.set_events(5, m.events.PY_START)
            fact(50)
            m.set_events(5, 0)
            m.register_callback(5, m.events.PY_START, None)
            m.free_tool_id(5)
            return True
        raise ValueError(kind)

    def in_worker(kind):
        out = True
        for _ in range(20):
            out = walk(kind) and out
            fact(200)
        # Inside a worker, the interpreter's own threads only.
        return out and len(threading.enumerate()) == 1

    def keep_walking(kind, stop, count):
        while not stop.is_set():
            assert walk(kind)
            count[0] += 1
            time.sleep(0.001)

    if __name__ == "__main__":
        kind = sys.argv[1]
        stop, count = threading.Event(), [0]
        t = threading.Thread(target=keep_walking, args=(kind, stop, count))
        t.start()
        try:
            for _ in range(3):
                with xchannels.Pool(2) as pool:
                    assert sum(pool.map(fact, [400] * 100)) > 0
                    assert all(pool.map(in_worker, [kind] * 4))
        finally:
            stop.set()
            t.join()
        print(count[0] > 0)
    """


@pytest.mark.parametrize("kind", ["enumerate", "gc", "setprofile", "settrace", "monitoring"])
def test_walker_while_workers_run(tmp_path, kind):
    assert _ok(_run(tmp_path, WALKERS, kind)).strip() == "True"


def test_faulthandler_dumps_the_calling_interpreter(tmp_path):
    # faulthandler does not load in a sub-interpreter. In the main
    # interpreter, dump_traceback(all_threads=True) and the watchdog of
    # dump_traceback_later() list the main interpreter's threads (a worker's
    # host thread with its frames here), never the code the workers run.
    # Both dump at a quiet moment: faulthandler reads other threads' states
    # without a lock and can crash when a thread starts, ends or returns
    # from a frame whose cleanup runs Python code during a dump, with or
    # without interpreters (cpython gh-116008; on 3.13 a dump that meets
    # two C-stack shim frames in a row reads the second as Python code):
    # see docs/limitations.md.
    out = _run(tmp_path, """
        import sys, time
        import xchannels

        def spin_in_worker(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
            return True

        def faulthandler_loads(_):
            try:
                import faulthandler  # noqa: F401
            except ImportError:
                return False
            return True

        if __name__ == "__main__":
            import faulthandler
            with xchannels.Pool(2) as pool:
                assert not any(pool.map(faulthandler_loads, range(2)))
                futures = [pool.submit(spin_in_worker, 0.3) for _ in range(2)]
                time.sleep(0.05)
                with open("now.txt", "w") as f:
                    faulthandler.dump_traceback(file=f, all_threads=True)
                with open("later.txt", "w") as f:
                    faulthandler.dump_traceback_later(0.02, file=f)
                    assert all(fut.result() for fut in futures)
                    faulthandler.cancel_dump_traceback_later()
            for name in ("now.txt", "later.txt"):
                text = open(name).read()
                print(text.count("hread 0x") >= 3, "spin_in_worker" not in text,
                      "_interp.py" in text)
        """)
    assert _ok(out).splitlines() == ["True True True"] * 2


# ---- tracemalloc ----------------------------------------------------------------------

TRACEMALLOC = """
    import sys
    import xchannels

    def double(x):
        return 2 * x

    if __name__ == "__main__":
        import tracemalloc
        tracemalloc.start()
        try:
            with xchannels.Pool(2) as pool:
                print(list(pool.map(double, range(4))))
            tracemalloc.take_snapshot()
        except xchannels.BrokenPool as e:
            print("refused:", "tracemalloc" in str(e))
        tracemalloc.stop()
        with xchannels.Pool(2) as pool:  # as usual once tracing stops
            print(list(pool.map(double, range(4))))
    """


def test_tracemalloc_refused_where_it_deadlocks(tmp_path):
    # 3.12-3.14: creating an interpreter while tracing deadlocks or
    # corrupts the heap (without the check this script hangs or aborts);
    # 3.15: the pool runs while tracing.
    first = "refused: True" if _profilers.tracemalloc_unsafe() else "[0, 2, 4, 6]"
    assert _ok(_run(tmp_path, TRACEMALLOC, timeout=60)).splitlines() == [first, "[0, 2, 4, 6]"]


@pytest.mark.parametrize("imported", ["early", "late"])
def test_tracemalloc_started_while_workers_run(tmp_path, imported):
    # 3.12-3.14: tracemalloc.start() refuses while sub-interpreters exist
    # (traces would hold the workers' strings: heap corruption on 3.12, a
    # use-after-free on 3.13/3.14 that a debug build catches in
    # take_snapshot()), whether tracemalloc was imported before the first
    # interpreter or after; it starts once they are gone. 3.15: tracing
    # that starts while the workers run and goes on while they are
    # destroyed is fine.
    out = _run(tmp_path, """
        import sys
        import xchannels

        def fact(n):
            r = 1
            for i in range(2, n):
                r *= i
            return r.bit_length()

        if __name__ == "__main__":
            early = sys.argv[1] == "early"
            if early:
                import tracemalloc
            with xchannels.Pool(2) as pool:
                list(pool.map(fact, [300] * 10))
                if not early:
                    import tracemalloc
                try:
                    tracemalloc.start(5)
                except RuntimeError as e:
                    print("refused:", "sub-interpreters" in str(e))
                assert sum(pool.map(fact, [300] * 100)) > 0
            tracemalloc.start(5)  # no sub-interpreter left
            tracemalloc.take_snapshot().statistics("lineno")
            tracemalloc.stop()
            print("ok")
        """, imported, timeout=60)
    lines = ["refused: True", "ok"] if _profilers.tracemalloc_unsafe() else ["ok"]
    assert _ok(out).splitlines() == lines
