"""tests/python/test_values.py: what travels, exactly, without pickle
(bindings/values.cpp)."""

from __future__ import annotations

import array
import collections
import decimal
import enum
import fractions
import gc
import math
import os
import struct
import subprocess
import sys
import textwrap
import time
from collections import namedtuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import subinterp
import xchannels
from xchannels import Channel, NotShareableError
from xchannels import _xchannels as core

# ---- exact comparison -------------------------------------------------------


def _canon(e):
    """A sortable form of a hashable value that keeps types and does not
    depend on set iteration order."""
    if isinstance(e, (set, frozenset)):
        return (type(e).__name__, tuple(sorted(_canon(m) for m in e)))
    if isinstance(e, tuple):
        return (type(e).__name__, tuple(_canon(m) for m in e))
    return (type(e).__name__, repr(e))


def _members(s):
    return sorted(_canon(e) for e in s)


def same(a, b) -> bool:
    """Equal, with the same types all the way down, floats (and complex
    parts) bit for bit, dicts in the same order (iterative, so deep nesting
    is fine)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, float):
            if struct.pack("<d", x) != struct.pack("<d", y):
                return False
        elif isinstance(x, complex):
            if struct.pack("<dd", x.real, x.imag) != struct.pack("<dd", y.real, y.imag):
                return False
        elif isinstance(x, (tuple, list)):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y))
        elif isinstance(x, dict):
            if len(x) != len(y):
                return False
            stack.extend(zip(x.keys(), y.keys()))
            stack.extend(zip(x.values(), y.values()))
        elif isinstance(x, (set, frozenset)):
            if _members(x) != _members(y):
                return False
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
# Hashable values for dict keys and set members (no NaN: a NaN member
# compares unequal to itself, so no two sets would ever match).
hashables = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**100), max_value=2**100),
        st.floats(allow_nan=False),
        st.complex_numbers(allow_nan=False),
        st.text(max_size=8),
        st.binary(max_size=8),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(tuple), st.frozensets(children, max_size=4)
    ),
    max_leaves=8,
)
values = st.recursive(
    st.one_of(scalars, st.complex_numbers(allow_nan=True, allow_infinity=True)),
    lambda children: st.one_of(
        st.lists(children, max_size=6).map(tuple),
        st.lists(children, max_size=6),
        st.dictionaries(hashables, children, max_size=5),
        st.sets(hashables, max_size=5),
        st.frozensets(hashables, max_size=5),
    ),
    max_leaves=40,
)


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
    [],
    {},
    set(),
    frozenset(),
    [[[]]],
    {"a": {"b": {"c": []}}},
    complex(-0.0, math.inf),
    complex(math.nan, -0.0),
    list(range(10_000)),
    {f"k{i}": (i, i * 0.5, str(i)) for i in range(5_000)},
    {(1, "a"): frozenset({1, 2}), frozenset({(3,)}): [None]},
    {i: None for i in range(-5, 5)},  # int keys, negative too
    [b"x" * 70_000, {"big": bytes(100_000)}],  # large bytes inside containers
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


def test_error_place_inside_a_small_value():
    ch = Channel()
    with pytest.raises(NotShareableError, match=r"^item \[3\]\[1\]\[0\]: object is not shareable"):
        ch.put((1, "a", 2.5, (None, [object()]), b"x"))
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

class Weird:
    """Hashable, not shareable."""


NOT_SHAREABLE = [
    (object(), "object"),
    (fractions.Fraction(1, 3), "Fraction"),
    (decimal.Decimal("0.1"), "decimal.Decimal"),
    (len, "builtin_function_or_method"),
]


@pytest.mark.parametrize("value,name", NOT_SHAREABLE, ids=[n for _, n in NOT_SHAREABLE])
def test_not_shareable_raises_and_sends_nothing(value, name):
    ch = Channel()
    ch.put("before")
    with pytest.raises(NotShareableError, match=f"^{name} is not shareable \\(pass fallback='pickle'"):
        ch.put(value)
    assert isinstance(NotShareableError(), TypeError)
    assert ch.qsize() == 1
    assert not xchannels.is_shareable(value)
    ch.put("after")
    assert ch.get_nowait() == "before"
    assert ch.get_nowait() == "after"


def test_not_shareable_names_the_place():
    ch = Channel()
    with pytest.raises(NotShareableError, match=r"^item \[2\]\[0\]\[1\]: object is not shareable"):
        ch.put((1, 2, ([3, object()],)))
    with pytest.raises(NotShareableError, match=r"^item \[1\]\['b'\]\[0\]: object is not shareable"):
        ch.put(("ok", {"a": 1, "b": [object()]}))
    with pytest.raises(NotShareableError, match=r"^item \[0\]\.keys\(\)\[1\]: Weird is not shareable"):
        ch.put([{1: 2, Weird(): 3}])
    with pytest.raises(NotShareableError, match=r"^item \{#0\}: Weird is not shareable"):
        ch.put({Weird()})
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
    assert xchannels.is_shareable((1, ("a", [1, {2: {3}}])))
    assert not xchannels.is_shareable((1, ("a", [1, {2: {Weird()}}])))
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


# ---- containers: copies, limits, subclasses, numbers of other libraries ------------


def test_containers_are_copied_at_put():
    ch = Channel()
    record = {"name": "a", "tags": ["x"], "pos": (1, 2)}
    ch.put(record)
    record["tags"].append("changed after put")
    record["name"] = "b"
    got = ch.get_nowait()
    assert got == {"name": "a", "tags": ["x"], "pos": (1, 2)}
    assert got is not record and got["tags"] is not record["tags"]


@pytest.mark.parametrize("make", ["list", "dict"])
def test_a_value_that_contains_itself_is_refused(make):
    ch = Channel()
    if make == "list":
        value = [1]
        value.append(value)
    else:
        value = {"k": 1}
        value["self"] = value
    with pytest.raises(NotShareableError, match=r"nested deeper than 1000 levels .*\(does it contain itself\?\)"):
        ch.put(value)
    assert not xchannels.is_shareable(value)
    assert ch.empty()
    ch.put("still usable")
    assert ch.get_nowait() == "still usable"


@pytest.mark.parametrize("kind", [list, dict, set])
def test_200000_levels_of_nesting_are_refused_not_a_crash(kind):
    value = frozenset() if kind is set else kind()
    for _ in range(200_000):
        if kind is list:
            value = [value]
        elif kind is dict:
            value = {"k": value}
        else:
            value = frozenset({value})
    ch = Channel()
    with pytest.raises(NotShareableError, match="nested deeper than 1000"):
        ch.put(value)
    assert ch.empty()


def test_a_large_dict_travels(relay):
    value = {f"key{i}": i for i in range(200_000)}
    assert same(relay(value), value)


def test_encoding_that_changes_the_container_is_refused():
    ch = Channel()

    class Shrinks:
        """Integral-like (__index__): the encoder calls it, and it empties
        the list being sent."""

        def __init__(self, victim):
            self.victim = victim

        def __index__(self):
            self.victim.clear()
            return 1

    victim = [0, 1, 2]
    victim[0] = Shrinks(victim)
    with pytest.raises(RuntimeError, match=r"list changed size while it was being sent"):
        ch.put(victim)
    assert ch.empty()


def test_index_types_arrive_as_int():
    class Small:
        def __index__(self):
            return 7

    class Huge:
        def __index__(self):
            return 2**100

    got = roundtrip_local([Small(), Huge(), (Small(),)])
    assert same(got, [7, 2**100, (7,)])


PointNT = collections.namedtuple("PointNT", "x y")  # importable: pickles by name


def test_subclass_rule_without_and_with_the_fallback():
    class Color(enum.IntEnum):
        RED = 1

    class Mode(str, enum.Enum):
        FAST = "fast"

    Point = PointNT
    od = collections.OrderedDict([("a", 1), ("b", 2), ("c", 3)])
    od.move_to_end("a")
    dd = collections.defaultdict(list, {"k": [1]})
    counter = collections.Counter("aab")
    value = [Color.RED, Mode.FAST, Point(1, 2), od, dd, counter]
    # Without the fallback: each arrives as its built-in base, data kept
    # (an OrderedDict's order too).
    got = roundtrip_local(value)
    assert same(got, [1, "fast", (1, 2), {"b": 2, "c": 3, "a": 1}, {"k": [1]}, {"a": 2, "b": 1}])
    assert list(got[3]) == ["b", "c", "a"]
    # With it: pickled, so they keep their class (defined here: importable
    # in this interpreter).
    ch = Channel(fallback="pickle")
    ch.put([Point(1, 2), od, dd])
    p, o, d = ch.get_nowait()
    assert type(p) is Point and type(o) is collections.OrderedDict and type(d) is collections.defaultdict
    assert list(o) == ["b", "c", "a"] and d.default_factory is list


def test_numpy_scalars_arrive_as_python_scalars(relay):
    np = pytest.importorskip("numpy", reason="NumPy is not installed here")
    value = [np.int64(7), np.float32(1.1), np.bool_(True), np.complex64(1 + 2j),
             np.uint64(2**64 - 1), np.float16(0.1), np.str_("s"), np.int8(-3)]
    want = [7, float(np.float32(1.1)), True, complex(np.complex64(1 + 2j)),
            2**64 - 1, float(np.float16(0.1)), "s", -3]
    assert same(relay(value), want)
    assert same(roundtrip_local(np.int64(5)), 5)  # at the top level too (not a SharedBuffer)
    assert same(roundtrip_local(np.float64(0.5)), 0.5)
    ch = Channel()
    # never lossy: long double and datetimes are refused, naming the type
    with pytest.raises(NotShareableError, match=r"^item \[1\]: numpy.longdouble is not shareable"):
        ch.put([1, np.longdouble(1) / 3])
    with pytest.raises(NotShareableError, match="numpy.datetime64"):
        ch.put(np.datetime64("2020-01-01"))
    # an array NumPy cannot describe as a buffer: NotShareableError, cause chained
    with pytest.raises(NotShareableError, match="cannot be shared as a buffer") as info:
        ch.put(np.array(["2020-01-01"], dtype="datetime64[D]"))
    assert isinstance(info.value.__cause__, ValueError)
    assert ch.empty()


# ---- the pickle fallback -----------------------------------------------------------


def test_fallback_pickles_only_what_does_not_travel(relay):
    ch = Channel(fallback="pickle")
    assert ch.fallback == "pickle" and Channel().fallback is None
    assert Channel.from_id(ch.id).fallback == "pickle"
    buf = xchannels.SharedBuffer(b"zero-copy")
    ch.put({"f": fractions.Fraction(1, 3), "d": decimal.Decimal("0.1"), "buf": buf, "n": [1, 2]})
    got = ch.get_nowait()
    assert got["f"] == fractions.Fraction(1, 3) and got["d"] == decimal.Decimal("0.1")
    # native values inside stay native: the SharedBuffer is the same memory
    assert type(got["buf"]) is xchannels.SharedBuffer and got["buf"] == buf
    assert same(got["n"], [1, 2])


def test_fallback_errors_name_the_place_and_keep_the_channel_usable():
    ch = Channel(fallback="pickle")
    ch.put("before")
    with pytest.raises(NotShareableError, match=r"^item \['fn'\]: function cannot be pickled") as info:
        ch.put({"ok": 1, "fn": lambda: 1})
    assert info.value.__cause__ is not None
    assert ch.qsize() == 1
    assert ch.get_nowait() == "before"


class InterruptedPickle:
    """Ctrl-C lands while the value is pickled."""

    def __reduce__(self):
        raise KeyboardInterrupt


class FailingPickle:
    def __reduce__(self):
        raise ValueError("refuses to be pickled")


def test_pickling_errors_under_any_key_keep_their_cause():
    # The place (the keys' repr()) is rendered once pickle's own error is
    # fetched, never with it set (a debug CPython aborts on that).
    ch = Channel(fallback="pickle")
    ch.put("before")
    for value, place in [
        ({"fn": FailingPickle()}, r"item \['fn'\]"),
        ({(1, "two"): [FailingPickle()]}, r"item \[\(1, 'two'\)\]\[0\]"),
        ({frozenset(): {"k": FailingPickle()}}, r"item \[frozenset\(\)\]\['k'\]"),
    ]:
        with pytest.raises(
            NotShareableError, match=rf"^{place}: FailingPickle cannot be pickled: refuses to be pickled$"
        ) as info:
            ch.put(value)
        assert isinstance(info.value.__cause__, ValueError)
        with pytest.raises(NotShareableError, match=rf"^put_many: items\[0\]: {place}: ") as info:
            ch.put_many([value, 1])
        assert isinstance(info.value.__cause__, ValueError)
    # Ctrl-C is not about the value: it goes through unchanged.
    with pytest.raises(KeyboardInterrupt):
        ch.put({"k": InterruptedPickle()})
    with pytest.raises(KeyboardInterrupt):
        ch.put(InterruptedPickle())
    assert ch.qsize() == 1
    assert ch.get_nowait() == "before"


UNPICKLABLE_HERE = """
import xchannels
ch = xchannels.Channel.from_id(cid)
try:
    ch.get(timeout=30)
