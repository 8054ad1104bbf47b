"""benchmarks/python/common.py: constants, number formatting and accessors of a result JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "build" / "bench"  # every run's JSON
LATEST = ROOT / "benchmarks" / "results" / "latest.json"  # the one tracked: docs/benchmarks.md's run
DOCS = ROOT / "docs"
DOCS_IMG = DOCS / "img"

BASELINE = "mp-queue"
# xchannels.ProcessChannel with processes as actors.
PROCESS_PEER = "xchannels-process"
STREAM_MSGS = ["int", "5-tuple", "dict-10", "str-100", "bytes-1KiB"]
STREAM_BIG = ["bytes-1MiB", "bytes-64MiB", "SharedBuffer-64MiB"]
PATTERNS = ["mpmc-2x2", "fanout-1x2"]
# bench_values payloads with a goal of their own: encode+decode >= 5x pickle.
VALUES_GOAL_PAYLOADS = ["5-tuple", "dict-10", "list-100-int", "list-100-records", "dict-1000"]
# CPython's own interpreter queue (concurrent.interpreters on 3.14+, the test
# package's on 3.13) and pool (InterpreterPoolExecutor, 3.14+): the peers
# users of sub-interpreters pick first.
STDLIB_QUEUE = "interp-queues"
STDLIB_POOL = "InterpreterPoolExecutor"
# bench_asgi's server rows that the ASGI goals compare.
ASGI_XCHANNELS = "xchannels workers x2"
ASGI_REFERENCE = "hypercorn -w 2"

# ---- formatting -----------------------------------------------------------------


def si(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    for div, suf in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suf}{unit}"
    return f"{x:.3g}{unit}"


def us(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x / 1000:.3g} ms"
    return f"{x:.3g} µs"


def ns_text(v: Any) -> str:
    """Nanoseconds, as µs from 10,000 ns on."""
    if not isinstance(v, (int, float)):
        return "-"
    return f"{v:.0f} ns" if v < 10_000 else f"{v / 1e3:,.1f} µs"


def ratio_str(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r:.3g}x" if r < 100 else f"{r:,.0f}x"


def cells_by(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["workload"], c["peer"]): c for c in data.get("cells", [])}


def figure(c: dict[str, Any] | None) -> float | None:
    """The cell's headline figure, higher = better (items/s, or round trips/s)."""
    if not c or c.get("status") != "ok":
        return None
    if "rt_median_us" in c:
        return 1e6 / c["rt_median_us"]
    return c.get("items_per_s")


def status_text(c: dict[str, Any] | None) -> str:
    if c is None:
        return "not run"
    st = c.get("status")
    if st == "n/a":
        return f"n/a: {c.get('reason', '')}"
    if st in ("error", "timeout", "skipped"):
        return f"{st}: {first_line(c.get('error') or c.get('reason') or '')}"
    return ""


def first_line(s: str, n: int = 100) -> str:
    lines = [ln for ln in s.strip().splitlines() if ln.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= n else text[: n - 3] + "..."


def cell_value_text(c: dict[str, Any] | None) -> str:
    if not c or c.get("status") != "ok":
        return status_text(c)
    if "rt_median_us" in c:
        return f"{us(c['rt_median_us'])} (p99 {us(c['rt_p99_us'])})"
    t = f"{si(c['items_per_s'])}/s"
    if c["workload"].startswith("stream-bytes") or "Buffer" in c["workload"]:
        t += f", {si(c['mb_per_s'] * 1e6, 'B')}/s"
    return t


def label(data: dict[str, Any], peer: str) -> str:
    return (data.get("peer_info") or {}).get(peer, {}).get("label", peer)


def check_text(chk: dict[str, Any]) -> str:
    """A cell's check round (cell.check_round) in a few words."""
    t = f"{chk['lost']} lost, {chk['duplicated']} duplicated"
    if chk.get("foreign"):
        t += f", {chk['foreign']} never put"
    if chk.get("reordered"):
        t += f", {chk['reordered']} out of their producer's order"
    return t


def procs_text(r: dict[str, Any]) -> str:
    n = r.get("procs")
    return f"{n} process{'' if n == 1 else 'es'}" if isinstance(n, int) else "? processes"


def asgi_ok(r: dict[str, Any] | None) -> bool:
    """A bench_asgi row with figures."""
    if not r or r.get("status", "ok") != "ok":
        return False
    return all(isinstance(r.get(k), (int, float)) for k in ("rps", "p99_ms", "rss_mib"))


def tree_rss(pid: int) -> tuple[int, int]:
    """(summed RSS in bytes, processes counted) of pid and its descendants (psutil)."""
    import psutil

    rss = []
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:  # gone
        return 0, 0
    for p in procs:
        try:
            rss.append(p.memory_info().rss)
        except psutil.Error:  # exited meanwhile
            pass
    return sum(rss), len(rss)


# ---- C++ micro-benchmarks ------------------------------------------------------


def cpp_rows(cpp: dict[str, Any]) -> list[dict[str, Any]]:
    """Channel flavours against raw and blocking moodycamel, per workload (with repetitions, the median)."""
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for b in cpp.get("benchmarks", []):
        parts = b["name"].split("/")[0].split("_")
        if len(parts) == 3 and b.get("run_type") != "aggregate":
            by.setdefault((parts[2], parts[1]), b)
        elif len(parts) == 3 and b.get("aggregate_name") == "median":
            by[(parts[2], parts[1])] = b

    def speed(b: dict[str, Any] | None, wl: str) -> float | None:  # higher = better
        v = (b or {}).get("per_roundtrip" if wl == "PingPong" else "items_per_second")
        return (1 / v if wl == "PingPong" else v) if v else None

    order = {"Unbounded": 0, "Bounded1024": 1, "Bounded1": 2, "RawMoodycamel": 8, "BlockingMoodycamel": 9}
    rows = []
    for wl in ("Spsc", "Mpmc", "PingPong"):
        for flavor in sorted((f for w, f in by if w == wl), key=lambda f: (order.get(f, 5), f)):
            s, raw, blk = (speed(by.get((wl, f)), wl) for f in (flavor, "RawMoodycamel", "BlockingMoodycamel"))
            text = ((us(1e6 / s) if wl == "PingPong" else f"{si(s)}/s") if s else "-")
            rows.append({"workload": wl, "flavor": flavor, "figure": text,
                         "vs_raw": s / raw if s and raw else None, "vs_blocking": s / blk if s and blk else None})
    return rows


# ---- pool ---------------------------------------------------------------------


def pool_variants(pool: Any) -> list[dict[str, Any]] | None:
    """bench_pool's variants ({"name", "peers": [{"name", "seconds", ...}]}), or None without any."""
    if not isinstance(pool, dict) or not isinstance(pool.get("variants"), list):
        return None
    vs = [v for v in pool["variants"] if isinstance(v, dict) and isinstance(v.get("peers"), list)]
    return vs or None


def reusable_text(r: dict[str, Any]) -> str:
    """bench_pool's reusable_pool figures (``result["reusable"]``) in words."""
    return (f"later calls {r['later_median_ms']:.3g} ms median ({r['later_best_ms']:.3g} ms best, "
            f"{r['later_p90_ms']:.3g} ms p90, of {r['calls']}); the first call {r['first_ms']:.3g} ms "
            f"(start-up included); a `with Pool(2)` per map {r['new_pool_median_ms']:.3g} ms")


