"""benchmarks/python/run.py: the comparison benchmark (``make bench``).
Flags, files and method: benchmarks/README.md."""

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

# The C++ micro-benchmarks: the Makefile's build, or $CPP_BENCH.
CPP_BENCH = Path(os.environ.get("CPP_BENCH") or ROOT / "build" / "bench" / "channel_bench")


# ---- child processes ------------------------------------------------------------

RUNNING: list[subprocess.Popen[str]] = []  # the child running now, killed on Ctrl-C


def kill_group(p: subprocess.Popen[str]) -> None:
    """Kill p's session: p and whatever it started (spawned processes)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        pass


def child(cmd: list[str], limit: float, live: str | None = None) -> tuple[bool, int | None, str, str]:
    """Run cmd in its own session, killed with all it started after ``limit`` seconds; (finished in time,
    exit code, stdout, stderr). ``live``: print stdout's lines as they come, after this prefix."""
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    RUNNING[:] = [p]
    out: list[str] = []
    err: list[str] = []

    def pump(f: Any, into: list[str], prefix: str | None) -> None:
        for line in f:
            into.append(line)
            if prefix is not None and not line.startswith("@@RESULT"):
                print(prefix + line.rstrip(), flush=True)

    readers = [threading.Thread(target=pump, args=a, daemon=True)
               for a in ((p.stdout, out, live), (p.stderr, err, None))]
    for t in readers:
        t.start()
    try:
        p.wait(limit)
        finished = True
    except subprocess.TimeoutExpired:
        finished = False
    kill_group(p)
    for t in readers:
        t.join(2)
    RUNNING.clear()
    return finished, p.returncode, "".join(out), "".join(err)


