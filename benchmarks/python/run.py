"""benchmarks/python/run.py: the comparison benchmark (``make bench``); flags and method: benchmarks/README.md."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
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


def child(cmd: list[str], limit: float) -> tuple[bool, int | None, str, str]:
    """cmd in its own session, killed with all it started after ``limit`` s: (in time, exit code, out, err)."""
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    RUNNING[:] = [p]
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda f, into: into.extend(f), args=a, daemon=True)
               for a in ((p.stdout, out), (p.stderr, err))]
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


# ---- the commit -------------------------------------------------------------------


def sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        return ""


def commit() -> str:
    c = sh(["git", "rev-parse", "--short", "HEAD"]) or "nocommit"
    return c + "-dirty" if sh(["git", "status", "--porcelain", "--untracked-files=no"]) else c


# ---- the cells ----------------------------------------------------------------------


def run_cells(quick: bool, data: dict[str, Any]) -> None:
    """``data["rounds"]`` passes over the cells, each cell's best kept (every pass's figure: ``rounds``)."""
    todo = [(w, p) for w in data["workloads_order"] for p in data["peers_order"]]
    limit, rounds = (30.0 if quick else 120.0), data["rounds"]
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for i, (rnd, (w, p)) in enumerate(((r, c) for r in range(rounds) for c in todo), 1):
        tag = f"[{i:>3}/{len(todo) * rounds}] {w} x {p}" + (f" (round {rnd + 1})" if rounds > 1 else "")
        t = time.monotonic()
        cmd = [sys.executable, str(HERE / "cell.py"), w, p] + (["--quick"] if quick else [])
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
        print(f"{tag}: {report.cell_value_text(res)}  [{res['wall_seconds']:.1f} s]", flush=True)


def _cpp_score(entries: list[dict[str, Any]]) -> float:
    """A benchmark's median figure, higher = better (round trips: 1 / time)."""
    med = next((b for b in entries if b.get("aggregate_name") == "median"), entries[0] if entries else {})
    return 1.0 / med["per_roundtrip"] if med.get("per_roundtrip") else float(med.get("items_per_second") or 0.0)


def run_cpp(quick: bool, rounds: int) -> dict[str, Any]:
    """channel_bench, a process with a time limit per benchmark, ``rounds`` passes, the best kept for each."""
    listed = sh([str(CPP_BENCH), "--benchmark_list_tests=true"]) if CPP_BENCH.exists() else ""
    names = list(dict.fromkeys(n.split("/")[0] for n in listed.splitlines() if n.strip()))
    if not names:
        note = "channel_bench --benchmark_list_tests printed nothing" if CPP_BENCH.exists() else (
            f"{CPP_BENCH} not built (cmake -DXCHANNELS_BENCHMARKS=ON -B build/bench && cmake --build build/bench); "
            "skipped")
        print(f"C++ micro-benchmarks: {note}", flush=True)
        return {"status": "error" if CPP_BENCH.exists() else "skipped", "note": note}
    limit = 20 if quick else 60
    base = [str(CPP_BENCH), "--benchmark_format=json", f"--benchmark_min_time={'0.05' if quick else '0.2'}",
            f"--benchmark_repetitions={3 if quick else 5}", "--benchmark_report_aggregates_only=true"]
    t = time.monotonic()
    keep = ("name", "run_type", "aggregate_name", "repetitions", "iterations", "real_time", "cpu_time",
            "time_unit", "items_per_second", "per_roundtrip")
    out: dict[str, Any] = {"status": "ok", "command": " ".join(base[1:]) + " --benchmark_filter=^NAME(/|$)",
                           "rounds": rounds, "failed": {}}
    best: dict[str, list[dict[str, Any]]] = {}
    for name in names * rounds:
        finished, code, stdout, _ = child(base + [f"--benchmark_filter=^{re.escape(name)}(/|$)"], limit)
        try:
            j = json.loads(stdout)
        except ValueError:
            out["failed"][name] = f"timed out after {limit} s" if not finished else f"exit code {code}"
            continue
        entries = [{k: b[k] for k in keep if k in b} for b in j.get("benchmarks", [])]
        if name not in best or _cpp_score(entries) > _cpp_score(best[name]):
            best[name] = entries
    out["failed"] = {k: v for k, v in out["failed"].items() if k not in best}
    out |= {"benchmarks": [e for name in names if name in best for e in best[name]], "seconds": time.monotonic() - t}
    if not out["benchmarks"]:
        out["status"] = "error"
        out["note"] = "every benchmark failed: " + "; ".join(f"{k}: {v}" for k, v in out["failed"].items())
    print(f"C++ micro-benchmarks: {len(out['benchmarks'])} results, {len(out['failed'])} failed, "
          f"in {out['seconds']:.1f} s", flush=True)
    return out


