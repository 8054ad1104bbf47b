"""tests/python/test_bad_input.py: every public function given wrong types,
wrong values, oversized and malformed input. Each raises a specific
exception and leaves the channel usable, with nothing half-sent."""

from __future__ import annotations

import array
import decimal
import fractions
import io
import sys
import threading

import pytest

import xchannels
from xchannels import Channel, NotShareableError, SharedBuffer


class Weird:
    pass


class ExplodingBuffer:
    """A buffer exporter whose export fails."""

    def __buffer__(self, flags):
        raise RuntimeError("export failed")


NOT_SHAREABLE = [
    [object()],
    {"a": object()},
    {object()},
    frozenset({Weird}),
    fractions.Fraction(1, 3),  # no lossless int or float: refused, never rounded
    decimal.Decimal("1.1"),
    object(),
    Weird(),
    Weird,
    len,
    lambda: 1,
    io.BytesIO(),
    threading.Lock(),
    range(3),
    slice(1),
    Ellipsis,
    NotImplemented,
    type,
    sys,
    iter([]),
    (x for x in ()),
    (1, (2, [3, object()])),
    ((), {"k": [1, {2: len}]}),
]


@pytest.fixture
def ch():
    c = Channel(4)
    c.put("sentinel")
    yield c
    # Whatever the test did, the channel still works and kept its item.
    c.put("after")
    assert c.get_nowait() == "sentinel"
    assert c.get_nowait() == "after"
    assert c.empty()


@pytest.mark.parametrize("value", NOT_SHAREABLE, ids=lambda v: type(v).__name__)
def test_every_non_shareable_value(ch, value):
    for send in (ch.put, ch.put_nowait, lambda v: ch.put_many([1, v])):
        with pytest.raises(NotShareableError, match="is not shareable"):
            send(value)
    assert not xchannels.is_shareable(value)
    assert ch.qsize() == 1


@pytest.mark.skipif(sys.version_info < (3, 12), reason="__buffer__ is 3.12+")
def test_failing_buffer_export(ch):
    # NotShareableError with the exporter's own error chained as the cause.
    with pytest.raises(NotShareableError, match="ExplodingBuffer cannot be shared as a buffer: export failed") as info:
        ch.put(ExplodingBuffer())
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(NotShareableError, match=r"^item \[1\]: ExplodingBuffer cannot be shared as a buffer: export failed"):
        ch.put((1, ExplodingBuffer()))
    with pytest.raises(NotShareableError, match=r"^item \[0\]\['k'\]: ExplodingBuffer"):
        ch.put([{"k": ExplodingBuffer()}])
    assert not xchannels.is_shareable(ExplodingBuffer())


@pytest.mark.skipif(sys.version_info < (3, 12), reason="__buffer__ is 3.12+")
def test_put_many_keeps_the_cause_of_a_bad_item(ch):
    # put_many re-raises with the index added; the exporter's own error
    # stays the cause, as it is for put().
    with pytest.raises(
        NotShareableError,
        match=r"^put_many: items\[1\]: ExplodingBuffer cannot be shared as a buffer: "
        r"export failed \(nothing was sent\)$",
    ) as info:
        ch.put_many([1, ExplodingBuffer()])
    assert isinstance(info.value.__cause__, RuntimeError)
    assert str(info.value.__cause__) == "export failed"
    assert ch.qsize() == 1


class FailingIndex:
    """An integer of another library whose __index__ fails."""

    def __index__(self):
        raise ValueError("no index today")


class ReprKey(int):
    """An int key whose repr() is Python code."""

    def __repr__(self):
        return "ReprKey(1)"


class UnreprKey(int):
    """An int key whose repr() fails."""

    def __repr__(self):
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    "value,place",
    [
        ([FailingIndex()], r"item \[0\]"),
        ({"k": FailingIndex()}, r"item \['k'\]"),
        ({ReprKey(1): [FailingIndex()]}, r"item \[ReprKey\(1\)\]\[0\]"),
        ({UnreprKey(1): FailingIndex()}, r"item \[\?\]"),
    ],
    ids=["list", "str-key", "repr-key", "unrepr-key"],
)
def test_a_failing_conversion_names_its_place_under_any_key(ch, value, place):
    # The place is rendered (each key's repr() run) only once the
    # conversion's own error is fetched: before, repr() ran with that error
    # set, which a debug CPython aborts on (PyObject_Repr asserts).
    for send in (ch.put, ch.put_nowait):
        with pytest.raises(
            NotShareableError, match=rf"^{place}: FailingIndex\.__index__\(\) failed: no index today$"
        ) as info:
            send(value)
        assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(NotShareableError, match=rf"^put_many: items\[1\]: {place}: FailingIndex") as info:
        ch.put_many([1, value])
    assert isinstance(info.value.__cause__, ValueError)
    assert not xchannels.is_shareable(value)
    assert ch.qsize() == 1


