"""tests/python/test_shared_buffer.py: SharedBuffer, the zero-copy block that
belongs to no interpreter (bindings/shared_buffer.cpp)."""

from __future__ import annotations

import array
import pickle

import pytest

import subinterp
import xchannels
from xchannels import Channel, SharedBuffer


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_basics():
    b = SharedBuffer(b"hello world")
    assert len(b) == 11
    assert bytes(b) == b"hello world"
    assert b.tobytes() == b"hello world"
    assert b == b"hello world"
    assert b == SharedBuffer(bytearray(b"hello world"))
    assert b != b"hello"
    assert hash(b) == hash(b"hello world")
    assert b[0] == ord("h") and b[-1] == ord("d")
    assert b.readonly and b.nbytes == 11 and b.format == "B" and b.shape == (11,)
    assert SharedBuffer(b) is b  # immutable: no copy needed
    assert "nbytes=11" in repr(b)
    with pytest.raises(IndexError):
        b[11]


def test_read_only():
    b = SharedBuffer(bytearray(b"abc"))
    m = memoryview(b)
    assert m.readonly
    with pytest.raises(TypeError):
        m[0] = 1
    import ctypes

    with pytest.raises(TypeError, match="not writable"):
        ctypes.c_char.from_buffer(b)  # asks for a writable buffer


def test_copy_is_taken_once():
    source = bytearray(b"abc")
    b = SharedBuffer(source)
    source[0] = ord("z")
    assert bytes(b) == b"abc"


def test_layout_is_kept():
    a = array.array("d", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    m = memoryview(a).cast("B").cast("d", (2, 3))
    b = SharedBuffer(m)
    assert (b.format, b.itemsize, b.shape, b.ndim) == ("d", 8, (2, 3), 2)
    assert memoryview(b).tolist() == m.tolist()
    assert len(b) == 48  # bytes


def test_slices_are_zero_copy_views():
    b = SharedBuffer(bytes(range(100)))
    s = b[10:20]
    assert type(s) is SharedBuffer
    assert bytes(s) == bytes(range(10, 20))
    assert bytes(s[2:4]) == bytes([12, 13])
    assert bytes(b[-3:]) == bytes([97, 98, 99])
    assert len(b[50:10]) == 0
    with pytest.raises(ValueError, match="step 1"):
        b[::2]
    with pytest.raises(TypeError):
        b["x"]
    big = SharedBuffer(bytes(64 * 1024 * 1024))
    before = rss_bytes()
    slices = [big[i : i + 1024 * 1024] for i in range(0, 64 * 1024 * 1024, 1024 * 1024)]
    assert rss_bytes() - before < 8 * 1024 * 1024  # 64 MiB of slices, no copy
    del slices, big


def test_bad_input():
    with pytest.raises(TypeError, match="bytes-like"):
        SharedBuffer("text")
    with pytest.raises(TypeError):
        SharedBuffer()
    with pytest.raises(TypeError):
        SharedBuffer(12)


def test_pickle_copies_bytes():
    b = SharedBuffer(b"xyz")
    c = pickle.loads(pickle.dumps(b))
    assert type(c) is SharedBuffer and c == b


def test_256_mib_goes_through_a_channel_without_a_copy(sub):
    """Zero-copy: sending 256 MiB to another interpreter and back adds no
    256 MiB copy to the process (RSS), and the bytes are the same memory."""
    size = 256 * 1024 * 1024
    big = SharedBuffer(bytes(size))
    there, back = Channel(), Channel()
    before = rss_bytes()
    there.put(big)
    sub.run(
        """
        import xchannels
        b = xchannels.Channel.from_id(there).get()
        assert len(b) == size
        assert b[size - 1] == 0
        xchannels.Channel.from_id(back).put(b)
        """,
        there=there.id,
        back=back.id,
        size=size,
    )
    got = back.get(timeout=10)
    assert rss_bytes() - before < 32 * 1024 * 1024
    assert got == big


def test_buffer_outlives_the_interpreter_that_made_it(no_channel_leak):
    ch = Channel()
    subinterp.run(
        """
        import xchannels
        b = xchannels.SharedBuffer(b"made in a sub-interpreter" * 1000)
        ch = xchannels.Channel.from_id(cid)
        ch.put(b)
        ch.put(b[0:4])
        """,
        cid=ch.id,
    )
    # That interpreter is destroyed now; its buffers are not.
    whole, head = ch.get_nowait(), ch.get_nowait()
    assert bytes(whole) == b"made in a sub-interpreter" * 1000
    assert bytes(head) == b"made"
    del whole, head


def test_live_buffers_return_to_baseline():
    import gc

    gc.collect()
    baseline = xchannels._xchannels._live_buffers()
    ch = Channel()
    for i in range(100):
        ch.put(SharedBuffer(bytes(i)))
        ch.put((bytearray(10), bytes(100_000)))  # exporter + large bytes
    assert xchannels._xchannels._live_buffers() >= baseline + 300
    while not ch.empty():
        ch.get_nowait()
    gc.collect()
    assert xchannels._xchannels._live_buffers() == baseline