except xchannels.NotShareableError as e:
    assert "cannot be unpickled in this interpreter" in str(e), e
    assert str(e).startswith("item [1]: "), e
    assert e.__cause__ is not None
else:
    raise AssertionError("unpickled a class this interpreter does not have")
assert ch.get(timeout=30) == "next"
"""


def test_unpickling_failure_in_the_receiver_names_the_place(sub):
    ch = Channel(fallback="pickle")
    # Make the pickle name a module the sub-interpreter cannot import.
    class Local:
        pass

    Local.__module__ = "no_such_module_for_xchannels"
    Local.__qualname__ = "Local"
    sys.modules["no_such_module_for_xchannels"] = type(sys)("no_such_module_for_xchannels")
    sys.modules["no_such_module_for_xchannels"].Local = Local
    try:
        ch.put([1, Local()])
        ch.put("next")
        sub.run(UNPICKLABLE_HERE, cid=ch.id)
    finally:
        del sys.modules["no_such_module_for_xchannels"]


def test_repeated_dict_keys_are_shared_and_always_right():
    # Short ASCII dict keys come from a per-interpreter cache: the same key
    # object for each record of a stream, never a wrong one, whatever the
    # keys (many distinct, colliding, long, non-ASCII, not str).
    ch = Channel()
    ch.put_many([{"name": 1, "kind": 2}, {"name": 3, "kind": 4}])
    a, b = ch.get_nowait(), ch.get_nowait()
    assert [id(k) for k in a] == [id(k) for k in b]
    keys = [f"k{i}" for i in range(3000)] + ["é", "x" * 33, "", "a"]
    value = {k: i for i, k in enumerate(keys)}
    value[(1, "tuple-key")] = "t"
    value[7] = "int"
    for _ in range(3):
        got = roundtrip_local(value)
        assert same(got, value)
        assert list(got) == list(value)


# ---- large bytes lent by the main interpreter (bindings/values.cpp, Loans) ----


def _wait_loans_returned(timeout: float = 10.0) -> tuple[int, int]:
    """Run Python code in the main thread (pending calls run between
    bytecodes) until every lent object is back and dropped."""
    deadline = time.monotonic() + timeout
    while True:
        lent = core._lent_bytes()
        if lent == (0, 0) or time.monotonic() > deadline:
            return lent
        time.sleep(0.001)


def test_large_bytes_from_the_main_interpreter_are_lent_and_given_back():
    """bytes >= 64 KiB put by the main interpreter are not copied: the
    message holds the object itself, whose reference comes back once the
    receiver (here a sub-interpreter's thread) has its own copy."""
    assert _wait_loans_returned() == (0, 0)
    payloads = [bytes([i]) * (64 * 1024 + i) for i in range(50)]
    refs = [sys.getrefcount(p) for p in payloads]
    inbox, outbox = Channel(), Channel()
    w = subinterp.start(FORWARD, src_id=inbox.id, dst_id=outbox.id)
    inbox.put_many(payloads)
    lent, _ = core._lent_bytes()
    assert 0 < lent <= len(payloads)
    back = [outbox.get(timeout=60) for _ in payloads]
    inbox.close()
    w.join()
    assert back == payloads
    assert all(b is not p for b, p in zip(back, payloads))
    assert _wait_loans_returned() == (0, 0)
    assert [sys.getrefcount(p) for p in payloads] == refs


def test_a_main_thread_parked_in_get_gives_lent_bytes_back_while_it_waits():
    """The references a worker gives back wait for the main thread, which
    runs no pending call while it is parked in a channel wait: the wait's
    250 ms re-checks drop them, so they are not held until get() returns."""
    import threading

    assert _wait_loans_returned() == (0, 0)
    inbox, wake = Channel(), Channel()
    inbox.put_many([bytes([i]) * 100_000 for i in range(10)])  # only the messages hold them
    seen: list[tuple[float, tuple[int, int]]] = []

    def watcher() -> None:
        try:
            subinterp.run(
                """
                import xchannels
                ch = xchannels.Channel.from_id(cid)
                for _ in range(10):
                    ch.get()
                """,
                cid=inbox.id,
            )
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3 and core._lent_bytes() != (0, 0):
                time.sleep(0.01)
            seen.append((time.monotonic() - t0, core._lent_bytes()))
        finally:
            wake.put("done")

    t = threading.Thread(target=watcher)
    t.start()
    assert wake.get(timeout=60) == "done"  # parked here while the worker takes them
    t.join()
    took, lent = seen[0]
    assert lent == (0, 0), f"still lent/waiting after {took:.2f} s: {lent}"
    assert took < 2


def test_an_asyncio_receiver_in_the_main_interpreter_takes_lent_bytes_back():
    """get_async never goes through a blocking wait: its decoding takes the
    returned references back. The sub-interpreter returns each loan when it
    decodes the item, before it sends it on, so once the last item is back
    here nothing may wait any more (before, all 10 did, for good)."""
    import asyncio

    assert _wait_loans_returned() == (0, 0)
    inbox, outbox = Channel(), Channel()
    w = subinterp.start(FORWARD, src_id=inbox.id, dst_id=outbox.id)
    payloads = [bytes([i]) * 100_000 for i in range(10)]

    async def main() -> tuple[list[bytes], tuple[int, int]]:
        for p in payloads:
            await inbox.put_async(p)
        back = [await outbox.get_async(timeout=60) for _ in payloads]
        return back, core._lent_bytes()

    try:
        back, lent = asyncio.run(main())
    finally:
        inbox.close()
        w.join()
    assert back == payloads
    assert lent == (0, 0)


def test_a_lent_bytes_outlives_the_senders_reference():
    ch = Channel()
    ch.put(bytes(range(256)) * 1024)  # the only reference is the message's
    gc.collect()
    assert ch.get() == bytes(range(256)) * 1024
    assert _wait_loans_returned() == (0, 0)


def test_only_the_main_interpreter_lends_and_only_exact_bytes():
    class B(bytes):
        pass

    ch = Channel()
    ch.put(B(b"s" * 100_000))  # a subclass: copied (arrives as bytes)
    assert core._lent_bytes() == (0, 0)
    assert ch.get() == b"s" * 100_000
    subinterp.run(
        """
        import xchannels
        from xchannels import _xchannels as core
        ch = xchannels.Channel.from_id(cid)
        ch.put(b"q" * 100_000)
        assert core._lent_bytes() == (0, 0), core._lent_bytes()
        """,
        cid=ch.id,
    )
    assert ch.get() == b"q" * 100_000


def test_lent_bytes_through_a_process_channel_and_the_pickle_fallback():
    pc = xchannels.ProcessChannel(capacity=4 * 1024 * 1024)
    data = bytes(range(256)) * 4096
    pc.put(data)
    assert pc.get() == data
    ch = Channel(fallback="pickle")
    ch.put((data, {1, 2}, PointNT(1, 2)))
    got = ch.get()
    assert got == (data, {1, 2}, PointNT(1, 2)) and type(got[2]) is PointNT
    assert _wait_loans_returned() == (0, 0)


def test_lent_bytes_queued_at_exit_do_not_crash_the_exit():
    """A channel still holding lent bytes when the interpreter finalizes:
    the references are left alone after Py_AtExit, never dropped without
    the GIL."""
    code = textwrap.dedent(
        """
        import xchannels, sys
        sys.path[:0] = [{tests!r}]
        import subinterp
        ch = xchannels.Channel()
        keep = xchannels.Channel()
        for i in range(20):
            ch.put(bytes([i]) * 200_000)
        # A sub-interpreter takes some and drops them: their references come
        # back through the pending-call path while the main thread exits.
        subinterp.run('''
        import xchannels
        ch = xchannels.Channel.from_id(cid)
        for _ in range(10):
            ch.get()
        ''', cid=ch.id)
        print("exiting with", ch.qsize(), "queued", flush=True)
        """
    ).format(tests=os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert r.returncode == 0, r.stderr
    assert "exiting with 10 queued" in r.stdout
    assert "Fatal" not in r.stderr


def test_fork_while_lent_bytes_are_given_back_on_other_threads():
    """Lent bytes dropped without the main GIL (here: close(immediate=True)
    drops queued messages with the GIL released) go through the loans
    list's mutex; fork() takes that mutex around itself, so a child never
    inherits it locked and can lend and drain."""
    code = textwrap.dedent(
        """
        import os, threading, xchannels
        from xchannels import _xchannels as core
        stop = False
        def dropper():
            while not stop:
                ch = xchannels.Channel()
                for i in range(20):
                    ch.put(bytes([i]) * 70_000)
                ch.close(immediate=True)  # returns the loans without the GIL
        t = threading.Thread(target=dropper)
        t.start()
        try:
            for i in range(40):
                pid = os.fork()
                if pid == 0:
                    c = xchannels.Channel()
                    c.put(b"y" * 100_000)
                    ok = c.get() == b"y" * 100_000
                    os._exit(0 if ok else 1)
                _, status = os.waitpid(pid, 0)
                assert status == 0, status
        finally:
            stop = True
            t.join()
        ch = xchannels.Channel()
        ch.put(b"z" * 100_000)  # lending drains what the dropper gave back
        ch.get()
        print("lent", core._lent_bytes(), flush=True)
        """
    )
    r = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert r.returncode == 0, r.stderr
    assert "lent (0, 0)" in r.stdout