# bench_<name>.py's sections -> their time limits, quick and full, in seconds.
SECTIONS = {"pool": (180, 420), "values": (120, 120), "asgi": (120, 240), "dask": (240, 420), "large": (120, 240)}


def run_section(quick: bool, name: str) -> dict[str, Any]:
    """``bench_<name>.run(quick)`` in a child process with a time limit: {"status", "result" | "note", "seconds"}."""
    module, limit = f"bench_{name}", SECTIONS[name][0 if quick else 1]
    code = (f"import json, sys\nsys.path.insert(0, {str(HERE)!r})\nimport {module}\n"
            f"sys.stdout.write('@@RESULT ' + json.dumps({module}.run({quick!r}), default=str) + '\\n')\n")
    t = time.monotonic()
    finished, exit_code, out, err = child([sys.executable, "-c", code], limit)
    res = result_of(out)
    if res is None:
        why = f"timed out after {limit} s (killed)" if not finished else f"exit code {exit_code}"
        note = f"{module} failed ({why}): {err.strip()[-1500:]}"
        print(f"{name}: {note}", flush=True)
        return {"status": "error", "note": note, "seconds": time.monotonic() - t}
    print(f"{name}: done in {time.monotonic() - t:.1f} s", flush=True)
    return {"status": "ok", "result": res, "seconds": time.monotonic() - t}


# ---- main ---------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, what in (("--quick", "short cells (~0.3 s each)"), ("--no-docs", "do not regenerate docs/benchmarks.md"),
                       ("--no-cpp", "skip the C++ micro-benchmarks")):
        ap.add_argument(flag, action="store_true", help=what)
    ap.add_argument("--out", default=None, help="write the JSON to this file; no plots, no docs (another Python)")
    ap.add_argument("--with", dest="with_results", action="append", default=[], metavar="FILE",
                    help="the JSON of a run on another Python (--out) to include; repeatable")
    args = ap.parse_args()

    # SIGTERM behaves like Ctrl-C: stop, clean up, keep what was measured.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    t_run = time.monotonic()
    wls = [w.name for w in WORKLOADS]
    today = _dt.date.today().isoformat()
    data: dict[str, Any] = {
        "schema": 1, "date": today, "timestamp": _dt.datetime.now().isoformat(timespec="seconds"),
        "commit": commit(), "quick": args.quick, "rounds": 1 if args.quick else 3,
        "target_seconds": 0.1 if args.quick else 0.5,
        "machine": {"cpu_count": os.cpu_count()}, "python": {"bench": sys.version.replace("\n", " ")},
        "baseline": BASELINE, "peers_order": PEER_NAMES, "peer_info": peer_info(), "workloads_order": wls,
        "workloads": {w.name: {"producers": w.producers, "consumers": w.consumers,
                               "payload": w.payload, "payload_bytes": w.payload_bytes, "distinct": w.distinct}
                      for w in WORKLOADS},
        "cells": []}
    print(f"xchannels benchmarks{' (quick)' if args.quick else ''}: commit {data['commit']}, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}", flush=True)

    interrupted = False
    try:
        run_cells(args.quick, data)
        data["cpp"] = {"status": "skipped", "note": "--no-cpp"} if args.no_cpp else run_cpp(args.quick, data["rounds"])
        for name in SECTIONS:
            data[name] = run_section(args.quick, name)
    except KeyboardInterrupt:
        interrupted = True
        for p in RUNNING:
            kill_group(p)
        print("\ninterrupted: stopping; writing what was measured", flush=True)
        data["interrupted"] = True
        for name in ("cpp", *SECTIONS):
            data.setdefault(name, {"status": "skipped", "note": "interrupted"})

    data["goals"] = report.goals(data)
    report.add_other_pythons(data, args.with_results)
    data["run_seconds"] = time.monotonic() - t_run
    verdicts = [g["status"] for g in data["goals"]]
    print(f"goals: {len(verdicts)}, " + ", ".join(f"{verdicts.count(s)} {s}" for s in ("PASS", "MISS", "N/A")))

    name = f"{today}-{data['commit']}{'-quick' if args.quick else ''}{'-partial' if interrupted else ''}.json"
    out = Path(args.out).resolve() if args.out else report.RESULTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"results: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    # The plots (docs/img/bench-*.png) belong to the docs: both or neither.
    if args.out or args.no_docs or interrupted:
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
