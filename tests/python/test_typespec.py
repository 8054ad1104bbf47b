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
    (SharedBuffer, [SharedBuffer(b"x")], [b"x"]),
    (Channel, [Channel()], [1]),
    (int | None, [1, None], ["x"]),
    (typing.Optional[str], ["x", None], [1]),
    (typing.Union[int, str], [1, "x"], [None, 1.0]),
    (tuple, [(), (1, [2]) if False else (1, "x")], [[1], 1]),
    (tuple[int, str], [(1, "x")], [(1,), ("x", 1), (1, "x", 2), 1]),
    (tuple[int, ...], [(), (1,), (1, 2, 3)], [(1, "x"), 1]),
    (tuple[()], [()], [(1,)]),
    (tuple[int, tuple[str, ...]] | None, [(1, ()), (1, ("a", "b")), None], [(1, (2,))]),
]


@pytest.mark.parametrize("spec,accepted,refused", GOOD, ids=[repr(g[0]) for g in GOOD])
def test_typed_channel_checks_every_put(spec, accepted, refused):
    ch = Channel(type=spec)
    for v in accepted:
        ch.put(v)
    for v in refused:
        with pytest.raises(TypeError, match="channel expects .*, got"):
            ch.put(v)
        with pytest.raises(TypeError):
            ch.put_nowait(v)
        with pytest.raises(TypeError):
            ch.put_many([accepted[0], v])
    assert ch.qsize() == len(accepted)  # nothing refused got in


def test_type_is_rebuilt_as_python_types():
    assert Channel().type is None
    assert Channel(type=int).type is int
    assert Channel(type=int | None).type == int | None
    assert Channel(type=tuple[int, ...]).type == tuple[int, ...]
    assert Channel(type=tuple[int, str]).type == tuple[int, str]
    assert Channel(type=type(None)).type is types.NoneType
    assert Channel(type=typing.Optional[bytes]).type == bytes | None


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


@pytest.mark.parametrize("bad", [list, dict, "int", 3, list[int], tuple[int, ..., str], typing.Any])
def test_unsupported_type_specs(bad):
    with pytest.raises(TypeError, match="type= must be|only allowed"):
        Channel(type=bad)
