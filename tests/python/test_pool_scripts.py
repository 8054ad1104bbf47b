"""tests/python/test_pool_scripts.py: the Pool and Worker in plain scripts,
the way users meet them: a script that also imports ``multiprocessing``,
Ctrl-C at any moment, the pre-flight check. Each test runs a script in a
fresh Python (the same one as the test) and asserts what it printed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import xchannels

HERE = os.path.dirname(os.path.abspath(__file__))
# Children import the same xchannels as this process (the installed package
# under make test, the source tree under PYTHONPATH=python).
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(xchannels.__file__)))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE, HERE, env.get("PYTHONPATH", "")])
    return env


def _run(tmp_path, code: str, *, files: dict[str, str] | None = None, timeout: float = 90):
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script)], env=_env(), capture_output=True, text=True,
        timeout=timeout, cwd=tmp_path,
    )


# ---- the script compiled once, in the parent -----------------------------------


def test_workers_run_the_script_the_parent_compiled(tmp_path):
    # Workers execute the parent's compiled script (marshal bytes in their
    # config) instead of compiling it each; the script still runs as the
    # __mp_main__ module, with its functions and its guard.
    out = _run(tmp_path, """
        import sys
        import xchannels
        from xchannels import _bootstrap

        def probe(x):
            m = sys.modules["__mp_main__"]
            return (x, _bootstrap._main_code is not None, m.__name__, m.__file__ == __file__, __name__)

        if __name__ == "__main__":
            with xchannels.Pool(workers=2) as pool:
                print(pool.submit(probe, 1).result(timeout=60))
            w = xchannels.Worker(probe, (2,))
            w.start()
            print(w.result(timeout=60))
        """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "(1, True, '__mp_main__', True, '__mp_main__')",
        "(2, True, '__mp_main__', True, '__mp_main__')",
    ]


def test_main_code_follows_the_file_and_gives_up_quietly(tmp_path):
    from xchannels._calls import main_code

    script = tmp_path / "s.py"
    script.write_text("X = 1\n")
    first = main_code(str(script))
    assert first is not None and main_code(str(script)) is first  # cached
    script.write_text("X = 22\n")  # another size: compiled again
    second = main_code(str(script))
    assert second is not None and second != first
    namespace: dict[str, object] = {}
    import marshal

    exec(marshal.loads(second), namespace)
    assert namespace["X"] == 22
    script.write_text("def broken(:\n")
    assert main_code(str(script)) is None  # the worker compiles it and reports the error
    assert main_code(str(tmp_path / "missing.py")) is None
    assert main_code(None) is None


# ---- scripts that import multiprocessing ---------------------------------------

# Two __main__ functions on one worker: the second failed with
# "module '__main__' has no attribute 'g'" once multiprocessing had rebound
# sys.modules['__mp_main__'] inside the worker.
_TWO_MAIN_FUNCTIONS = """
def f(x): return x + 1
def g(x): return x * 2
if __name__ == "__main__":
    with xchannels.Pool(workers=1) as pool:
        print(pool.submit(f, 1).result(timeout=60), pool.submit(g, 1).result(timeout=60))
        print(list(pool.map(g, range(4))), pool.submit(f, 10).result(timeout=60))