def result_of(stdout: str) -> Any:
    """The JSON of the child's last ``@@RESULT`` line, or None."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("@@RESULT ")]
    return json.loads(lines[-1][len("@@RESULT "):]) if lines else None


# ---- machine and build facts ------------------------------------------------------


def sh(cmd: list[str], timeout: float = 20) -> str:
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout).stdout.strip()
    except Exception:
        return ""


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    u = platform.uname()
    return {"uname": f"{u.system} {u.release} {u.machine}", "uname_full": " ".join(u),
            "cpu_model": next(iter(re.findall(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)), ""),
            "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)), "hostname": u.node}


def commit() -> str:
    c = sh(["git", "rev-parse", "--short", "HEAD"]) or "nocommit"
    return c + "-dirty" if sh(["git", "status", "--porcelain", "--untracked-files=no"]) else c


def compiler() -> str:
    try:
        import xchannels._xchannels as m

        return str(m.__compiler__)
    except Exception:
        line = sh(["gcc", "--version"]).splitlines()
        return (line[0] + " (gcc --version; not recorded by the module)") if line else "unknown"


def versions() -> dict[str, str]:
    from importlib import metadata, util

    out = {}
    for dist in ("xchannels", "faster-fifo", "matplotlib", "pyperf", "psutil"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    spec = util.find_spec("xchannels")
    out["xchannels_from"] = str(Path(spec.origin).parent) if spec and spec.origin else "not found"
    return out


# ---- the cells ----------------------------------------------------------------------


def run_cells(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """Every cell ``args.rounds`` times, one whole pass over the cells per round, each cell's best round
    kept (and every round's figure, ``rounds``): see README's Method for why."""
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
        finished, code, out, err = child(cmd, limit)
        res = result_of(out)
        if res is None:
            why = f"no result after {limit:g} s (killed)" if not finished else (
                f"cell process exited with code {code} and no result")
            res = {"workload": w, "peer": p, "status": "timeout" if not finished else "error",
                   "error": why + ("\n" + err[-3000:] if err.strip() else "")}
        elif err.strip() and res.get("status") != "ok":
            res["stderr"] = err[-3000:]
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


def _cpp_score(entries: list[dict[str, Any]]) -> float:
    """A benchmark's median figure, higher = better (round trips: 1 / time)."""
    med = next((b for b in entries if b.get("aggregate_name") == "median"), entries[0] if entries else {})
    return 1.0 / med["per_roundtrip"] if med.get("per_roundtrip") else float(med.get("items_per_second") or 0.0)


def run_cpp(args: argparse.Namespace) -> dict[str, Any]:
    """channel_bench, one process per benchmark with a time limit (a busy-polling benchmark can stall
    for minutes on a loaded 2-core machine); whole passes over the list, best pass kept per benchmark."""
    listed = sh([str(CPP_BENCH), "--benchmark_list_tests=true"]) if CPP_BENCH.exists() else ""
    names = list(dict.fromkeys(n.split("/")[0] for n in listed.splitlines() if n.strip()))
    if not names:
        note = "channel_bench --benchmark_list_tests printed nothing" if CPP_BENCH.exists() else (
            f"{CPP_BENCH} not built (cmake -DXCHANNELS_BENCHMARKS=ON -B build/bench && cmake --build build/bench); "
            "skipped")
        print(f"C++ micro-benchmarks: {note}", flush=True)
        return {"status": "error" if CPP_BENCH.exists() else "skipped", "note": note}
    limit, rounds = (20 if args.quick else 60), max(1, args.rounds)
    base = [str(CPP_BENCH), "--benchmark_format=json", f"--benchmark_min_time={'0.05' if args.quick else '0.2'}",
            f"--benchmark_repetitions={3 if args.quick else 5}", "--benchmark_report_aggregates_only=true"]
    print(f"C++ micro-benchmarks: {len(names)} x {' '.join(base[1:])} (limit {limit} s each, "
          f"best of {rounds} passes) ...", flush=True)
    t = time.monotonic()
    keep = ("name", "run_type", "aggregate_name", "repetitions", "iterations", "real_time", "cpu_time",
            "time_unit", "items_per_second", "per_roundtrip")
    ctx_keys = ("date", "num_cpus", "mhz_per_cpu", "cpu_scaling_enabled", "library_build_type", "load_avg")
    out: dict[str, Any] = {"status": "ok", "command": " ".join(base[1:]) + " --benchmark_filter=^NAME(/|$)",
                           "rounds": rounds, "failed": {}}
    best: dict[str, list[dict[str, Any]]] = {}
    for name in names * rounds:
        finished, code, stdout, _ = child(base + [f"--benchmark_filter=^{re.escape(name)}(/|$)"], limit)
        try:
            j = json.loads(stdout)
        except ValueError:
            out["failed"][name] = f"timed out after {limit} s" if not finished else f"exit code {code}"
            print(f"  {name}: {out['failed'][name]}", flush=True)
            continue
        out.setdefault("context", {k: j.get("context", {}).get(k) for k in ctx_keys})
        entries = [{k: b[k] for k in keep if k in b} for b in j.get("benchmarks", [])]
        if name not in best or _cpp_score(entries) > _cpp_score(best[name]):
            best[name] = entries
    out["failed"] = {k: v for k, v in out["failed"].items() if k not in best}
    out |= {"benchmarks": [e for name in names if name in best for e in best[name]], "seconds": time.monotonic() - t}
    if not out["benchmarks"]:
        out["status"] = "error"
        out["note"] = "every benchmark failed: " + "; ".join(f"{k}: {v}" for k, v in out["failed"].items())
    print(f"C++ micro-benchmarks: {len(out['benchmarks'])} results in {out['seconds']:.1f} s", flush=True)
    for line in report.section_lines("cpp", out):
        print(f"  {line}")
    return out


# bench_<name>.py's sections (memcpy: run.py's, after stream-bytes-1MiB's cells) -> their time limits, quick
# and full, in seconds.
SECTIONS = {"pool": (180, 420), "values": (120, 120), "asgi": (120, 240), "dask": (240, 420), "memcpy": (120, 120)}


def run_section(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """``bench_<name>.run(quick)`` in a child process with a time limit, then its figures printed:
    ``{"status", "result" | "note", "seconds"}``."""
    module, limit = f"bench_{name}", SECTIONS[name][0 if args.quick else 1]
    print(f"{name}: {module}.run(quick={args.quick}) ...", flush=True)
    code = (f"import json, sys\nsys.path.insert(0, {str(HERE)!r})\nimport {module}\n"
            f"sys.stdout.write('@@RESULT ' + json.dumps({module}.run({args.quick!r}), default=str) + '\\n')\n")
    t = time.monotonic()
    finished, exit_code, out, err = child([sys.executable, "-c", code], limit, live=f"  {name}| ")
    res = result_of(out)
    if res is None:
        why = f"timed out after {limit} s (killed)" if not finished else f"exit code {exit_code}"
        note = f"{module} failed ({why}): {err.strip()[-1500:]}"
        print(f"{name}: {note}", flush=True)
        return {"status": "error", "note": note, "seconds": time.monotonic() - t}
    print(f"{name}: done in {time.monotonic() - t:.1f} s", flush=True)
    for line in report.section_lines(name, res) if name in report.SECTIONS else []:
        print(f"  {name}| {line}", flush=True)
    return {"status": "ok", "result": res, "seconds": time.monotonic() - t}


def run_memcpy(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """One round of bench_memcpy: ``data["memcpy"]`` keeps the best round's figures, and every round's."""
    out = run_section(args, "memcpy")
    prev = data.get("memcpy") or {}
    gbps = (out.get("result") or {}).get("memmove_gbps")
    rounds = prev.get("rounds", []) + [gbps]
    if not prev or (gbps or 0) > ((prev.get("result") or {}).get("memmove_gbps") or 0):
        data["memcpy"] = out
    data["memcpy"]["rounds"] = rounds
    if gbps:
        res = out["result"]
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
    for flag, what in (("--quick", "short cells (~0.3 s each)"), ("--no-docs", "do not regenerate docs/benchmarks.md"),
                       ("--no-cpp", "skip the C++ micro-benchmarks"), ("--no-pool", "skip bench_pool.py"),
                       ("--no-asgi", "skip bench_asgi.py (ASGI servers under wrk)"),
                       ("--no-dask", "skip bench_dask.py (Dask clusters)")):
        ap.add_argument(flag, action="store_true", help=what)
    ap.add_argument("--only", default=None, help="regex: run only matching workloads")
    ap.add_argument("--peers", default=None, help="comma-separated peers (default: all)")
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
        "schema": 1, "date": today, "timestamp": _dt.datetime.now().isoformat(timespec="seconds"),
        "commit": commit(), "quick": args.quick, "rounds": args.rounds,
        "target_seconds": 0.1 if args.quick else 0.5,
        "machine": machine(), "compiler": compiler(), "versions": versions(),
        "python": {"bench": sys.version.replace("\n", " "), "executable": sys.executable},
        "baseline": BASELINE, "peers_order": peers, "peer_info": peer_info(), "workloads_order": wls,
        "workloads": {w.name: {"producers": w.producers, "consumers": w.consumers,
                               "payload": w.payload, "payload_bytes": w.payload_bytes, "distinct": w.distinct}
                      for w in WORKLOADS if w.name in wls},
        "cells": []}
    print(f"xchannels benchmarks{' (quick)' if args.quick else ''}: commit {data['commit']}, "
          f"{data['machine']['cpu_model']} x{data['machine']['cpu_count']}, Python {sys.version.split()[0]}, "
          f"xchannels from {data['versions']['xchannels_from']}", flush=True)
    print(f"{len(wls)} workloads x {len(peers)} peers = {len(wls) * len(peers)} cells", flush=True)

    interrupted = False
    try:
        run_cells(args, data)
        data["cpp"] = {"status": "skipped", "note": "--no-cpp"} if args.no_cpp else run_cpp(args)
        for name in ("pool", "values", "asgi", "dask"):
            skip = name != "values" and getattr(args, f"no_{name}")
            data[name] = {"status": "skipped", "note": f"--no-{name}"} if skip else run_section(args, name)
    except KeyboardInterrupt:
        interrupted = True
        for p in RUNNING:
            kill_group(p)
        print("\ninterrupted: stopping; writing what was measured", flush=True)
        data["interrupted"] = True
        for name in ("cpp", "pool", "asgi", "dask"):
            data.setdefault(name, {"status": "skipped", "note": "interrupted"})

    data["goals"] = report.goals(data)
    report.add_other_pythons(data, args.with_results)
    data["run_seconds"] = time.monotonic() - t_run

    memcpy = report.memcpy_table_lines(data)
    print("\n" + "\n".join(report.table_lines(data) + [""] + memcpy + [""] * bool(memcpy)))
    print("\n".join(report.goal_lines(data) + report.other_pythons_lines(data)))

    partial = bool(interrupted or args.only or args.peers)
    name = f"{today}-{data['commit']}{'-quick' if args.quick else ''}{'-partial' if partial else ''}.json"
    out = Path(args.out).resolve() if args.out else report.RESULTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"\nresults: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    # The plots (docs/img/bench-*.png) belong to the docs: both or neither.
    if args.out or args.no_docs or partial:
        why = "--out: left to the run that takes this file with --with" if args.out else \
            f"{'--no-docs' if args.no_docs else 'partial run'}: redo with report.py {out.relative_to(ROOT)}"
        print(f"plots, docs: not regenerated ({why})")
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
