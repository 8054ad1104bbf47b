"""tests/python/test_module.py: the module loads in real own-GIL
sub-interpreters, each with its own state (bindings/module.cpp)."""

from __future__ import annotations

import sys

import pytest

import subinterp
import xchannels


def test_import_in_isolated_subinterpreter(sub):
    # This test exists because a module built without the per-interpreter
    # GIL slot (py::multiple_interpreters::per_interpreter_gil()) fails here
    # with "ImportError: module ... does not support loading in
    # subinterpreters": 'isolated' (3.13) / isolated=True (3.12) interpreters
    # have their own GIL and check every extension's declaration.
    sub.run(
        """
        import xchannels
        ch = xchannels.Channel()
        ch.put((1, "two"))
        assert ch.get() == (1, "two")
        """
    )


def test_import_stays_light_and_channel_full_is_made_on_first_use():
    # A pool worker's start-up is mostly imports: `import xchannels` in a
    # fresh interpreter must not pull in queue (threading, collections, ...),
    # types or operator. ChannelFull (a queue.Full) is then made on first
    # use, by a full channel or by the attribute lookup, and is one class.
    subinterp.run(
        """
        import sys
        import xchannels
        heavy = {"queue", "threading", "collections", "types", "operator", "typing"}
        assert not heavy & set(sys.modules), sorted(heavy & set(sys.modules))
        ch = xchannels.Channel(1)
        ch.put(1)
        try:
            ch.put_nowait(2)
        except Exception as e:
            caught = e
        import queue
        assert isinstance(caught, queue.Full), type(caught).__mro__
        assert type(caught) is xchannels.ChannelFull is xchannels._xchannels.ChannelFull
        assert issubclass(xchannels.ChannelFull, xchannels.ChannelError)
        assert issubclass(xchannels.ChannelEmpty, queue.Empty)
        assert ch.get() == 1
        """
    )


def test_helper_surfaces_remote_errors(sub):
    with pytest.raises(subinterp.SubinterpreterError) as info:
        sub.run("raise ValueError('remote boom')")
    assert "ValueError: remote boom" in str(info.value)
    assert "Traceback" in str(info.value)


def test_import_in_four_interpreters_at_once():
    code = """
    import xchannels
    ch = xchannels.Channel.from_id(cid)
    for i in range(1000):
        ch.put((n, i, str(i)))
    """
    ch = xchannels.Channel()
    codes = [code.replace("n, i", f"{n}, i") for n in range(4)]
    subinterp.run_parallel(codes, n=0, cid=ch.id)
    got = sorted(ch.get_nowait() for _ in range(4000))
    assert got == sorted((n, i, str(i)) for n in range(4) for i in range(1000))
    assert ch.empty()


def test_vertical_slice_between_two_subinterpreters():
    """int, str and tuple go from one own-GIL sub-interpreter to another."""
    ch = xchannels.Channel()
    done = xchannels.Channel()
    producer = subinterp.start(
        """
        import xchannels
        ch = xchannels.Channel.from_id(cid)
        ch.put(42)
        ch.put("héllo \\U0001f600")
        ch.put((1, ("nested", 2.5), None, True))
        """,
        cid=ch.id,
    )
    consumer = subinterp.start(
        """
        import xchannels
        ch = xchannels.Channel.from_id(cid)
        done = xchannels.Channel.from_id(did)
        got = (ch.get(timeout=10), ch.get(timeout=10), ch.get(timeout=10))
        assert got == (42, "héllo \\U0001f600", (1, ("nested", 2.5), None, True)), got
        assert type(got[2][3]) is bool
        done.put("ok")
        """,
        cid=ch.id,
        did=done.id,
    )
    producer.join()
    consumer.join()
    assert done.get(timeout=10) == "ok"


def test_each_interpreter_has_its_own_module_state(sub):
    # The exception classes are per interpreter, and work in each.
    sub.run(
        """
        import queue, xchannels
        ch = xchannels.Channel(1)
        ch.put(1)
        try:
            ch.put_nowait(2)
        except queue.Full as e:
            assert type(e) is xchannels.ChannelFull
        else:
            raise AssertionError("no ChannelFull")
        """
    )


def test_module_state_lives_in_the_module_not_in_type_dicts():
    # The state is the module's own (PEP 489/573): no capsule on the module
    # or in a type's dict, and the garbage collector sees what the state
    # owns (m_traverse), here the exception classes.
    import gc

    from xchannels import _xchannels

    assert not hasattr(_xchannels, "_state")
    for t in (_xchannels.Channel, _xchannels.SharedBuffer):
        assert "_xchannels_state" not in vars(t)
    assert _xchannels.ChannelError in gc.get_referents(_xchannels)
    assert _xchannels.NotShareableError in gc.get_referents(_xchannels)


def test_module_state_after_a_fresh_import(sub):
    # A second module object (sys.modules entry dropped, module imported
    # again) gets a state of its own; its types and functions find theirs.
    sub.run(
        """
        import importlib.util, sys
        import xchannels._xchannels as first
        spec = importlib.util.find_spec("xchannels._xchannels")
        second = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(second)
        assert second is not first and second.Channel is not first.Channel
        ch = second.Channel(1)
        ch.put({"a": [1, 2]})
        assert ch.get() == {"a": [1, 2]}
        try:
            ch.close(); ch.get_nowait()
        except second.ChannelClosed:
            pass
        else:
            raise AssertionError("no ChannelClosed")
        assert second.is_shareable([1]) and second._encode_decode((1, "x")) == (1, "x")
        del second, ch
        import gc; gc.collect()
        """
    )


