"""tests/python/test_refleak.py: no operation of the bindings leaks a
reference. Each one runs 100 times to warm caches, then 1,000 times between
two readings of sys.gettotalrefcount(): a leak of one reference per
operation shows as 1,000, the noise of a debug build (caches, free lists)
as a few dozen at most. Needs a Py_DEBUG build, which `make test` runs
(the sid root's python3.14-dbg and python3.15-dbg); the whole suite's
per-test check is conftest.py's --refleak."""

from __future__ import annotations

import array
import asyncio
import fractions
import gc
import sys

import pytest

import xchannels
from xchannels import Channel, ChannelClosed, ChannelEmpty, NotShareableError, ProcessChannel, SharedBuffer

pytestmark = pytest.mark.skipif(
    not hasattr(sys, "gettotalrefcount"), reason="needs a Py_DEBUG build of CPython (sys.gettotalrefcount)"
)

N = 1000
ALLOWED = 100  # references the total may move by over N operations without a leak

_drain = Channel()


def total() -> int:
    gc.collect()
    gc.collect()
    _drain.put(None)  # a receive takes back the large bytes lent meanwhile
    _drain.get()
    return sys.gettotalrefcount()  # type: ignore[attr-defined,no-any-return]


def grows(op) -> int:
    for _ in range(100):
        op()
    before = total()
    for _ in range(N):
        op()
    return total() - before


BIG = b"x" * 100_000  # lent, not copied, from the main interpreter
VALUES = {
    "int": 12345,
    "bigint": 2**200,
    "float": -0.0,
    "complex": 1 + 2j,
    "str": "héllo wörld",
    "bytes": b"abc",
    "bytes-lent": BIG,
    "tuple": (1, "a", None, True),
    "list": [1, [2, 3], "x"],
    "dict": {"k0": 1, "k1": [2.5], "k2": {"n": None}},
    "set": {1, 2, 3},
    "frozenset": frozenset({"a", "b"}),
    "SharedBuffer": SharedBuffer(b"shared bytes"),
    "array": array.array("d", [1.0, 2.0]),
}


@pytest.mark.parametrize("name", list(VALUES))
def test_put_get_round_trip(name):
    ch = Channel()
    value = VALUES[name]

    def op():
        ch.put(value)
        ch.get()

    assert grows(op) < ALLOWED


def test_a_channel_handle_travels():
    ch, inner = Channel(), Channel()

    def op():
        ch.put((inner, 1))
        ch.get()

    assert grows(op) < ALLOWED


def test_put_many_get_many():
    ch = Channel()
    items = [1, "a", (2, 3), {"k": 4}]

    def op():
        ch.put_many(items)
        ch.get_many(10)

    assert grows(op) < ALLOWED


def test_pickle_fallback():
    ch = Channel(fallback="pickle")
    value = (fractions.Fraction(1, 3), [fractions.Fraction(2, 3)])

    def op():
        ch.put(value)
        ch.get()

    assert grows(op) < ALLOWED


def _refuse() -> None:
    raise ValueError("refused")


class _Unpicklable:
    """Pickles; unpickling it raises."""

    def __reduce__(self):
        return (_refuse, ())


def test_lenient_get_batch():
    # The pool's reads: an unpicklable value's exception stands in its place
    # and in the failures dict; nothing of either may leak.
    ch = Channel(fallback="pickle")
    batch = [(1, [_Unpicklable(), {"k": _Unpicklable()}]), (2, "ok"), (3, {_Unpicklable()})]

    def op():
        ch.put_many(batch)
        items, failures = ch._get_batch(8)
        assert sorted(failures) == [0, 2] and items[1] == (2, "ok")

    for _ in range(1000):  # a longer warm-up: the first ~1,000 raises fill caches (131, then 2-3)
        op()
    assert grows(op) < ALLOWED


def test_typed_channel_put_and_refusal():
    ch = Channel(type=dict[str, list[int]])

    def op():
        ch.put({"a": [1, 2]})
        ch.get()
        try:
            ch.put({"a": [1, "x"]})
        except TypeError:
            pass

    assert grows(op) < ALLOWED