"""


def test_script_importing_multiprocessing_at_the_top(tmp_path):
    out = _run(tmp_path, "import multiprocessing\nimport xchannels\n" + _TWO_MAIN_FUNCTIONS)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["2 2", "[0, 2, 4, 6] 11"]


def test_script_importing_multiprocessing_through_a_helper_module(tmp_path):
    helper = "import multiprocessing\nSTART = multiprocessing.get_start_method(allow_none=True)\n"
    out = _run(tmp_path, "import helper_mod\nimport xchannels\n" + _TWO_MAIN_FUNCTIONS,
               files={"helper_mod.py": helper})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["2 2", "[0, 2, 4, 6] 11"]


def test_task_that_imports_multiprocessing_in_the_worker(tmp_path):
    # The first task (from another module, before any __main__ function was
    # needed) imports multiprocessing in the worker; then __main__ functions.
    helper = "def load():\n    import multiprocessing\n    return multiprocessing.__name__\n"
    code = """
    import xchannels
    import helper_mod
    def f(x): return x + 1
    def g(x):
        import multiprocessing  # and again from a __main__ function
        return x * 2
    if __name__ == "__main__":
        with xchannels.Pool(workers=1) as pool:
            print(pool.submit(helper_mod.load).result(timeout=60))
            print(pool.submit(f, 1).result(timeout=60), pool.submit(g, 1).result(timeout=60),
                  pool.submit(f, 2).result(timeout=60))
    """
    out = _run(tmp_path, code, files={"helper_mod.py": helper})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["multiprocessing", "2 2 3"]


def test_worker_target_from_a_script_importing_multiprocessing(tmp_path):
    code = """
    import multiprocessing
    import xchannels
    def f(x): return x + 1
    if __name__ == "__main__":
        for i in range(2):
            w = xchannels.Worker(target=f, args=(i,))
            w.start()
            print(w.result(timeout=60))
    """
    out = _run(tmp_path, code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["1", "2"]


# ---- Ctrl-C ------------------------------------------------------------------------

_SPIN = """
import time
import pytest

import xchannels
def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "spun"
"""


def _interrupt(tmp_path, code: str, after: float = 0.3):
    """Run the script, send it SIGINT (Ctrl-C) `after` seconds after it printed
    its first line; return (returncode, stdout lines, stderr)."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(_SPIN) + textwrap.dedent(code))
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        first = proc.stdout.readline()
        assert first, proc.stderr.read()
        import time

        time.sleep(after)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, [first.strip(), *out.splitlines()], err


def test_ctrl_c_during_worker_join_leaves_it_joinable(tmp_path):
    rc, lines, err = _interrupt(tmp_path, """
    if __name__ == "__main__":
        w = xchannels.Worker(target=spin, args=(1.5,))
        w.start()
        print("joining", flush=True)
        try:
            w.join()
        except KeyboardInterrupt:
            print("interrupted alive", w.is_alive(), flush=True)
        w.join()
        print("joined alive", w.is_alive(), w.result(timeout=0), flush=True)
    """)
    assert "Fatal Python error" not in err
    assert rc == 0, err
    assert lines == ["joining", "interrupted alive True", "joined alive False spun"]


def test_ctrl_c_during_worker_join_then_exit_waits_for_the_worker(tmp_path):
    # The KeyboardInterrupt ends the script; the interpreter must still wait
    # for the worker's thread (never exit with its sub-interpreter alive):
    # atexit handlers run after that wait, so they see the worker done.
    rc, lines, err = _interrupt(tmp_path, """
    import atexit
    if __name__ == "__main__":
        w = xchannels.Worker(target=spin, args=(1.0,))
        w.start()
        atexit.register(lambda: print("atexit alive", w.is_alive(), w.result(timeout=0), flush=True))
        print("joining", flush=True)
        w.join(timeout=30)
    """)
    assert "Fatal Python error" not in err
    assert "KeyboardInterrupt" in err
    assert rc in (-signal.SIGINT, 1, 130), err
    assert lines == ["joining", "atexit alive False spun"]


def test_ctrl_c_while_waiting_on_a_pool_result_then_shutdown(tmp_path):
    rc, lines, err = _interrupt(tmp_path, """
    if __name__ == "__main__":
        with xchannels.Pool(2) as pool:
            fut = pool.submit(spin, 1.0)
            print("waiting", flush=True)
            try:
                fut.result(timeout=30)
            except KeyboardInterrupt:
                print("interrupted", fut.running(), fut.cancel(), flush=True)
        print("shut down", fut.result(timeout=0), flush=True)
    """)
    assert "Fatal Python error" not in err
    assert rc == 0, err
    assert lines == ["waiting", "interrupted True False", "shut down spun"]


