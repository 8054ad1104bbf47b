"""benchmarks/python/run.py: the comparison benchmark suite (``make bench``); flags, files and method:
benchmarks/README.md.

Runs every workload of ``workloads.py`` against every peer of ``peers.py``, each cell in its own process
session (``cell.py``) with a time limit, so a peer that hangs or crashes is killed and recorded without
sinking the run; then the sections (C++, pool, values, ASGI, Dask), each a child process with a limit.
Works with the in-tree build (``PYTHONPATH=python``) or the installed package.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import report  # noqa: E402
from peers import BASELINE, PEER_NAMES, peer_info  # noqa: E402
from workloads import WORKLOADS  # noqa: E402

CPP_BENCH = ROOT / "build" / "bench" / "channel_bench"


# ---- child processes ------------------------------------------------------------


class Child:
    """A subprocess in its own session: killed with all it started."""

    current: Child | None = None

    def __init__(self, cmd: list[str], live_prefix: str | None = None) -> None:
        self.lines: list[str] = []
        self.live_prefix = live_prefix
        self.p = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        Child.current = self
        self._err: list[str] = []
        self._to = threading.Thread(target=self._read_out, daemon=True)
        self._te = threading.Thread(target=self._read_err, daemon=True)
        self._to.start()
        self._te.start()

    def _read_out(self) -> None:
        for line in self.p.stdout:  # type: ignore[union-attr]
            self.lines.append(line)
            if self.live_prefix is not None and not line.startswith("@@RESULT"):
                print(self.live_prefix + line.rstrip(), flush=True)

    def _read_err(self) -> None:
        for line in self.p.stderr:  # type: ignore[union-attr]
            self._err.append(line)

    def wait(self, timeout: float) -> bool:
        """True if it exited within timeout; else it is killed."""
        try:
            self.p.wait(timeout)
            ok = True
        except subprocess.TimeoutExpired:
            ok = False
        self.kill_group()
        self._to.join(2)
        self._te.join(2)
        Child.current = None
        return ok

    def kill_group(self) -> None:
        # Also reaps whatever the child left behind (spawned processes).
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            pass

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def result(self) -> Any:
        for line in reversed(self.lines):
            if line.startswith("@@RESULT "):
                return json.loads(line[len("@@RESULT "):])
        return None


# ---- machine and build facts ------------------------------------------------------


def sh(cmd: list[str], timeout: float = 20) -> str:
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout).stdout.strip()
    except Exception:
        return ""


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    u = platform.uname()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "uname": f"{u.system} {u.release} {u.machine}",
        "uname_full": " ".join(u),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "hostname": u.node,
    }


def commit() -> str:
    c = sh(["git", "rev-parse", "--short", "HEAD"]) or "nocommit"
    if sh(["git", "status", "--porcelain", "--untracked-files=no"]):
        c += "-dirty"
    return c


def compiler() -> str:
    try:
        import xchannels._xchannels as m

        for attr in ("__compiler__", "COMPILER", "_compiler", "compiler"):
            v = getattr(m, attr, None)
            if isinstance(v, str) and v:
                return v
    except Exception:
        pass
    line = sh(["gcc", "--version"]).splitlines()
    return (line[0] + " (gcc --version; not recorded by the module)") if line else "unknown"


def pythons() -> dict[str, str]:
    out = {"bench": sys.version.replace("\n", " "), "executable": sys.executable}
    for v in ("3.12", "3.13"):
        exe = ROOT / f".venv-{v}" / "bin" / "python"
        if exe.exists():
            out[v] = sh([str(exe), "-c", "import sys; print(sys.version)"]).replace("\n", " ")
    return out


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("xchannels", "faster-fifo", "matplotlib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    try:
        import xchannels

        out["xchannels_from"] = str(Path(xchannels.__file__).parent)
    except Exception as e:
        out["xchannels_from"] = f"import failed: {e}"
    return out


# ---- the cells ----------------------------------------------------------------------


def run_cells(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """Run every cell ``args.rounds`` times, one whole pass over the cells
    per round, and keep each cell's best round. The machine is shared and its
    speed moves by up to 2x over minutes (the host places the two vCPUs), so
    rounds spread over time give every peer the same chances; the figure of
    every round is kept in the cell (``rounds``)."""
    peers = data["peers_order"]
    # The baseline runs first in each workload, so progress lines show ratios.
    run_order = sorted(peers, key=lambda p: p != BASELINE)
    todo = [(w, p) for w in data["workloads_order"] for p in run_order]
    limit = args.cell_timeout or (30.0 if args.quick else 120.0)
    rounds = max(1, args.rounds)
    total = len(todo) * rounds
    # The memcpy limit of stream-bytes-1MiB is measured right after that
    # workload's cells in every round (the machine's speed drifts).
    memcpy_after = max((i for i, (w, _) in enumerate(todo) if w == report.MEMCPY_WORKLOAD), default=None)
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for i, (rnd, (w, p)) in enumerate(((r, c) for r in range(rounds) for c in todo), 1):
        tag = f"[{i:>3}/{total}] {w} x {p}" + (f" (round {rnd + 1})" if rounds > 1 else "")
        print(f"{tag} ...", flush=True)
        t = time.monotonic()
        cmd = [sys.executable, str(HERE / "cell.py"), w, p] + (["--quick"] if args.quick else [])
        child = Child(cmd)
        finished = child.wait(limit)
        res = child.result()
        if res is None:
            why = f"no result after {limit:g} s (killed)" if not finished else (
                f"cell process exited with code {child.p.returncode} and no result")
            res = {"workload": w, "peer": p, "status": "timeout" if not finished else "error",
                   "error": why + ("\n" + child.stderr[-3000:] if child.stderr.strip() else "")}
        elif child.stderr.strip() and res.get("status") != "ok":
            res["stderr"] = child.stderr[-3000:]
        res["wall_seconds"] = time.monotonic() - t
        prev = best.get((w, p))
        figs = (prev or {}).get("rounds", []) + [report.figure(res)]
        if prev is None or (report.figure(res) or 0) > (report.figure(prev) or 0):
            if prev is not None:
                data["cells"].remove(prev)
            data["cells"].append(res)
            best[(w, p)] = res
        best[(w, p)]["rounds"] = figs
        shown = report.cell_value_text(res)
        r = report.ratio(data, w, p)
        rtxt = f"  ({report.ratio_str(r)} mp.Queue)" if r is not None and p != BASELINE else ""
        print(f"{tag}: {shown}{rtxt}  [{res['wall_seconds']:.1f} s]", flush=True)
        if memcpy_after is not None and (i - 1) % len(todo) == memcpy_after:
            run_memcpy(args, data)


def run_cpp(args: argparse.Namespace) -> dict[str, Any]:
    if not CPP_BENCH.exists():
        note = (f"{CPP_BENCH.relative_to(ROOT)} not built (cmake -DXCHANNELS_BENCHMARKS=ON "
                "-B build/bench && cmake --build build/bench); skipped")
        print(f"C++ micro-benchmarks: {note}", flush=True)
        return {"status": "skipped", "note": note}
    min_time = "0.05" if args.quick else "0.2"
    names = [n.split("/")[0] for n in sh([str(CPP_BENCH), "--benchmark_list_tests=true"]).splitlines() if n.strip()]
    names = list(dict.fromkeys(names))
    if not names:
        note = "channel_bench --benchmark_list_tests printed nothing"
        print(f"C++ micro-benchmarks: {note}", flush=True)
        return {"status": "error", "note": note}
    # One process per benchmark, each with a time limit: a busy-polling
    # benchmark can stall for minutes on a loaded 2-core machine.
    limit = 20 if args.quick else 60
    reps = 3 if args.quick else 5
    base = [str(CPP_BENCH), "--benchmark_format=json", f"--benchmark_min_time={min_time}",
            f"--benchmark_repetitions={reps}", "--benchmark_report_aggregates_only=true"]
    print(f"C++ micro-benchmarks: {len(names)} x {' '.join(base[1:])} (limit {limit} s each, "
          f"best of {max(1, args.rounds)} passes) ...", flush=True)
    t = time.monotonic()
    keep = ("name", "run_type", "aggregate_name", "repetitions", "iterations", "real_time", "cpu_time",
            "time_unit", "items_per_second", "per_roundtrip")
    rounds = max(1, args.rounds)
    out: dict[str, Any] = {"status": "ok", "command": " ".join(base[1:]) + " --benchmark_filter=^NAME(/|$)",
                           "rounds": rounds, "benchmarks": [], "failed": {}}

    def score(entries: list[dict[str, Any]]) -> float:
        # The median's figure, higher = better (round trips: 1 / time).
        med = next((b for b in entries if b.get("aggregate_name") == "median"), entries[0] if entries else {})
        if med.get("per_roundtrip"):
            return 1.0 / med["per_roundtrip"]
        return float(med.get("items_per_second") or 0.0)

    # Like the Python cells: whole passes over the list, best pass kept per
    # benchmark, so that a benchmark and its reference get the same chances
    # at the host's fast and slow vCPU placements.
    best: dict[str, list[dict[str, Any]]] = {}
    for _ in range(rounds):
        for name in names:
            child = Child(base + [f"--benchmark_filter=^{re.escape(name)}(/|$)"])
            finished = child.wait(limit)
            try:
                j = json.loads("".join(child.lines))
            except ValueError:
                why = f"timed out after {limit} s" if not finished else f"exit code {child.p.returncode}"
                out["failed"][name] = why
                print(f"  {name}: {why}", flush=True)
                continue
            out.setdefault("context", {k: j.get("context", {}).get(k) for k in
                           ("date", "num_cpus", "mhz_per_cpu", "cpu_scaling_enabled", "library_build_type",
                            "load_avg")})
            entries = [{k: b[k] for k in keep if k in b} for b in j.get("benchmarks", [])]
            if name not in best or score(entries) > score(best[name]):
                best[name] = entries
    for name in names:
        if name in best:
            out["failed"].pop(name, None)
            out["benchmarks"] += best[name]
    out["seconds"] = time.monotonic() - t
    if not out["benchmarks"]:
        out["status"] = "error"
        out["note"] = "every benchmark failed: " + "; ".join(f"{k}: {v}" for k, v in out["failed"].items())
    print(f"C++ micro-benchmarks: {len(out['benchmarks'])} results in {out['seconds']:.1f} s", flush=True)
    for line in report.section_lines("cpp", out):
        print(f"  {line}")
    return out


# section -> (its module, its label, time limits quick and full)
SECTIONS = {"pool": ("bench_pool", "Pool", 180, 420), "values": ("bench_values", "Values", 120, 120),
            "asgi": ("bench_asgi", "ASGI", 120, 240), "dask": ("bench_dask", "Dask", 240, 420)}


def run_section(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """A section: its module's ``run(quick)`` (``run_bench_module``), then its figures printed."""
    module, label, quick_limit, limit = SECTIONS[name]
    out = run_bench_module(args, label, module, quick_limit if args.quick else limit)
    for line in report.section_lines(name, out.get("result")):
        print(f"  {name}| {line}", flush=True)
    return out