class InterruptedIndex:
    """Ctrl-C lands while __index__ runs."""

    def __index__(self):
        raise KeyboardInterrupt


def test_ctrl_c_while_converting_is_not_made_a_not_shareable_error(ch):
    # As MemoryError, what is not an Exception is not about the value: it
    # goes through unchanged, and nothing is sent.
    for send in (ch.put, ch.put_nowait, lambda v: ch.put_many([1, v])):
        with pytest.raises(KeyboardInterrupt):
            send({"k": [InterruptedIndex()]})
    assert ch.qsize() == 1


class FloatOnce:
    """A timeout whose __float__ answers once, then fails."""

    def __init__(self, value):
        self.value = value
        self.calls = 0

    def __float__(self):
        self.calls += 1
        if self.calls > 1:
            raise ValueError("timeout read twice")
        return self.value


def test_a_timeout_is_read_once():
    # put/get validate the timeout up front and later compute the deadline
    # from the number they read then. Before, the deadline read the object
    # again: a second __float__ that failed left its error set while the
    # call went on (put returned None with an exception set: SystemError,
    # a fatal error on a debug CPython; a full channel waited forever).
    from xchannels import ChannelEmpty, ChannelFull, ProcessChannel

    for ch in (Channel(1), ProcessChannel(1)):
        t = FloatOnce(5.0)
        ch.put("a", timeout=t)
        assert t.calls == 1
        t = FloatOnce(0.05)
        with pytest.raises(ChannelFull):
            ch.put("b", timeout=t)
        assert t.calls == 1
        assert ch.get(timeout=FloatOnce(5.0)) == "a"
        t = FloatOnce(0.05)
        with pytest.raises(ChannelEmpty):
            ch.get(timeout=t)
        assert t.calls == 1
        ch.put("c")
        assert ch.get_nowait() == "c"
    ch = Channel(1)
    t = FloatOnce(5.0)
    assert ch.put_many(["d"], timeout=t) == 1 and t.calls == 1
    t = FloatOnce(5.0)
    assert ch.get_many(5, timeout=t) == ["d"] and t.calls == 1


class FailingFloat:
    def __float__(self):
        raise ZeroDivisionError("no float today")


def test_a_bad_timeout_says_why(ch):
    # Not a number: TypeError, with float()'s own error as the cause. A
    # number's own error goes through as queue.Queue lets it.
    with pytest.raises(TypeError, match="^timeout must be a number or None, not str$") as info:
        ch.get(timeout="1")
    assert isinstance(info.value.__cause__, TypeError)
    with pytest.raises(OverflowError):
        ch.put(1, timeout=10**400)
    with pytest.raises(ZeroDivisionError, match="no float today"):
        ch.get(timeout=FailingFloat())
    with pytest.raises(ZeroDivisionError, match="no float today"):
        ch.join(timeout=FailingFloat())
    assert ch.qsize() == 1


@pytest.mark.parametrize(
    "call,exc",
    [
        (lambda c: c.put(1, timeout=-0.1), ValueError),
        (lambda c: c.put(1, timeout=float("nan")), ValueError),
        (lambda c: c.put(1, timeout="1"), TypeError),
        (lambda c: c.put(1, timeout=[1]), TypeError),
        (lambda c: c.get(timeout=-1), ValueError),
        (lambda c: c.get(block=True, timeout=complex(1)), TypeError),
        (lambda c: c.get(1, 2, 3), TypeError),
        (lambda c: c.get(bogus=1), TypeError),
        (lambda c: c.put(), TypeError),
        (lambda c: c.put(1, True, None, 4), TypeError),
        (lambda c: c.put_nowait(), TypeError),
        (lambda c: c.get_nowait(1), TypeError),
        (lambda c: c.put_many(5), TypeError),
        (lambda c: c.put_many(None), TypeError),
        (lambda c: c.get_many(), TypeError),
        (lambda c: c.get_many(-5), ValueError),
        (lambda c: c.get_many("3"), TypeError),
        (lambda c: c.get_many(2**70), OverflowError),
        (lambda c: c.close(True, 1), TypeError),
        (lambda c: c.close(bogus=True), TypeError),
        (lambda c: c.shutdown(True, 1), TypeError),
        (lambda c: c.task_done(1), TypeError),
        (lambda c: (c.task_done(), c.task_done()), ValueError),  # one item was put
        (lambda c: c.join(timeout=-1), ValueError),
        (lambda c: c.join(timeout="1"), TypeError),
        (lambda c: c.join(1, 2), TypeError),
        (lambda c: c.close_after(0), ValueError),
        (lambda c: c.close_after(-3), ValueError),
        (lambda c: c.close_after("1"), TypeError),
        (lambda c: c.close_after(2**70), OverflowError),
        (lambda c: c.put_nowait(obj=1), TypeError),
        (lambda c: c.qsize(1), TypeError),
        (lambda c: setattr(c, "maxsize", 3), AttributeError),
        (lambda c: setattr(c, "anything", 3), AttributeError),
    ],
)
def test_wrong_arguments_to_channel_methods(ch, call, exc):
    with pytest.raises(exc):
        call(ch)