def test_ctrl_c_during_pool_shutdown_still_waits_for_the_workers(tmp_path):
    rc, lines, err = _interrupt(tmp_path, """
    import atexit
    if __name__ == "__main__":
        pool = xchannels.Pool(2)
        futs = [pool.submit(spin, 1.0) for _ in range(2)]
        atexit.register(lambda: print("atexit", [f.done() for f in futs], flush=True))
        print("shutting down", flush=True)
        pool.shutdown(wait=True)
    """)
    assert "Fatal Python error" not in err
    assert "KeyboardInterrupt" in err
    assert rc in (-signal.SIGINT, 1, 130), err
    assert lines == ["shutting down", "atexit [True, True]"]


# ---- classes of the script, the pickle fallback (the default pool) -------------------
# Workers import the script as __mp_main__: pickles made in the caller name
# its classes __main__.X, pickles made in a worker __mp_main__.X. Both must
# resolve on the other side, with multiprocessing imported or not (it
# rebinds __mp_main__), as arguments and results, in submit and map.

_SCRIPT_CLASSES = """
import collections
import dataclasses
import enum
import pytest

import xchannels
from xchannels import _interp


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


Pair = collections.namedtuple("Pair", "a b")


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Oops(Exception):
    def __init__(self, code, text):
        super().__init__(code, text)
        self.code = code


def step(p, c, pair, err):
    # The worker's own copies of the script's classes (it imported the
    # script as __mp_main__), whatever name the pickle gave them.
    assert type(p) is Point and type(pair) is Pair and type(err) is Oops and isinstance(c, Color), __name__
    flipped = Color.BLUE if c is Color.RED else Color.RED
    return (Point(p.x + 1, p.y * 2), flipped, Pair(pair.b, pair.a), Oops(err.code + 1, err.args[1]))


def fail(code):
    raise Oops(code, "raised")


def arguments(i):
    return (Point(i, i), Color.RED if i % 2 == 0 else Color.BLUE, Pair(i, "b"), Oops(i, "e"))


def right(got, i):
    p, c, pair, err = got
    return (
        type(p) is Point and p == Point(i + 1, 2 * i)
        and c is (Color.BLUE if i % 2 == 0 else Color.RED)   # the very member
        and type(pair) is Pair and pair == Pair("b", i)      # the namedtuple's class kept
        and type(err) is Oops and err.code == i + 1 and err.args == (i + 1, "e")
    )


if __name__ == "__main__":
    with xchannels.Pool(2) as pool:
        print("submit", all(right(pool.submit(step, *arguments(i)).result(timeout=60), i) for i in range(6)))
        # 4 calls: one task each; 400: groups; chunksize=3: chunks
        for n, chunksize in ((4, 1), (400, 1), (50, 3)):
            calls = [arguments(i) for i in range(n)]
            got = list(pool.map(step, *zip(*calls), chunksize=chunksize))
            print("map", n, chunksize, len(got) == n and all(right(g, i) for i, g in enumerate(got)))
        try:
            pool.submit(fail, 7).result(timeout=60)
        except Oops as e:
            print("raised", type(e) is Oops, e.code, e.args)
        print("member", pool.submit(step, *arguments(2)).result(timeout=60)[1] is Color.BLUE)
    w = xchannels.Worker(step, arguments(3), fallback="pickle")
    w.start()
    print("worker", right(w.result(timeout=60), 3))
    print("interpreters", len(_interp.list_all()))
"""


@pytest.mark.parametrize("head", ["", "import multiprocessing\n"], ids=["plain", "multiprocessing"])
def test_classes_of_the_script_travel_both_ways(tmp_path, head):
    out = _run(tmp_path, head + _SCRIPT_CLASSES)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "submit True",
        "map 4 1 True",
        "map 400 1 True",
        "map 50 3 True",
        "raised True 7 (7, 'raised')",
        "member True",
        "worker True",
        "interpreters 1",
    ]


# ---- one task's bad data fails that task alone -----------------------------------------
# Every path where one task's data could end a worker (or the caller's
# collector): an argument that cannot be pickled (refused at submit), a
# result that cannot be pickled, an argument whose unpickling raises in the
# worker (a call, a keyword, a map's group and chunk, a Worker's argument,
# initargs), a result whose unpickling raises in the caller (call, group,
# chunk, a Worker's result), an exception whose args cannot be unpickled in
# the caller or whose __str__ and __notes__ are broken, and arguments that
# a worker cannot pickle again when it hands the rest of a long map group
# back. After each, the pool goes on; at the end it shuts down cleanly and
# no interpreter is left.