def run_bench_module(args: argparse.Namespace, label: str, module: str, limit: float) -> dict[str, Any]:
    """Runs ``<module>.run(quick)`` from benchmarks/python in a child process
    with a time limit; returns {"status", "result" | "note", "seconds"}."""
    if not (HERE / f"{module}.py").exists():
        note = f"benchmarks/python/{module}.py is missing; {label} section skipped"
        print(f"{label}: {note}", flush=True)
        return {"status": "skipped", "note": note}
    print(f"{label}: {module}.run(quick={args.quick}) ...", flush=True)
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        f"import {module}\n"
        f"r = {module}.run({args.quick!r})\n"
        "sys.stdout.write('@@RESULT ' + json.dumps(r, default=str) + '\\n')\n"
        "sys.stdout.flush()\n"
    )
    t = time.monotonic()
    child = Child([sys.executable, "-c", code], live_prefix=f"  {label.lower()}| ")
    finished = child.wait(limit)
    res = child.result()
    if res is None:
        why = f"timed out after {limit} s (killed)" if not finished else f"exit code {child.p.returncode}"
        note = f"{module} failed ({why}): {child.stderr.strip()[-1500:]}"
        print(f"{label}: {note}", flush=True)
        return {"status": "error", "note": note, "seconds": time.monotonic() - t}
    print(f"{label}: done in {time.monotonic() - t:.1f} s", flush=True)
    return {"status": "ok", "result": res, "seconds": time.monotonic() - t}


