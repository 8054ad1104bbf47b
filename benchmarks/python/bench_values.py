"""benchmarks/python/bench_values.py: encode + decode cost per message,
xchannels against pickle, in one run.

codec: ``xchannels._xchannels._encode_decode(v)`` encodes one value into a
message and decodes it again (what a put and a get do to the value, without
the channel). channel: ``put_nowait`` + ``get_nowait`` on a local unbounded
channel (codec plus enqueue and dequeue). pickle:
``pickle.loads(pickle.dumps(v, HIGHEST_PROTOCOL))``. Same value, same loop.
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
}


def _per_op(fn: Any, n: int) -> float:
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        fn(n)
        best = min(best, (time.perf_counter() - t) / n)
    return best


def run(quick: bool = False) -> dict[str, Any]:
    import xchannels

    n = 20_000 if quick else 200_000
    ch = xchannels.Channel()
    put, get = ch.put_nowait, ch.get_nowait
    codec = xchannels._xchannels._encode_decode
    dumps, loads, proto = pickle.dumps, pickle.loads, pickle.HIGHEST_PROTOCOL
    rows = []
    for name, value in PAYLOADS.items():

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

        c, x, p = _per_op(cod, n), _per_op(xch, n), _per_op(pkl, n)
        rows.append(
            {
                "payload": name,
                "codec_ns": c * 1e9,
                "channel_ns": x * 1e9,
                "pickle_ns": p * 1e9,
                "speedup": p / c,
                "channel_speedup": p / x,
            }
        )
    return {"n": n, "rows": rows}


def main() -> None:
    result = run("--quick" in sys.argv)
    print(f"encode+decode per message, best of 5 x {result['n']:,}")
    print(f"  {'payload':<12} {'codec':>9} {'put+get':>9} {'pickle':>9} {'pickle/codec':>13} {'pickle/put+get':>15}")
    for r in result["rows"]:
        print(
            f"  {r['payload']:<12} {r['codec_ns']:>6.0f} ns {r['channel_ns']:>6.0f} ns {r['pickle_ns']:>6.0f} ns"
            f" {r['speedup']:>12.1f}x {r['channel_speedup']:>14.1f}x"
        )
    five = next(r for r in result["rows"] if r["payload"] == "5-tuple")
    verdict = "PASS" if five["speedup"] >= 5 else "MISS"
    print(f"GOAL {verdict}  5-tuple encode+decode >= 5x faster than pickle: {five['speedup']:.1f}x")


if __name__ == "__main__":
    main()
