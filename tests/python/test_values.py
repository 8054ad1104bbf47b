"""tests/python/test_values.py: what travels, exactly, without pickle
(bindings/values.cpp)."""

from __future__ import annotations

import array
import enum
import math
import struct
import sys
from collections import namedtuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import subinterp
import xchannels
from xchannels import Channel, NotShareableError

# ---- exact comparison -------------------------------------------------------


def same(a, b) -> bool:
    """Equal, with the same types, floats bit for bit (iterative, so deep
    nesting is fine)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, float):
            if struct.pack("<d", x) != struct.pack("<d", y):
                return False
        elif isinstance(x, tuple):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y))
        elif x != y:
            return False
    return True


def roundtrip_local(value):
    ch = Channel()
    ch.put(value)
    return ch.get_nowait()


# ---- two own-GIL sub-interpreters forwarding: main -> A -> B -> main --------

FORWARD = """
import xchannels
src = xchannels.Channel.from_id(src_id)
dst = xchannels.Channel.from_id(dst_id)
for item in src:
    dst.put(item)
dst.close()
"""


@pytest.fixture(scope="module")
def relay():
    """Values put into `inbox` come back in `outbox` after crossing two
    sub-interpreters (each decodes, then re-encodes)."""
    inbox, mid, outbox = Channel(), Channel(), Channel()
    a = subinterp.start(FORWARD, src_id=inbox.id, dst_id=mid.id)
    b = subinterp.start(FORWARD, src_id=mid.id, dst_id=outbox.id)

    def send(value):
        inbox.put(value)
        return outbox.get(timeout=60)

    yield send
    inbox.close()
    a.join()
    b.join()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF)),
    st.binary(),
)
values = st.recursive(scalars, lambda children: st.lists(children, max_size=6).map(tuple), max_leaves=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_property_roundtrip_between_subinterpreters(relay, value):
    got = relay(value)
    assert same(got, value), (got, value)


@given(values)
def test_property_roundtrip_local(value):
    assert same(roundtrip_local(value), value)


SPECIAL = [
    2**10000,
    -(2**10000),
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    0.0,
    -0.0,
    math.inf,
    -math.inf,
    math.nan,
    struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0],  # NaN payload
    "",
    "\ud800",
    "a\udfffb",
    "\U0010ffff",
    "é" * 100,
    b"",
    b"\x00" * 100,
    bytes(range(256)) * 400,  # above the SharedBuffer threshold
    True,
    False,
    None,
    (),
    ((),),
    tuple(range(10_000)),
]


@pytest.mark.parametrize("value", SPECIAL, ids=lambda v: type(v).__name__ + str(len(repr(v))))
def test_special_values_between_subinterpreters(relay, value):
    assert same(relay(value), value)


def test_ten_megabyte_bytes(relay):
    value = bytes(range(256)) * (10 * 1024 * 1024 // 256)
    assert relay(value) == value


def test_nested_200_deep(relay):
    value = "leaf"
    for i in range(200):
        value = (i, value)
    assert same(relay(value), value)


def _boundary_values():
    # Encodings just under, at and over the single-pass encoder's 512-byte
    # stack buffer (bindings/values.cpp kFastBytes), and the short-ASCII
    # decoder's limits (len 0, 1, 2, 256, 257; a non-ASCII byte at the end).
    out = []
    for n in (490, 500, 505, 506, 507, 508, 509, 510, 511, 512, 600):
        out.append(("a" * n,))
        out.append((1, "b" * n))
        out.append((b"\x80" * n, None))
        out.append((2.5, ("x" * n, (True, -(2**63)))))
        out.append((2**64, "c" * n))  # a big int inside: two-pass fallback
    for n in (0, 1, 2, 7, 8, 9, 255, 256, 257):
        out.append("z" * n)
        out.append("z" * max(n - 1, 0) + "\xe9")
        out.append(("q" * n, "\u20ac" * n, "\U0001f600" * n))
    return out


@pytest.mark.parametrize("value", _boundary_values(), ids=lambda v: str(len(repr(v))))
def test_single_pass_and_ascii_boundaries(value):
    assert same(roundtrip_local(value), value)
    assert same(xchannels._xchannels._encode_decode(value), value)


def test_single_pass_fallback_keeps_the_error_place():
    # The fast walk gives up at the list; the two-pass encoder names it.
    ch = Channel()
    with pytest.raises(NotShareableError, match=r"item \[3\]\[1\]: list is not shareable"):
        ch.put((1, "a", 2.5, (None, [1]), b"x"))
    assert ch.empty()
    ch.put((1, "ok"))
    assert ch.get_nowait() == (1, "ok")


def test_bool_stays_bool_and_subclasses_arrive_as_base():
    class Color(enum.IntEnum):
        RED = 1

    class MyStr(str):
        pass

    class MyFloat(float):
        pass

    class MyBytes(bytes):
        pass

    Point = namedtuple("Point", "x y")
    got = roundtrip_local((True, Color.RED, MyStr("s"), MyFloat(1.5), MyBytes(b"b"), Point(1, 2)))
    assert same(got, (True, 1, "s", 1.5, b"b", (1, 2)))
    assert type(roundtrip_local(Color.RED)) is int
    assert type(roundtrip_local(MyFloat(2.5))) is float


# ---- what does not travel ---------------------------------------------------

NOT_SHAREABLE = [
    ([], "list"),
    ({}, "dict"),
    (set(), "set"),
    (object(), "object"),
    (1j, "complex"),
    (frozenset(), "frozenset"),
    (len, "builtin_function_or_method"),
]


@pytest.mark.parametrize("value,name", NOT_SHAREABLE, ids=[n for _, n in NOT_SHAREABLE])
def test_not_shareable_raises_and_sends_nothing(value, name):
    ch = Channel()
    ch.put("before")
    with pytest.raises(NotShareableError, match=f"^{name} is not shareable$"):
        ch.put(value)
    assert isinstance(NotShareableError(), TypeError)
    assert ch.qsize() == 1
    assert not xchannels.is_shareable(value)
    ch.put("after")
    assert ch.get_nowait() == "before"
    assert ch.get_nowait() == "after"


def test_not_shareable_names_the_place():
    ch = Channel()
    with pytest.raises(NotShareableError, match=r"^item \[2\]\[0\]: list is not shareable$"):
        ch.put((1, 2, ([3],)))
    with pytest.raises(NotShareableError, match=r"^item \[1\]: dict is not shareable$"):
        ch.put(("ok", {}))
    assert ch.empty()


def test_deep_nesting_is_refused_not_a_crash(relay):
    value = ()
    for _ in range(200_000):
        value = (value,)
    ch = Channel()
    with pytest.raises(NotShareableError, match="nested deeper than 1000"):
        ch.put(value)
    assert not xchannels.is_shareable(value)
    assert ch.empty()
    ok = ()
    for _ in range(999):
        ok = (ok,)
    assert same(relay(ok), ok)


def test_is_shareable_is_deep():
    assert xchannels.is_shareable((1, ("a", b"b", (None, 2.0)), 2**100))
    assert not xchannels.is_shareable((1, ("a", [1])))
    assert xchannels.is_shareable(bytearray(b"x"))
    assert xchannels.is_shareable(Channel())


# ---- buffer exporters become SharedBuffers ----------------------------------


def test_buffer_exporters_arrive_as_shared_buffers(relay):
    cases = [
        bytearray(b"hello"),
        memoryview(b"abcdef"),
        array.array("d", [1.5, -2.0, math.inf]),
        array.array("i", range(10)),
        memoryview(bytes(range(24))).cast("i", (2, 3)),
    ]
    for original in cases:
        got = relay(original)
        assert type(got) is xchannels.SharedBuffer
        m, o = memoryview(got), memoryview(original)
        assert (m.format, m.itemsize, m.shape) == (o.format, o.itemsize, o.shape)
        assert m.tolist() == o.tolist()
        assert m.readonly


def test_non_contiguous_exporter_is_copied_contiguous():
    original = memoryview(bytes(range(20)))[::2]
    got = roundtrip_local(original)
    assert bytes(got) == bytes(range(0, 20, 2))
    assert memoryview(got).c_contiguous


def test_exporter_inside_tuple(relay):
    got = relay((1, bytearray(b"xy"), (array.array("h", [1, 2]),)))
    assert got[0] == 1
    assert bytes(got[1]) == b"xy"
    assert memoryview(got[2][0]).tolist() == [1, 2]


# ---- nothing is released back in the sender (cpython gh-110693) ------------


def test_refcount_unchanged_after_subinterpreter_drains(sub):
    """CPython's queues keep each sent object alive until a pending call in
    the sender releases it; with more than 300 queued that overflows and the
    references leak (gh-110693). Here nothing of the sender's is kept."""
    obj = "a string that is sent 5000 times" + str(id(sub))
    ch = Channel()
    before = sys.getrefcount(obj)
    for _ in range(5000):
        ch.put(obj)
    assert sys.getrefcount(obj) == before
    sub.run(
        """
        import xchannels
        ch = xchannels.Channel.from_id(cid)
        n = 0
        while not ch.empty():
            assert ch.get_nowait() == expected
            n += 1
        assert n == 5000, n
        """,
        cid=ch.id,
        expected=obj,
    )
    assert sys.getrefcount(obj) == before
