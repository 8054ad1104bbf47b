"""tests/python/test_xidata.py: Channel, ProcessChannel and SharedBuffer as
CPython cross-interpreter data (bindings/xidata.cpp,
bindings/xidata_registry.c): what a user of the standard library's own
interpreters does with its queue works with them, without pickle."""

from __future__ import annotations

import gc
import sys

import pytest

import xchannels
from xchannels import _xchannels

BUILD = _xchannels.__build__

needs_registry = pytest.mark.skipif(
    sys.version_info < (3, 13),
    reason="CPython 3.12 has no per-interpreter registry for heap types: nothing is registered",
)
needs_stdlib = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="concurrent.interpreters is new in CPython 3.14"
)


def test_the_build_says_which_registry_it_uses():
    api = BUILD["xidata"]
    if sys.version_info < (3, 13):
        assert api is None
    elif sys.version_info < (3, 14):
        assert api.startswith("_PyCrossInterpreterData_RegisterClass")
    elif sys.version_info < (3, 16):
        assert api.startswith("_PyXIData_RegisterClass")


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.12 only: nothing is registered there")
def test_312_registers_nothing_and_says_so():
    import _xxsubinterpreters as interpreters  # type: ignore[import-not-found]

    assert not interpreters.is_shareable(xchannels.Channel())
    assert BUILD["xidata"] is None


@needs_registry
@pytest.mark.skipif(sys.version_info >= (3, 14), reason="3.13's private API; 3.14+ is tested below")
def test_313_set_main_attrs_carries_the_handles(no_channel_leak):
    import _interpreters  # type: ignore[import-not-found]

    ch, pc = xchannels.Channel(), xchannels.ProcessChannel()
    buf = xchannels.SharedBuffer(b"hello world")
    for obj in (ch, pc, buf):
        assert _interpreters.is_shareable(obj)
    iid = _interpreters.create("isolated")
    try:
        _interpreters.set___main___attrs(iid, {"ch": ch, "buf": buf, "pc": pc})
        err = _interpreters.exec(
            iid,
            "import xchannels as xc\n"
            "assert type(ch) is xc.Channel and type(pc) is xc.ProcessChannel\n"
            "ch.put((ch.id, bytes(buf), memoryview(buf).format))\n"
            "pc.put('via the segment')\n",
        )
        assert err is None, err
    finally:
        _interpreters.destroy(iid)
    assert ch.get(timeout=5) == (ch.id, b"hello world", "B")
    assert pc.get(timeout=5) == "via the segment"
    del ch, pc, buf
    gc.collect()


@needs_stdlib
def test_prepare_main_call_and_stdlib_queues_carry_the_handles(no_channel_leak):
    from concurrent import interpreters

    import array

    ch, pc = xchannels.Channel(), xchannels.ProcessChannel()
    buf = xchannels.SharedBuffer(array.array("d", [1.5, 2.5]))
    for obj in (ch, pc, buf):
        assert interpreters.is_shareable(obj), obj
    interp = interpreters.create()
    try:
        # prepare_main takes only shareable objects: it refused these before
        interp.prepare_main(ch=ch, buf=buf, pc=pc)
        interp.exec(
            "import xchannels as xc\n"
            "assert type(ch) is xc.Channel and type(pc) is xc.ProcessChannel\n"
            "ch.put((ch.id, memoryview(buf).tolist(), memoryview(buf).format))\n"
            "pc.put('via the segment')\n"
        )
        assert ch.get(timeout=5) == (ch.id, [1.5, 2.5], "d")
        assert pc.get(timeout=5) == "via the segment"

        # call(): arguments and the result
        got = interp.call(_echo_len, ch, buf)
        assert type(got) is xchannels.SharedBuffer and got == buf
        assert ch.get(timeout=5) == 16

        # a stdlib queue carries them both ways
        q = interpreters.create_queue()
        q.put(ch)
        q.put(buf)
        back = q.get(timeout=5)
        assert type(back) is xchannels.Channel and back.id == ch.id
        assert q.get(timeout=5) == buf
        interp.prepare_main(q=q)
        interp.exec("q.put(ch)\nq.put(buf[8:])")
        assert q.get(timeout=5).id == ch.id
        assert bytes(q.get(timeout=5)) == bytes(memoryview(buf).cast("B"))[8:]
    finally:
        interp.close()
    del ch, pc, buf, got, back
    gc.collect()


def _echo_len(c, b):  # runs in the sub-interpreter (by reference: importable)
    c.put(len(memoryview(b).cast("B")))
    return b


@needs_stdlib
def test_interpreter_pool_executor_takes_a_channel(no_channel_leak):
    from concurrent.futures import InterpreterPoolExecutor

    ch = xchannels.Channel()
    with InterpreterPoolExecutor(2) as ex:
        assert list(ex.map(_put_square, [ch] * 4, range(4))) == [None] * 4
    assert sorted(ch.get(timeout=5) for _ in range(4)) == [0, 1, 4, 9]
    del ch
    gc.collect()


def _put_square(c, i):
    c.put(i * i)