_SCRIPT_BAD_DATA = """
import time
import pytest

import xchannels
from xchannels import _interp


def refuse(where, value):
    # Unpickling a Touchy runs this: it raises in the caller (__name__ is
    # "__main__") or in a worker ("__mp_main__"), as `where` says.
    if (__name__ == "__main__") == (where == "caller"):
        raise ValueError(f"{value} refused in the {where}")
    return Touchy(where, value)


class Touchy:
    def __init__(self, where, value):
        self.where, self.value = where, value

    def __reduce__(self):
        return (refuse, (self.where, self.value))


class TouchyInt(int):
    # An int subclass: exception args that is_shareable accepts, pickled on
    # the way back (subclasses keep their class), refused in the caller.
    def __reduce__(self):
        return (refuse_int, (int(self),))


def refuse_int(value):
    if __name__ == "__main__":
        raise ValueError(f"{value} refused in the caller")
    return TouchyInt(value)


class NoRepickle:
    # Pickles in the caller, unpickles in a worker, and cannot be pickled
    # again there.
    def __reduce__(self):
        if __name__ != "__main__":
            raise RuntimeError("not pickled again in a worker")
        return (NoRepickle, ())


class Broken(Exception):
    def __str__(self):
        raise RuntimeError("no text")


def ident(x=None, **kwargs):
    return x if not kwargs else sorted(kwargs)


def square(x):
    return x * x


def make_lambda(i=0):
    return lambda: i


def make_touchy(i, bad=-1):
    return Touchy("caller", i) if i == bad else i


def lambda_at(i, bad):
    return (lambda: i) if i == bad else i


def raise_touchy_args(i):
    raise KeyError(TouchyInt(i))


def raise_broken():
    e = Broken("x")
    e.__notes__ = 5
    raise e


def mark(cid, i):
    xchannels.Channel.from_id(cid).put(i)
    return i


def slow_index(i, obj):
    time.sleep(0.003)
    return i


def init(value):
    pass


def outcome(fn):
    try:
        return f"ok {fn()!r}"
    except Exception as e:
        try:
            text = str(e)
        except Exception:
            text = "<unprintable>"
        return f"{type(e).__name__}: {text}"


def drain(ch, want):
    # The marks of the calls that ran: `want` of them, and no more.
    n = 0
    while True:
        try:
            ch.get(timeout=30 if n < want else 0.2)
        except xchannels.ChannelEmpty:
            return n
        n += 1


if __name__ == "__main__":
    pool = xchannels.Pool(2)
    for what, fn in [
        ("lambda argument", lambda: pool.submit(ident, lambda: 1)),
        ("lambda result", lambda: pool.submit(make_lambda).result(timeout=60)),
        ("argument", lambda: pool.submit(ident, Touchy("worker", 1)).result(timeout=60)),
        ("keyword", lambda: pool.submit(ident, 0, k=[2, Touchy("worker", 2)]).result(timeout=60)),
        ("result", lambda: pool.submit(make_touchy, 3, 3).result(timeout=60)),
        ("exception args", lambda: pool.submit(raise_touchy_args, 4).result(timeout=60)),
        ("broken exception", lambda: pool.submit(raise_broken).result(timeout=60)),
        ("short map", lambda: list(pool.map(ident, [1, Touchy("worker", 5), 3]))),
        ("group argument", lambda: list(pool.map(ident, [Touchy("worker", 6) if i == 150 else i for i in range(400)]))),
        ("group result", lambda: list(pool.map(make_touchy, range(400), [150] * 400))),
        ("group lambda", lambda: list(pool.map(lambda_at, range(400), [150] * 400))),
        ("chunk argument", lambda: list(pool.map(ident, [Touchy("worker", 7) if i == 25 else i for i in range(40)], chunksize=10))),
        ("chunk result", lambda: list(pool.map(make_touchy, range(40), [25] * 40, chunksize=10))),
    ]:
        print(what, "|", outcome(fn).replace("\\n", " "))
        print("next", pool.submit(square, 9).result(timeout=60))
    # The calls beside a bad one in its group or chunk still ran.
    marks = xchannels.Channel()
    it = pool.map(mark, [marks.id] * 400, [Touchy("worker", 8) if i == 150 else i for i in range(400)])
    print("group others", outcome(lambda: list(it)).split(":")[0], drain(marks, 399))
    it = pool.map(mark, [marks.id] * 40, [Touchy("worker", 9) if i == 25 else i for i in range(40)], chunksize=10)
    print("chunk others", outcome(lambda: list(it)).split(":")[0], drain(marks, 30))
    pool.shutdown()
    print("shut down", pool)

    # A long group's rest handed back to the queue is encoded again in the
    # worker; when that fails the worker runs the rest itself.
    with xchannels.Pool(1) as one:
        got = list(one.map(slow_index, range(128), [NoRepickle()] * 128))
        print("hand-back", got == list(range(128)), one.submit(square, 3).result(timeout=60))

    w = xchannels.Worker(ident, (Touchy("worker", 10),), fallback="pickle")
    w.start()
    print("worker argument |", outcome(lambda: w.result(timeout=60)))
    w = xchannels.Worker(make_touchy, (11, 11), fallback="pickle")
    w.start()
    print("worker result |", outcome(lambda: w.result(timeout=60)))

    with xchannels.Pool(1, initializer=init, initargs=(Touchy("worker", 12),)) as broken:
        print("initargs |", outcome(lambda: broken.submit(square, 2).result(timeout=60)))
    print("interpreters", len(_interp.list_all()))
"""

