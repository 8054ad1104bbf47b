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
    from xchannels._worker import main_code

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
