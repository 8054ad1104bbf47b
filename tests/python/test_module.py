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