_CANNOT = "a pickled value (sent with fallback='pickle') cannot be unpickled in this interpreter"


@pytest.mark.parametrize("head", ["", "import multiprocessing\n"], ids=["plain", "multiprocessing"])
def test_bad_data_fails_its_task_alone(tmp_path, head):
    out = _run(tmp_path, head + _SCRIPT_BAD_DATA, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "Fatal Python error" not in out.stderr
    lines = out.stdout.splitlines()
    got = dict(line.split(" | ", 1) for line in lines if " | " in line)
    nexts = [line for line in lines if line.startswith("next ")]
    assert nexts == ["next 81"] * 13, lines  # the pool went on after each
    expected = {
        "lambda argument": "NotShareableError: argument 0 of ident() cannot be sent to a worker interpreter: function cannot be pickled",
        "lambda result": "NotShareableError: the return value of make_lambda() cannot be sent back from the worker: function cannot be pickled",
        "argument": f"NotShareableError: argument 0 of ident() cannot be received in the worker interpreter: {_CANNOT}: ValueError: 1 refused in the worker",
        "keyword": f"NotShareableError: keyword argument 'k' of ident() cannot be received in the worker interpreter: item [1]: {_CANNOT}: ValueError: 2 refused in the worker",
        "result": f"NotShareableError: the return value of make_touchy() cannot be received from the worker: {_CANNOT}: ValueError: 3 refused in the caller",
        "exception args": "RemoteError: KeyError: 4",
        "broken exception": "Broken: <unprintable>",
        "short map": f"NotShareableError: argument 0 of ident() cannot be received in the worker interpreter: {_CANNOT}: ValueError: 5 refused in the worker",
        "group argument": f"NotShareableError: argument 0 of ident() cannot be received in the worker interpreter: {_CANNOT}: ValueError: 6 refused in the worker",
        "group result": f"NotShareableError: the result of item 150 of map(make_touchy) cannot be received from the worker: {_CANNOT}: ValueError: 150 refused in the caller",
        "group lambda": "NotShareableError: the return value of lambda_at() cannot be sent back from the worker: function cannot be pickled",
        "chunk argument": f"NotShareableError: argument 0 of ident() (call 5 of its chunk) cannot be received in the worker interpreter: {_CANNOT}: ValueError: 7 refused in the worker",
        "chunk result": f"NotShareableError: the results of the chunk from item 20 of map(make_touchy) cannot be received from the worker: item [5]: {_CANNOT}: ValueError: 25 refused in the caller",
        "worker argument": f"NotShareableError: argument 0 of ident() cannot be received in the worker interpreter: {_CANNOT}: ValueError: 10 refused in the worker",
        "worker result": f"NotShareableError: the return value of make_touchy() cannot be received from the worker: {_CANNOT}: ValueError: 11 refused in the caller",
    }
    for what, text in expected.items():
        assert got[what].startswith(text), (what, got[what])
    assert got["initargs"].startswith(
        "BrokenPool: a worker interpreter of the pool (worker 0) failed: xchannels.NotShareableError: argument 0 of init() "
        f"(the pool's initializer) cannot be received in the worker interpreter: {_CANNOT}: ValueError: 12 refused"
    ), got["initargs"]
    assert "group others NotShareableError 399" in lines  # every call but the bad one ran
    assert "chunk others NotShareableError 30" in lines  # every chunk but the bad one's
    assert "shut down <xchannels.Pool workers=2 shut down pending=0>" in lines
    assert "hand-back True 9" in lines
    assert lines[-1] == "interpreters 1"


# ---- reusable_pool() -------------------------------------------------------------------

_SCRIPT_REUSABLE = """
import atexit
import threading
import xchannels
from xchannels import _interp

CALLS = 0


def square(x):
    return x * x


def count():
    # A module global of the worker: it lives as long as the worker does.
    global CALLS
    CALLS += 1
    return CALLS


def boom():
    raise RuntimeError("initializer failed")


if __name__ == "__main__":
    first = xchannels.reusable_pool(2)
    print(list(first.map(square, range(4))), xchannels.reusable_pool(2) is first)
    # Threads asking at once get the one pool.
    barrier = threading.Barrier(8)
    got = []

    def ask():
        barrier.wait()
        got.append(xchannels.reusable_pool(2))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("threads", len(got), all(p is first for p in got))
    # Other options: a new pool; the old one is shut down.
    one = xchannels.reusable_pool(1)
    print("options", one is not first, one.workers, repr(first).split()[2], xchannels.reusable_pool(1) is one)
    print("strict", xchannels.reusable_pool(1, fallback=None) is not one)
    # Module globals of the workers persist from call to call.
    strict = xchannels.reusable_pool(1, fallback=None)
    print("globals", strict.submit(count).result(timeout=60), xchannels.reusable_pool(1, fallback=None).submit(count).result(timeout=60))
    # After shutdown, or once broken, the next call makes a new one.
    strict.shutdown()
    fresh = xchannels.reusable_pool(1, fallback=None)
    print("after shutdown", fresh is not strict, fresh.submit(count).result(timeout=60))
    bad = xchannels.reusable_pool(1, initializer=boom)
    try:
        bad.submit(square, 2).result(timeout=60)
    except xchannels.BrokenPool:
        print("broken", xchannels.reusable_pool(1, initializer=boom) is not bad)
    last = xchannels.reusable_pool(2)
    print("last", last.submit(square, 5).result(timeout=60))
    # Options Pool refuses raise, and leave the current pool alone.
    try:
        xchannels.reusable_pool(0)
    except ValueError:
        print("refused", xchannels.reusable_pool(2) is last, repr(last).split()[2])
    # Left running: it is shut down at exit, its interpreters destroyed
    # before atexit handlers run.
    atexit.register(lambda: print("at exit", len(_interp.list_all()), flush=True))
"""


def test_reusable_pool(tmp_path):
    out = _run(tmp_path, _SCRIPT_REUSABLE)
    assert out.returncode == 0, out.stderr
    assert "Fatal Python error" not in out.stderr
    assert out.stdout.splitlines() == [
        "[0, 1, 4, 9] True",
        "threads 8 True",
        "options True 1 shut True",
        "strict True",
        "globals 1 2",
        "after shutdown True 1",
        "broken True",
        "last 25",
        "refused True running",
        "at exit 1",
    ]