def test_bool_that_raises(ch):
    class Bad:
        def __bool__(self):
            raise ZeroDivisionError("no truth")

    with pytest.raises(ZeroDivisionError):
        ch.put(1, block=Bad())
    with pytest.raises(ZeroDivisionError):
        ch.get(block=Bad())


@pytest.mark.parametrize(
    "args,kwargs,exc",
    [
        (("1",), {}, TypeError),
        ((1.0,), {}, TypeError),
        ((None,), {}, TypeError),
        ((2**100,), {}, OverflowError),
        ((1, 2), {}, TypeError),
        ((), {"size": 1}, TypeError),
        ((), {"type": object}, TypeError),
        ((), {"type": "int"}, TypeError),
        ((), {"type": int | range}, TypeError),
        ((), {"type": tuple[object]}, TypeError),
        ((), {"type": dict[str]}, TypeError),
        ((), {"fallback": "json"}, ValueError),
        ((), {"fallback": True}, ValueError),
    ],
)
def test_wrong_channel_constructor_arguments(args, kwargs, exc):
    with pytest.raises(exc):
        Channel(*args, **kwargs)


@pytest.mark.parametrize(
    "value,exc",
    [
        ("1", TypeError),
        (1.0, TypeError),
        (None, TypeError),
        (-1, xchannels.ChannelNotFoundError),
        (0, xchannels.ChannelNotFoundError),
        (2**64, xchannels.ChannelNotFoundError),
        (2**200, xchannels.ChannelNotFoundError),
    ],
)
def test_wrong_ids(value, exc):
    with pytest.raises(exc):
        Channel.from_id(value)


@pytest.mark.parametrize(
    "args,exc",
    [
        (([],), ValueError),
        ((None,), TypeError),
        ((5,), TypeError),
        (([1, 2],), TypeError),
        (([Channel(), "x"],), TypeError),
        (([Channel()], -1), ValueError),
        (([Channel()], "x"), TypeError),
    ],
)
def test_wrong_select_arguments(args, exc):
    with pytest.raises(exc):
        xchannels.select(*args)


@pytest.mark.parametrize("value", ["text", 1, None, [1], object()])
def test_wrong_shared_buffer_arguments(value):
    with pytest.raises(TypeError):
        SharedBuffer(value)


def test_shared_buffer_bad_indexing():
    b = SharedBuffer(b"abc")
    for bad in (3, -4, 2**70):
        with pytest.raises(IndexError):
            b[bad]
    for bad in ("a", 1.0, None):
        with pytest.raises(TypeError):
            b[bad]
    with pytest.raises(ValueError):
        b[::-1]
    with pytest.raises(TypeError):
        b[0] = 1


def test_oversized_and_odd_values_travel_or_refuse_cleanly(ch):
    huge_int = 1 << 1_000_000
    c = Channel()
    c.put(huge_int)
    assert c.get_nowait() == huge_int
    wide = "\U0010ffff" * 100_000
    c.put(wide)
    assert c.get_nowait() == wide
    empty_views = [memoryview(b""), bytearray(), array.array("d")]
    for v in empty_views:
        c.put(v)
        assert len(c.get_nowait()) == 0
    deep = ()
    for _ in range(100_000):
        deep = (deep,)
    with pytest.raises(NotShareableError):
        ch.put(deep)
    with pytest.raises(NotShareableError):
        ch.put_many([deep])
