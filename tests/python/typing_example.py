"""tests/python/typing_example.py: user code that mypy --strict checks
against the stubs (make test runs it; pytest does not collect it)."""

from __future__ import annotations

import queue

import xchannels


def produce(ch: xchannels.Channel, n: int) -> int:
    sent = ch.put_many(range(n), timeout=1.0)
    ch.put((1, "two", 3.0, b"four", None))
    return sent


def consume(ch: xchannels.Channel) -> list[object]:
    out: list[object] = []
    try:
        out.extend(ch.get_many(10, block=False))
    except queue.Empty:
        pass
    for item in ch:
        out.append(item)
    return out


def main() -> None:
    with xchannels.Channel(16, type=int | tuple | None) as ch:
        produce(ch, 3)
    buf = xchannels.SharedBuffer(b"abc")
    view: memoryview = memoryview(buf)
    assert view.nbytes == len(buf) == buf.nbytes
    other, item = xchannels.select([xchannels.Channel.from_id(ch.id)], timeout=0.1)
    assert isinstance(other, xchannels.Channel)
    assert xchannels.is_shareable(item)
    print(consume(ch))


if __name__ == "__main__":
    main()
