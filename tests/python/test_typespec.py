"""tests/python/test_typespec.py: typed channels, `Channel(type=...)`
(bindings/typespec.cpp)."""

from __future__ import annotations

import enum
import types
import typing

import pytest

from xchannels import Channel, SharedBuffer

GOOD = [
    (int, [1, -(2**100), True, 0], ["1", 1.0, None, (1,)]),
    (float, [1.5, float("nan")], [1, "1.5", None]),
    (str, ["", "x"], [b"x", 1]),
    (bytes, [b"", b"x"], ["x", bytearray(b"x")]),
    (bool, [True, False], [1, 0, None]),
    (type(None), [None], [0, ""]),
    (SharedBuffer, [SharedBuffer(b"x"), bytearray(b"x"), memoryview(b"y")], [b"x"]),
    (complex, [1j, complex(1, 2)], [1.0, 1]),
    (Channel, [Channel()], [1]),
    (int | None, [1, None], ["x"]),
    (typing.Optional[str], ["x", None], [1]),
    (typing.Union[int, str], [1, "x"], [None, 1.0]),
    (tuple, [(), (1, [2]) if False else (1, "x")], [[1], 1]),
    (tuple[int, str], [(1, "x")], [(1,), ("x", 1), (1, "x", 2), 1]),
    (tuple[int, ...], [(), (1,), (1, 2, 3)], [(1, "x"), 1]),
    (tuple[()], [()], [(1,)]),
    (tuple[int, tuple[str, ...]] | None, [(1, ()), (1, ("a", "b")), None], [(1, (2,))]),
    (list, [[], [1, "x"]], [(1,), {}]),
    (list[str], [[], ["a", "b"]], [["a", 1], ("a",), {"a"}]),
    (dict, [{}, {1: [2]}], [[], set()]),
    (dict[str, int], [{}, {"a": 1}], [{"a": "1"}, {1: 1}, [("a", 1)]]),
    (dict[str, list[tuple[int, float]]], [{"a": [(1, 2.0)]}], [{"a": [(1, 2)]}, {"a": (1, 2.0)}]),
    (set[int], [set(), {1, 2}], [{1, "2"}, frozenset({1}), [1]]),
    (frozenset[str], [frozenset(), frozenset({"a"})], [frozenset({1}), {"a"}]),
    (list[int] | dict[str, int], [[1], {"a": 1}], [["a"], {"a": "b"}]),
]


@pytest.mark.parametrize("spec,accepted,refused", GOOD, ids=[repr(g[0]) for g in GOOD])
def test_typed_channel_checks_every_put(spec, accepted, refused):
    ch = Channel(type=spec)
    for v in accepted:
        ch.put(v)
    for v in refused:
        with pytest.raises(TypeError, match="channel expects"):
            ch.put(v)
        with pytest.raises(TypeError):
            ch.put_nowait(v)
        with pytest.raises(TypeError):
            ch.put_many([accepted[0], v])
    assert ch.qsize() == len(accepted)  # nothing refused got in


def test_mismatch_names_the_element_and_put_many_the_index():
    ch = Channel(type=list[str])
    with pytest.raises(TypeError, match=r"^item \[3\]: expected str, got int \(channel expects list\[str\]\)$"):
        ch.put(["a", "b", "c", 4])
    ch = Channel(type=dict[str, list[int]])
    with pytest.raises(TypeError, match=r"^item \['b'\]\[1\]: expected int, got str"):
        ch.put({"a": [1], "b": [2, "x"]})
    with pytest.raises(TypeError, match=r"^item \.keys\(\)\[0\]: expected str, got int"):
        ch.put({1: [1]})
    with pytest.raises(TypeError, match=r"^put_many: items\[2\]: item \['k'\]\[0\]: expected int"):
        ch.put_many([{"a": [1]}, {}, {"k": ["no"]}])
    with pytest.raises(TypeError, match=r"^put_many: items\[1\]: channel expects"):
        ch.put_many([{}, 3])
    assert ch.empty()  # nothing of a refused put_many went in
    # the top-level type is named when no element is to blame
    with pytest.raises(TypeError, match=r"^channel expects dict\[str, list\[int\]\], got list$"):
        ch.put([1])


def test_numpy_scalars_and_index_types_are_checked_as_what_they_travel_as():
    np = pytest.importorskip("numpy", reason="NumPy is not installed here")
    ch = Channel(type=list[int])
    ch.put([np.int64(3), np.uint8(4), True])
    assert ch.get_nowait() == [3, 4, True]
    with pytest.raises(TypeError, match="expected int, got numpy.float64"):
        ch.put([np.float64(1.5)])


def test_type_is_rebuilt_as_python_types():
    assert Channel().type is None
    assert Channel(type=int).type is int
    assert Channel(type=int | None).type == int | None
    assert Channel(type=tuple[int, ...]).type == tuple[int, ...]
    assert Channel(type=tuple[int, str]).type == tuple[int, str]
    assert Channel(type=type(None)).type is types.NoneType
    assert Channel(type=typing.Optional[bytes]).type == bytes | None
    assert Channel(type=list[str]).type == list[str]
    assert Channel(type=dict[str, list[int]]).type == dict[str, list[int]]
    assert Channel(type=set[int] | frozenset[str] | None).type == set[int] | frozenset[str] | None
    assert Channel(type=complex | list).type == complex | list


def test_type_travels_with_the_channel(sub):
    ch = Channel(type=tuple[int, str])
    assert Channel.from_id(ch.id).type == tuple[int, str]
    sub.run(
        """
        import xchannels
        ch = xchannels.Channel.from_id(cid)
        assert ch.type == tuple[int, str], ch.type
        try:
            ch.put(("wrong", 1))
        except TypeError as e:
            assert "expects tuple[int, str]" in str(e), e
        else:
            raise AssertionError("mismatch accepted")
        ch.put((1, "ok"))
        """,
        cid=ch.id,
    )
    assert ch.get_nowait() == (1, "ok")


def test_int_enum_matches_int():
    class E(enum.IntEnum):
        A = 1

    ch = Channel(type=int)
    ch.put(E.A)
    assert type(ch.get_nowait()) is int


@pytest.mark.parametrize(
    "bad", [object, "int", 3, list[int, str], dict[str], tuple[int, ..., str], typing.Any, list[object]]
)
def test_unsupported_type_specs(bad):
    with pytest.raises(TypeError, match="type= must be|only allowed|takes [12] type argument"):
        Channel(type=bad)


def test_a_value_check_that_drops_its_own_key_names_the_key():
    # The failure message names the dict key of the bad value (its repr()).
    # Checking the value may run Python code (a set subclass's __iter__)
    # that removes the pair from the dict: the key is held while it is
    # named, never read after it was freed.
    ch = Channel(type=dict[str, set[int]])
    d = {}

    class DropsItsPair(set):
        calls = 0

        def __iter__(self):
            DropsItsPair.calls += 1
            if DropsItsPair.calls > 1:  # the second look, which names the place
                d.clear()
            yield "not an int"

    d["".join(["ke", "y"])] = DropsItsPair()  # a key only the dict holds
    with pytest.raises(
        TypeError, match=r"^item \['key'\]\{#0\}: expected int, got str \(channel expects dict\[str, set\[int\]\]\)$"
    ):
        ch.put(d)
    assert d == {} and ch.empty()
    ch.put({"key": {1}})
    assert ch.get_nowait() == {"key": {1}}
