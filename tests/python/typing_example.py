"""tests/python/typing_example.py: user code that mypy --strict checks
against the stubs (make test runs it; pytest does not collect it)."""

from __future__ import annotations

import queue
from concurrent.futures import Future
from typing import Iterator, assert_type

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


def square(x: int) -> int:
    return x * x


def label(x: int, *, prefix: str = "n") -> str:
    return f"{prefix}{x}"


def pool_types() -> None:
    # submit and map are typed like typeshed's Executor: the result type
    # follows the function, and the arguments are checked against it.
    with xchannels.Pool(1) as pool:
        fut = pool.submit(square, 3)
        assert_type(fut, Future[int])
        assert_type(pool.submit(label, 4, prefix="x"), Future[str])
        it = pool.map(square, [1, 2])
        assert_type(it, Iterator[int])
        assert fut.result() == 9 and list(it) == [1, 4]
        for r in xchannels.check_modules(["json"]):
            assert_type(r.ok, bool)


def work_queue() -> None:
    # queue.Queue's task tracking and shutdown, under the same names.
    jobs = xchannels.Channel(0)
    jobs.close_after(1)
    jobs.put(item=1)
    assert jobs.get() == 1
    jobs.task_done()
    jobs.join(timeout=1.0)
    n: int = jobs.unfinished_tasks
    assert n == 0 and not jobs.is_shutdown
    jobs.shutdown(immediate=True)
    try:
        jobs.get_nowait()
    except xchannels.ChannelClosed:
        pass


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
    work_queue()
    pool_types()


if __name__ == "__main__":
    main()