@pytest.mark.parametrize(
    "call",
    [
        lambda ch: ch.put(object()),  # NotShareableError
        lambda ch: ch.put({"k": [object()]}),  # ... naming the place
        lambda ch: ch.get_nowait(),  # ChannelEmpty
        lambda ch: ch.get(timeout="soon"),  # TypeError
        lambda ch: ch.get(timeout=-1),  # ValueError
        lambda ch: ch.put_many([1, object()]),  # nothing sent
    ],
    ids=["not-shareable", "not-shareable-nested", "empty", "bad-timeout-type", "bad-timeout-value", "put-many-bad"],
)
def test_error_paths(call):
    ch = Channel()

    def op():
        try:
            call(ch)
        except (NotShareableError, ChannelEmpty, TypeError, ValueError):
            pass

    assert grows(op) < ALLOWED
    assert ch.qsize() == 0


def test_closed_channel():
    ch = Channel()
    ch.close()

    def op():
        try:
            ch.put(1)
        except ChannelClosed:
            pass
        try:
            ch.get()
        except ChannelClosed:
            pass

    assert grows(op) < ALLOWED


def test_select():
    a, b = Channel(), Channel()

    def op():
        b.put("x")
        xchannels.select([a, b], timeout=1)

    assert grows(op) < ALLOWED


def test_from_id_is_shareable_and_buffer_slices():
    ch = Channel()
    buf = SharedBuffer(bytes(range(256)))

    def op():
        Channel.from_id(ch.id)
        xchannels.is_shareable({"a": [1, (2, buf)]})
        bytes(buf[10:20])
        memoryview(buf).tobytes()

    assert grows(op) < ALLOWED


def test_process_channel_put_get():
    pc = ProcessChannel()
    value = {"k": [1, 2.5, "x"], "b": b"bytes"}

    def op():
        pc.put(value)
        pc.get()

    assert grows(op) < ALLOWED


def test_get_async_and_put_async():
    ch = Channel(1)

    async def many():
        for _ in range(N // 10):
            await ch.put_async(1)
            await ch.get_async()

    # one event loop for many awaits: a loop's own set-up is not ours
    def op_batch():
        asyncio.run(many())

    for _ in range(2):
        op_batch()
    before = total()
    for _ in range(10):
        op_batch()
    assert total() - before < ALLOWED


def test_the_check_sees_one_reference_per_operation():
    # What a leak looks like to the check: one reference kept per call.
    kept, obj = [], object()
    assert grows(lambda: kept.append(obj)) >= N


# ---- the per-test check (conftest.py's --refleak) can fail, and tolerates warm-up ----

_CHECKED = '''
_kept = []
# after the 3 warm-up runs: 20 15 10 (more than 10 a run, every run: a leak
# by the first rule), then 3 1 0
_settling = iter([40, 30, 25, 20, 15, 10, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])


def test_leaks():
    _kept.extend(object() for _ in range(20))


def test_settles():
    _kept.extend(object() for _ in range(next(_settling)))


def test_clean():
    assert sum(range(10)) == 45
'''


def test_the_per_test_check_fails_a_leak_and_not_a_warm_up(tmp_path):
    import os
    import subprocess

    (tmp_path / "test_checked.py").write_text(_CHECKED)
    here = os.path.dirname(__file__)
    env = dict(os.environ, PYTHONPATH=here + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest", "--rootdir", str(tmp_path),
         "-c", os.devnull, "--refleak=3:3", "-rf", str(tmp_path / "test_checked.py")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "1 failed, 2 passed" in text, text
    assert "Failed: reference leak: the total grew by [20, 20, 20] in the last 3 of 9 runs" in text, text
    summary = text.split("short test summary")[-1]
    assert "test_checked.py::test_leaks" in summary and "test_settles -" not in summary, text
    assert "refleak: 1 tests settled only in extra runs" in text, text
    assert "test_checked.py::test_settles [20, 15, 10, 3" in text, text