def run_memcpy(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """One round of bench_memcpy (one copy of 1 MiB blocks out of cache, the
    physical limit of stream-bytes-1MiB) into ``data["memcpy"]``, keeping the
    best round's figures (as for the cells) and every round's."""
    out = run_bench_module(args, "Memcpy", "bench_memcpy", 120)
    prev = data.get("memcpy") or {}
    res = out.get("result") or {}
    gbps = res.get("memmove_gbps") if isinstance(res, dict) else None
    rounds = prev.get("rounds", []) + [gbps]
    best_prev = (prev.get("result") or {}).get("memmove_gbps") if prev.get("status") == "ok" else None
    if isinstance(gbps, (int, float)) and (best_prev is None or gbps > best_prev):
        data["memcpy"] = out
    elif not prev:
        data["memcpy"] = out
    data["memcpy"]["rounds"] = rounds
    if isinstance(gbps, (int, float)):
        print(f"  memcpy| {res['distinct_payloads']} x 1 MiB ({res['set_bytes'] / 2**20:.0f} MiB): memmove "
              f"{gbps:.2f} GB/s, alloc+copy {res['alloc_copy_gbps']:.2f} GB/s, cache-hot "
              f"{res['hot_memmove_gbps']:.2f} GB/s", flush=True)
    for line in report.memcpy_table_lines(data):
        print("  memcpy| " + line, flush=True)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


# ---- main ---------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short cells (~0.3 s each)")
    ap.add_argument("--no-docs", action="store_true", help="do not regenerate docs/benchmarks.md")
    ap.add_argument("--only", default=None, help="regex: run only matching workloads")
    ap.add_argument("--peers", default=None, help="comma-separated peers (default: all)")
    ap.add_argument("--no-cpp", action="store_true", help="skip the C++ micro-benchmarks")
    ap.add_argument("--no-pool", action="store_true", help="skip bench_pool.py")
    ap.add_argument("--no-asgi", action="store_true", help="skip bench_asgi.py (ASGI servers under wrk)")
    ap.add_argument("--no-dask", action="store_true", help="skip bench_dask.py (Dask clusters)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="passes over all cells, best kept per cell (default 3, quick 1)")
    ap.add_argument("--cell-timeout", type=float, default=None,
                    help="seconds before a cell is killed (default 30 quick, 120 full)")
    ap.add_argument("--out", default=None, help="write the JSON to this file; no plots, no docs (another Python)")
    ap.add_argument("--with", dest="with_results", action="append", default=[], metavar="FILE",
                    help="the JSON of a run on another Python (--out) to include; repeatable")
    args = ap.parse_args()
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3

    # SIGTERM behaves like Ctrl-C: stop, clean up, keep what was measured.
    signal.signal(signal.SIGTERM, _on_sigterm)

    t_run = time.monotonic()
    peers = PEER_NAMES if not args.peers else [p.strip() for p in args.peers.split(",")]
    if BASELINE not in peers:
        print(f"note: {BASELINE} not selected, so no ratios", flush=True)
    wls = [w.name for w in WORKLOADS if not args.only or re.search(args.only, w.name)]
    today = _dt.date.today().isoformat()
    data: dict[str, Any] = {
        "schema": 1,
        "date": today,
        "timestamp": _dt.datetime.now().isoformat(timespec="seconds"),
        "commit": commit(),
        "quick": args.quick,
        "rounds": args.rounds,
        "target_seconds": 0.1 if args.quick else 0.5,
        "machine": machine(),
        "compiler": compiler(),
        "python": pythons(),
        "versions": versions(),
        "baseline": BASELINE,
        "peers_order": peers,
        "peer_info": peer_info(),
        "workloads_order": wls,
        "workloads": {w.name: {"description": w.description, "producers": w.producers,
                               "consumers": w.consumers, "payload": w.payload,
                               "payload_bytes": w.payload_bytes, "distinct": w.distinct}
                      for w in WORKLOADS if w.name in wls},
        "cells": [],
    }
    print(f"xchannels benchmarks{' (quick)' if args.quick else ''}: commit {data['commit']}, "
          f"{data['machine']['cpu_model']} x{data['machine']['cpu_count']}, Python {sys.version.split()[0]}, "
          f"xchannels from {data['versions']['xchannels_from']}", flush=True)
    print(f"{len(wls)} workloads x {len(peers)} peers = {len(wls) * len(peers)} cells", flush=True)

    interrupted = False
    try:
        run_cells(args, data)
        data["cpp"] = {"status": "skipped", "note": "--no-cpp"} if args.no_cpp else run_cpp(args)
        for name in SECTIONS:
            skip = name != "values" and getattr(args, f"no_{name}")
            data[name] = {"status": "skipped", "note": f"--no-{name}"} if skip else run_section(args, name)
    except KeyboardInterrupt:
        interrupted = True
        if Child.current is not None:
            Child.current.kill_group()
        print("\ninterrupted: stopping; writing what was measured", flush=True)
        data["interrupted"] = True
        for name in ("cpp", "pool", "asgi", "dask"):
            data.setdefault(name, {"status": "skipped", "note": "interrupted"})

    data["goals"] = report.goals(data)
    report.add_other_pythons(data, args.with_results)
    data["run_seconds"] = time.monotonic() - t_run

    print()
    print("\n".join(report.table_lines(data)))
    print()
    if report.memcpy_table_lines(data):
        print("\n".join(report.memcpy_table_lines(data)))
        print()
    print("\n".join(report.goal_lines(data)))
    for line in report.other_pythons_lines(data):
        print(line)

    report.RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{today}-{data['commit']}{'-quick' if args.quick else ''}{'-partial' if interrupted or args.only or args.peers else ''}.json"
    out = Path(args.out).resolve() if args.out else report.RESULTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"\nresults: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if args.out:
        print("plots, docs: left to the run that takes this file with --with")
        print(f"run time: {data['run_seconds']:.0f} s")
        return 130 if interrupted else 0
    partial = bool(interrupted or args.only or args.peers)
    if args.no_docs or partial:
        # The plots (docs/img/bench-*.png) belong to the docs: both or neither.
        print(f"plots, docs: not regenerated ({'--no-docs' if args.no_docs else 'partial run'}); "
              f"redo with report.py {out.relative_to(ROOT)}")
    else:
        try:
            made = report.plots(data)
            print("plots: " + ", ".join(str(p.relative_to(ROOT)) for p in made))
            print(f"docs: {report.write_docs(data, out, made).relative_to(ROOT)}")
        except Exception as e:  # the JSON is written; plots and docs can be redone with report.py
            import traceback

            traceback.print_exc()
            print(f"plots, docs: failed ({type(e).__name__}: {e}); redo with report.py {out.relative_to(ROOT)}")
    print(f"run time: {data['run_seconds']:.0f} s")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
