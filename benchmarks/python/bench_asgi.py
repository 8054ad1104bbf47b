"""benchmarks/python/bench_asgi.py: ``xchannels.asgi`` (worker interpreters in one process) against Hypercorn's
worker processes, both serving ``asgi_app:app`` under ``wrk --latency``, with the peak RSS of each server's
process tree. The servers stay in this process group, so run.py's kill of an overrunning section reaches them."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import site
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from typing import IO, Any

import psutil
from common import ASGI_REFERENCE, ASGI_XCHANNELS, first_line, tree_rss

HERE = Path(__file__).resolve().parent
APP = "asgi_app:app"
HOST = "127.0.0.1"
WRK_THREADS, WRK_CONNECTIONS = 2, 32
SECONDS, SECONDS_QUICK = 10, 3  # wrk -d per measurement
ROUNDS, ROUNDS_QUICK = 2, 1
WARMUP_SECONDS = 1
READY_TIMEOUT = 30.0  # seconds for a server to answer its first request
RSS_SAMPLES = 6  # RSS readings of the server's process tree per measurement
# Start no new measurement after this many seconds: one more can take READY_TIMEOUT + the load + the stop,
# and run.py kills the section at 240 s (120 s with --quick).
BUDGET, BUDGET_QUICK = 170.0, 70.0
MiB = 1024 * 1024

# name: (the package it needs, the arguments after ``python -m`` with {port}, the oldest Python it runs on
# and why): the two servers the ASGI goals compare. Hypercorn writes no access log unless asked.
SERVERS = {
    ASGI_XCHANNELS: ("xchannels", f"xchannels.asgi {APP} --workers 2 --bind {HOST}:{{port}}", (3, 13),
                     "asyncio cannot be imported in an own-GIL sub-interpreter before Python 3.13"),
    ASGI_REFERENCE: ("hypercorn", f"hypercorn {APP} -w 2 -b {HOST}:{{port}}", (3, 0), ""),
}


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's tree, then SIGKILL to whatever is left of it."""
    try:
        procs = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    except psutil.Error:  # gone
        procs = []
    for sig in ("terminate", "kill"):
        for p in procs:
            with contextlib.suppress(psutil.Error):
                getattr(p, sig)()
        _, procs = psutil.wait_procs(procs, timeout=3.0 if sig == "terminate" else 5.0)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(1)


def output(log: IO[bytes]) -> str:
    """The last line the server printed."""
    with contextlib.suppress(OSError, ValueError):
        log.seek(0)
        return first_line(log.read().decode(errors="replace"), 10**6) or "(no output)"
    return "(no output)"


