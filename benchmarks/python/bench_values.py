"""benchmarks/python/bench_values.py: encode + decode per value, xchannels' codec against pickle, timed by
pyperf in this process (method: benchmarks/README.md). ``run(quick)`` returns the figures."""

from __future__ import annotations

import contextlib
import io
import pickle
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

MIN_TIME, MIN_TIME_QUICK = 0.1, 0.01


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    return a == b


def run(quick: bool = False) -> dict[str, Any]:
    import pyperf
    import xchannels

    runner = pyperf.Runner(values=5, warmups=1, processes=1)
    runner.parse_args(["--in-process", "--quiet", "--min-time", str(MIN_TIME_QUICK if quick else MIN_TIME)])
    ch = xchannels.Channel()
    put, get = ch.put_nowait, ch.get_nowait
    codec = xchannels._xchannels._encode_decode
    dumps, loads, proto = pickle.dumps, pickle.loads, pickle.HIGHEST_PROTOCOL

    def ns(name: str, op: Any, v: Any) -> float:
        def loop(k: int) -> float:
            t = time.perf_counter()
            for _ in range(k):
                op(v)
            return time.perf_counter() - t
        with contextlib.redirect_stdout(io.StringIO()):  # pyperf prints each result
            return runner.bench_time_func(name, loop).median() * 1e9

    rows = []
    for name, value in PAYLOADS.items():
        row: dict[str, Any] = {"payload": name, "what": WHAT.get(name, "")}
        rows.append(row)
        try:
            back = codec(value)
            if not _same(back, value):
                row["error"] = f"codec round trip changed the value: {type(back).__name__} {str(back)[:80]}"
        except Exception as e:  # noqa: BLE001 - recorded, the others go on
            row["error"] = f"codec: {type(e).__name__}: {e}"
        row["pickle_ns"] = p = ns(f"{name} pickle", lambda v: loads(dumps(v, proto)), value)
        if "error" not in row:
            c = ns(f"{name} codec", codec, value)
            x = ns(f"{name} put+get", lambda v: (put(v), get()), value)
            row.update(codec_ns=c, channel_ns=x, speedup=p / c, channel_speedup=p / x)
    return {"timing": "pyperf, in-process, median of 5 values", "rows": rows}

