"""benchmarks/python/bench_values.py: encode + decode cost per message,
xchannels against pickle, in one run.

codec: ``xchannels._xchannels._encode_decode(v)`` encodes one value into a
message and decodes it again (what a put and a get do to the value, without
the channel). channel: ``put_nowait`` + ``get_nowait`` on a local unbounded
channel (codec plus enqueue and dequeue). pickle:
``pickle.loads(pickle.dumps(v, HIGHEST_PROTOCOL))``. Same value, same loop.

Each payload is first round-tripped once and must come back equal (same
types: a list must not come back a tuple); a payload the codec rejects or
changes gets an ``error`` row instead of figures, and the rest go on. The
loop count is ``N`` (``N_QUICK``); for big values, where that would make a
timed pass of pickle last over 10 x ``PASS_SECONDS`` (``PASS_SECONDS_QUICK``),
it is cut so that the pass lasts about ``PASS_SECONDS``.

Usage: ``python benchmarks/python/bench_values.py [--quick]``; ``run(quick)``
returns the figures for the make bench harness.
"""

from __future__ import annotations

import pickle
import sys
import time
from typing import Any

PAYLOADS: dict[str, Any] = {
    "int": 12345,
    "5-tuple": (1, 2.5, "abc", b"xyz", None),
    "str-100": "x" * 100,
    "bytes-1KiB": bytes(1024),
    # What real programs send: containers. Ints >= 1000 stay out of the
    # small-int cache (which would flatter a decoder) and out of pickle's
    # 1-byte ints (which would flatter pickle).
    "dict-10": {f"k{i}": 1000 + i for i in range(10)},
    "list-100-int": [1000 + i for i in range(100)],
    "list-100-records": [(i, i * 0.5, f"name{i}", i % 2 == 0, None) for i in range(100)],
    "dict-1000": {f"key{i}": (i, i * 0.25, f"v{i}") for i in range(1000)},
}

# One line each, for the tables.
WHAT: dict[str, str] = {
    "int": "the int 12345",
    "5-tuple": '(1, 2.5, "abc", b"xyz", None)',
    "str-100": "a 100-char str",
    "bytes-1KiB": "1 KiB bytes",
    "dict-10": 'dict of 10 str -> int: {"k0": 1000, ..., "k9": 1009}',
    "list-100-int": "list of 100 ints (1000..1099)",
    "list-100-records": 'list of 100 records (i, float, "name<i>", bool, None)',
    "dict-1000": 'dict of 1,000 str -> (int, float, str): {"key<i>": (i, i / 4, "v<i>")}',
}

N, N_QUICK = 200_000, 20_000
PASS_SECONDS, PASS_SECONDS_QUICK = 0.1, 0.01


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, (set, frozenset)):
        return a == b
    return a == b


def _per_op(fn: Any, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        fn(n)
        best = min(best, (time.perf_counter() - t) / n)
    return best


def run(quick: bool = False) -> dict[str, Any]:
    import xchannels

    n_max = N_QUICK if quick else N
    pass_s = PASS_SECONDS_QUICK if quick else PASS_SECONDS
    ch = xchannels.Channel()
    put, get = ch.put_nowait, ch.get_nowait
    codec = xchannels._xchannels._encode_decode
    dumps, loads, proto = pickle.dumps, pickle.loads, pickle.HIGHEST_PROTOCOL
    rows = []
    for name, value in PAYLOADS.items():
        row: dict[str, Any] = {"payload": name, "what": WHAT.get(name, "")}
        rows.append(row)
        # pickle's cost sets the loop count: ~pass_s per timed pass.
        t = time.perf_counter()
        for _ in range(20):
            loads(dumps(value, proto))
        est = (time.perf_counter() - t) / 20
        # Small values keep n_max (their figures as before); big ones get fewer.
        n = n_max if est * n_max <= 10 * pass_s else max(200, int(pass_s / est))
        row["n"] = n
        try:
            back = codec(value)
        except Exception as e:  # noqa: BLE001 - recorded, the others go on
            row["error"] = f"codec: {type(e).__name__}: {e}"
        else:
            if not _same(back, value):
                row["error"] = f"codec round trip changed the value: {type(back).__name__} {str(back)[:80]}"

        def xch(k: int, v: Any = value) -> None:
            for _ in range(k):
                put(v)
                get()

        def cod(k: int, v: Any = value) -> None:
            for _ in range(k):
                codec(v)

        def pkl(k: int, v: Any = value) -> None:
            for _ in range(k):
                loads(dumps(v, proto))

        p = _per_op(pkl, n)
        row["pickle_ns"] = p * 1e9
        if "error" in row:
            continue
        c, x = _per_op(cod, n), _per_op(xch, n)
        row.update(codec_ns=c * 1e9, channel_ns=x * 1e9, speedup=p / c, channel_speedup=p / x)
    return {"n": n_max, "rows": rows}


# Payloads with a goal: encode+decode >= 5x faster than pickle (report.goals).
GOAL_PAYLOADS = ["5-tuple", "dict-10", "list-100-int", "list-100-records", "dict-1000"]


def main() -> None:
    result = run("--quick" in sys.argv)
    print(f"encode+decode per message, best of 5 x up to {result['n']:,} (fewer for big values)")
    print(f"  {'payload':<17} {'codec':>10} {'put+get':>10} {'pickle':>10} {'pickle/codec':>13} {'pickle/put+get':>15}")
    for r in result["rows"]:
        if "error" in r:
            print(f"  {r['payload']:<17} {'-':>10} {'-':>10} {r['pickle_ns']:>7.0f} ns  {r['error']}")
            continue
        print(
            f"  {r['payload']:<17} {r['codec_ns']:>7.0f} ns {r['channel_ns']:>7.0f} ns {r['pickle_ns']:>7.0f} ns"
            f" {r['speedup']:>12.1f}x {r['channel_speedup']:>14.1f}x"
        )
    rows = {r["payload"]: r for r in result["rows"]}
    for name in GOAL_PAYLOADS:
        r = rows[name]
        if "speedup" not in r:
            print(f"GOAL N/A  {name} encode+decode >= 5x faster than pickle: {r['error']}")
            continue
        verdict = "PASS" if r["speedup"] >= 5 else "MISS"
        print(f"GOAL {verdict}  {name} encode+decode >= 5x faster than pickle: {r['speedup']:.1f}x")


if __name__ == "__main__":
    main()