def test_interpreters_come_and_go_without_leaking(no_channel_leak):
    ch = xchannels.Channel()
    for _ in range(5):
        subinterp.run(
            """
            import xchannels
            ch = xchannels.Channel.from_id(cid)
            own = xchannels.Channel()
            ch.put((own, xchannels.SharedBuffer(b"abc")))
            """,
            cid=ch.id,
        )
    for _ in range(5):
        own, buf = ch.get_nowait()
        assert bytes(buf) == b"abc"
        own.put(1)
    del own, buf


@pytest.mark.skipif(sys.version_info < (3, 13), reason="3.12 has no _interpreters module")
def test_isolated_config_really_has_own_gil():
    import _interpreters

    iid = _interpreters.create("isolated")
    try:
        config = _interpreters.get_config(iid)
        assert config.gil == "own"
        assert config.check_multi_interp_extensions
    finally:
        _interpreters.destroy(iid)


# ---- what is made on first use is made once per interpreter --------------------
# The lazy classes (ChannelClosed on 3.13+, ChannelFull) and the cached
# helpers (pickle, xchannels._aio) are made by the first thread that needs
# them; making them runs Python code (an import), which lets another thread
# of the same interpreter in. Each test starts 8 threads on a barrier in a
# fresh own-GIL interpreter, 20 times. They used to make 8 classes, of which
# an `except xc.ChannelClosed` caught one.

_FIRST_USE_RACE = """
import sys, threading
assert "queue" not in sys.modules  # the lazy path is the one under test
import xchannels as xc
{setup}
barrier = threading.Barrier(8)
seen, caught = [], []
def hit():
    barrier.wait()
    try:
        {action}
    except xc.{exc_name} as e:
        caught.append(e)
    except Exception as e:
        seen.append(type(e))
threads = [threading.Thread(target=hit) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
assert not seen, f"{{len(seen)}} of 8 escaped except xc.{exc_name}: {{seen!r}}"
kinds = {{type(e) for e in caught}}
assert kinds == {{xc.{exc_name}}}, kinds
assert xc.{exc_name} is xc._xchannels.{exc_name}
"""


@pytest.mark.parametrize(
    "exc_name, setup, action",
    [
        ("ChannelClosed", "ch = xc.Channel(); ch.close()", "ch.put(1)"),
        ("ChannelFull", "ch = xc.Channel(1); ch.put(0)", "ch.put_nowait(1)"),
    ],
    ids=["ChannelClosed", "ChannelFull"],
)
def test_lazy_exception_is_one_class_under_racing_threads(exc_name, setup, action):
    code = _FIRST_USE_RACE.format(exc_name=exc_name, setup=setup, action=action)
    for _ in range(20):
        subinterp.run(code)


# A lost race used to leak the loser's reference: after 8 racing threads the
# cached object has exactly the references it has after one thread.
_CACHE_REFS = """
import sys, threading
import xchannels as xc
{setup}
barrier = threading.Barrier(n)
def hit():
    barrier.wait()
    {action}
threads = [threading.Thread(target=hit) for _ in range(n)]
for t in threads: t.start()
for t in threads: t.join()
cached = {cached}
xc.Channel.from_id(refs_id).put(sys.getrefcount(cached))
"""


@pytest.mark.parametrize(
    "setup, action, cached",
    [
        # pickle.dumps, loaded into the module state by the first fallback put
        (
            "from fractions import Fraction\nch = xc.Channel(fallback='pickle')",
            "ch.put(Fraction(1, 3))",
            "__import__('pickle').dumps",
        ),
        # xchannels._aio, imported into the module state by the first get_async
        (
            # (3.12's C _asyncio corrupts memory in a sub-interpreter: the
            # pure-Python asyncio, as tests/python/test_async.py does)
            "if sys.version_info < (3, 13): sys.modules['_asyncio'] = None\n"
            "import asyncio\nch = xc.Channel()\nfor i in range(n): ch.put(i)",
            "asyncio.run(ch.get_async())",
            "sys.modules['xchannels._aio']",
        ),
    ],
    ids=["pickle", "aio"],
)
def test_cached_helpers_are_loaded_once_under_racing_threads(setup, action, cached):
    if sys.version_info < (3, 13):
        # 3.12's ssl (imported by asyncio) corrupts the heap at exit when a
        # sub-interpreter imports it before the main interpreter did
        # (docs/limitations.md); the main interpreter imports it first.
        import ssl  # noqa: F401
    refs = xchannels.Channel()
    code = _CACHE_REFS.format(setup=setup, action=action, cached=cached)
    counts = []
    for n in (1, 8, 8, 8):
        subinterp.run(code, n=n, refs_id=refs.id)
        counts.append(refs.get(timeout=5))
    assert counts[1:] == [counts[0]] * 3, counts


_NO_MAIN_IDENT = """
import threading


class NotAThread:
    ident = "not an int"


threading.main_thread = NotAThread
try:
    import xchannels._xchannels
except TypeError as e:
    print("TypeError", e)
else:
    raise AssertionError("imported without the main thread's ident")
"""


def test_an_import_that_cannot_read_the_main_thread_ident_fails_cleanly():
    # The main interpreter's import reads threading.main_thread().ident. A
    # failure there went on with the error set into the rest of the import
    # (Python code run with an exception set: fatal on a debug CPython); it
    # now fails the import with that error.
    import os
    import subprocess

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-X", "dev", "-c", _NO_MAIN_IDENT],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("TypeError "), r.stdout