def server_env() -> dict[str, str]:
    """This environment, PYTHONPATH made absolute (servers run in this folder), xchannels' folder first if it
    is not in site-packages (the source tree)."""
    env = dict(os.environ)
    paths = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    spec = find_spec("xchannels")
    if spec is not None and spec.submodule_search_locations:
        where = str(Path(next(iter(spec.submodule_search_locations))).resolve().parent)
        sites = site.getsitepackages() + [site.getusersitepackages()]
        if where not in [str(Path(s).resolve()) for s in sites]:
            paths.insert(0, where)
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def wait_ready(server: subprocess.Popen[bytes], log: IO[bytes], port: int) -> str | None:
    """None once ``GET /`` is answered with the app's JSON; else why not."""
    deadline, last = time.monotonic() + READY_TIMEOUT, "nothing tried"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return f"server exited with code {server.returncode}: {output(log)}"
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        try:
            conn.request("GET", "/")
            r = conn.getresponse()
            body = r.read()
            if r.status == 200 and json.loads(body).get("ok") is True:
                return None
            last = f"HTTP {r.status}: {body[:100]!r}"
        except (OSError, http.client.HTTPException, ValueError) as e:
            last = f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        time.sleep(0.1)
    return f"no answer on port {port} within {READY_TIMEOUT:g} s (last try: {last})"


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_wrk(out: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms), request count and errors from the output of ``wrk --latency``."""
    res: dict[str, Any] = {f"p{pct}_ms": float(val) * _UNITS_MS[unit] for pct, val, unit in re.findall(
        r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)}
    for key, pattern, conv in (("rps", r"^Requests/sec:\s+([\d.]+)", float),
                               ("requests", r"^\s*(\d+) requests in [\d.]+(?:us|ms|s|m|h)", int),
                               ("non_2xx", r"Non-2xx or 3xx responses:\s+(\d+)", int)):
        if m := re.search(pattern, out, re.M):
            res[key] = conv(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        res["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    return res


def wrk_command(seconds: float, port: int | str = "PORT") -> list[str]:
    return ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds:g}s", "--latency",
            f"http://{HOST}:{port}/"]


def load(pid: int, port: int, seconds: float) -> dict[str, Any]:
    """wrk against the port: its figures, and the peak RSS of pid's tree, read ``RSS_SAMPLES`` times."""
    wrk = subprocess.Popen(wrk_command(seconds, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, deadline = (0, 0), time.monotonic() + seconds + 30
    try:
        while True:
            try:
                out, err = wrk.communicate(timeout=seconds / RSS_SAMPLES)
                break
            except subprocess.TimeoutExpired:
                peak = max(peak, tree_rss(pid))
            if time.monotonic() > deadline:
                return {"error": f"wrk did not finish within {seconds + 30:g} s"}
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    res = parse_wrk(out)
    if wrk.returncode != 0 or "rps" not in res or "p99_ms" not in res or not res.get("requests"):
        why = first_line(err, 10**6) or first_line(out, 10**6) or f"exit code {wrk.returncode}"
        return {"error": f"wrk: {why}"}
    return res | {"rss_mib": peak[0] / MiB, "procs": peak[1]}


def row_of(name: str, status: str = "", error: str = "") -> dict[str, Any]:
    """A row of the table: the server and its command (without figures: ``status`` and ``error``)."""
    return {"name": name, "command": "python -m " + SERVERS[name][1].replace("{port}", "PORT")} | (
        {"status": status, "error": error} if status else {})


def measure(name: str, seconds: float, env: dict[str, str]) -> dict[str, Any]:
    """Start the server, wait for it, warm it up, load it, kill it: one row."""
    package, args = SERVERS[name][:2]
    row = row_of(name)
    if find_spec(package) is None:
        return row_of(name, "error", f"{package} is not installed")
    port = free_port()
    t, log = time.monotonic(), tempfile.TemporaryFile()
    argv = [sys.executable, "-m", *args.replace("{port}", str(port)).split()]
    server = subprocess.Popen(argv, cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        if (why := wait_ready(server, log, port)) is not None:
            return row | {"status": "error", "error": why}
        row["startup_s"] = time.monotonic() - t
        subprocess.run(wrk_command(WARMUP_SECONDS, port), capture_output=True, timeout=WARMUP_SECONDS + 30)
        res = load(server.pid, port, seconds)
        if server.poll() is not None:
            res = {"error": f"server exited during the load with code {server.returncode}: {output(log)}"}
        notes = [f"{n} socket errors ({k})" for k, n in (res.get("socket_errors") or {}).items() if n]
        notes += [f"{res['non_2xx']} responses not 2xx/3xx"] if res.get("non_2xx") else []
        if notes:
            res["note"] = ", ".join(notes)
        return row | ({"status": "error", "error": res["error"]} if "error" in res else {"status": "ok"} | res)
    except subprocess.TimeoutExpired:
        return row | {"status": "error", "error": "the warm-up did not finish"}
    finally:
        stop(server)
        log.close()


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def app_cost_ms() -> tuple[float, int]:
    """(ms, loops): asgi_app.work(COST_LOOPS) in this process, best of 20."""
    sys.path.insert(0, str(HERE))
    import asgi_app
    import timeit

    return min(timeit.repeat(lambda: asgi_app.work(asgi_app.COST_LOOPS), number=1, repeat=20)) * 1e3, \
        asgi_app.COST_LOOPS


def run(quick: bool = False) -> dict[str, Any]:
    """Every server of ``SERVERS`` under wrk, ``rounds`` passes (order reversed every other), best kept."""
    seconds, rounds = (SECONDS_QUICK, ROUNDS_QUICK) if quick else (SECONDS, ROUNDS)
    deadline = time.monotonic() + (BUDGET_QUICK if quick else BUDGET)
    cost_ms, loops = app_cost_ms()  # also fails here, not in every server, if asgi_app is broken
    result: dict[str, Any] = {
        "app": APP, "cost_loops": loops, "app_cost_ms": cost_ms, "wrk": " ".join(wrk_command(seconds)[:4]),
        "seconds": seconds, "warmup_seconds": WARMUP_SECONDS, "rounds": rounds, "python": sys.version.split()[0],
        "cpus": os.cpu_count(), "rows": []}
    best: dict[str, dict[str, Any]] = {}
    every: dict[str, list[float | None]] = {s: [] for s in SERVERS}
    env = server_env()
    for rnd in range(rounds):
        for s in list(SERVERS) if rnd % 2 == 0 else list(SERVERS)[::-1]:
            if shutil.which("wrk") is None:
                best[s] = row_of(s, "error", "wrk not found (Debian/Ubuntu: apt-get install wrk)")
            elif sys.version_info[:2] < SERVERS[s][2]:
                best[s] = row_of(s, "n/a", f"Python {sys.version_info[0]}.{sys.version_info[1]}: {SERVERS[s][3]}")
            elif time.monotonic() > deadline:
                best.setdefault(s, row_of(s, "error", "not run: the section's time budget was spent"))
            else:
                row = measure(s, seconds, env)
                every[s].append(row.get("rps"))
                if (row.get("rps") or 0) > (best.get(s, {}).get("rps") or 0) or s not in best:
                    best[s] = row
    result["rows"] = [best[s] | ({"rounds": every[s]} if every[s] else {}) for s in SERVERS]
    ok = {r["name"]: r for r in result["rows"] if r.get("status") == "ok"}
    x, h = ok.get(ASGI_XCHANNELS), ok.get(ASGI_REFERENCE)
    result["xchannels_over_hypercorn2_rps"] = x["rps"] / h["rps"] if x and h and h["rps"] else None
    result["rss_ratio"] = x["rss_mib"] / h["rss_mib"] if x and h and h["rss_mib"] else None
    return result

