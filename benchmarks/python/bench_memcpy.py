"""benchmarks/python/bench_memcpy.py: the physical limit of stream-bytes-1MiB, one copy at memory bandwidth
over the producers' payload set (``memmove``: the limit; ``alloc_copy``: bytes(memoryview(x));
``hot_memmove``: one cache-hot payload), each the median of whole passes for about ``target`` seconds;
GB/s are 1e9 bytes/s (method: benchmarks/README.md). ``run(quick)`` returns the figures."""

from __future__ import annotations

import ctypes
import statistics
import sys
import time
from typing import Any

from types import SimpleNamespace

from cell import distinct_count, llc_info
from workloads import PAYLOADS, make_payloads

KIND = "bytes-1MiB"


def _passes(fn: Any, nbytes: int, target: float) -> list[float]:
    """GB/s of each pass of fn() (which moves nbytes), >= 3 passes, ~target s."""
    fn()  # warm-up pass (page faults of the destination, lazy set-up)
    rates: list[float] = []
    t_end = time.perf_counter() + target
    while len(rates) < 3 or time.perf_counter() < t_end:
        t = time.perf_counter()
        fn()
        rates.append(nbytes / (time.perf_counter() - t) / 1e9)
        if len(rates) >= 200:
            break
    return rates


def run(quick: bool = False) -> dict[str, Any]:
    size = PAYLOADS[KIND][1]
    llc = llc_info()
    k = distinct_count(size, llc["bytes"])
    xs = make_payloads(SimpleNamespace(PAYLOAD=KIND), k)  # the producers' own set
    total = k * size
    target = 0.15 if quick else 0.5

    dst = (ctypes.c_char * size)()
    memmove = ctypes.memmove

    def copy_all() -> None:
        for x in xs:
            memmove(dst, x, size)

    def alloc_all() -> None:
        for x in xs:
            bytes(memoryview(x))

    one = xs[0]

    def hot_all() -> None:
        for _ in range(k):
            memmove(dst, one, size)

    res: dict[str, Any] = {"payload": KIND, "payload_bytes": size, "distinct_payloads": k,
                           "set_bytes": total, "llc": llc, "target_seconds": target}
    for name, fn in (("memmove", copy_all), ("alloc_copy", alloc_all), ("hot_memmove", hot_all)):
        rates = _passes(fn, total, target)
        res[f"{name}_gbps"] = statistics.median(rates)
        res[f"{name}_best_gbps"] = max(rates)
        res[f"{name}_passes"] = len(rates)
    return res


def main() -> None:
    r = run("--quick" in sys.argv)
    llc = r["llc"]
    print(f"{r['distinct_payloads']} distinct {r['payload']} payloads, {r['set_bytes'] / 2**20:.0f} MiB "
          f"(LLC: sysfs {llc['sysfs_bytes']}, getconf {llc['getconf_bytes']}; used {llc['bytes'] / 2**20:.0f} MiB)")
    for name, what in (("memmove", "memmove, source out of cache (the limit)"),
                       ("alloc_copy", "bytes(memoryview(x)), new object each"),
                       ("hot_memmove", "memmove, one source in cache")):
        print(f"  {what:<42} {r[name + '_gbps']:6.2f} GB/s median, {r[name + '_best_gbps']:6.2f} best"
              f" ({r[name + '_passes']} passes)")


if __name__ == "__main__":
    main()
