"""benchmarks/python/bench_asgi.py: ``xchannels.asgi`` (worker interpreters in one process) against
process-based ASGI servers, all serving ``asgi_app:app`` under ``wrk --latency``, with the peak RSS of each
server's process tree; ``ROUNDS`` passes, the order reversed every other one, best requests/s kept. The
servers stay in this process group, so run.py's kill of an overrunning section reaches them."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import IO, Any

import report


HERE = Path(__file__).resolve().parent
APP = "asgi_app:app"
HOST = "127.0.0.1"
WRK_THREADS, WRK_CONNECTIONS = 2, 32
SECONDS, SECONDS_QUICK = 10, 3  # wrk -d per measurement
ROUNDS, ROUNDS_QUICK = 2, 1
WARMUP_SECONDS = 1
READY_TIMEOUT = 30.0  # seconds for a server to answer its first request
RSS_SAMPLES = 6  # RSS readings of the server's process tree per measurement
# Start no new measurement after this many seconds: one more can take
# READY_TIMEOUT + the load + the stop, and run.py kills the section at 240 s
# (120 s with --quick).
BUDGET, BUDGET_QUICK = 170.0, 70.0

XCHANNELS = "xchannels workers x2"
HYPERCORN2 = "hypercorn -w 2"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Server:
    """A server configuration: ``args`` follow ``python -m``; ``{port}`` is
    replaced by the port."""

    name: str
    package: str  # the top-level package it needs
    args: tuple[str, ...]
    min_python: tuple[int, int] = (3, 0)
    why_min_python: str = ""


SERVERS = [
    Server(XCHANNELS, "xchannels",
           ("xchannels.asgi", APP, "--workers", "2", "--bind", f"{HOST}:{{port}}"),
           (3, 13), "asyncio cannot be imported in an own-GIL sub-interpreter before Python 3.13"),
    # Hypercorn (also inside xchannels.asgi's workers) writes no access log
    # unless --access-logfile is given.
    Server(HYPERCORN2, "hypercorn", ("hypercorn", APP, "-w", "2", "-b", f"{HOST}:{{port}}")),
    Server("hypercorn -w 1", "hypercorn", ("hypercorn", APP, "-w", "1", "-b", f"{HOST}:{{port}}")),
    Server("uvicorn --workers 2", "uvicorn",
           ("uvicorn", APP, "--workers", "2", "--host", HOST, "--port", "{port}", "--no-access-log",
            "--log-level", "warning")),
]


# ---- processes ----------------------------------------------------------------------


class Running:
    """A server process (in this process group); ``stop`` kills it and all its descendants."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.log: IO[bytes] = tempfile.TemporaryFile()
        self.p = subprocess.Popen(argv, cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT)

    def output(self, n: int = 1500) -> str:
        """The last n characters the server printed."""
        try:
            self.log.seek(0)
            return self.log.read().decode(errors="replace")[-n:]
        except (OSError, ValueError):
            return ""

    def stop(self) -> None:
        """SIGTERM to the server's tree, then SIGKILL to whatever is left of it."""
        import psutil

        try:
            tree = [psutil.Process(self.p.pid), *psutil.Process(self.p.pid).children(recursive=True)]
        except psutil.Error:
            tree = []
        for p in tree:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, alive = psutil.wait_procs(tree, timeout=3.0)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=5.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.p.wait(1)
        self.log.close()


def tree_rss(pid: int) -> tuple[int, int]:
    """(summed RSS in bytes, processes counted) of pid and its descendants (psutil)."""
    import psutil

    try:
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return 0, 0
    rss = [m.rss for p in tree if (m := _memory_info(p))]
    return sum(rss), len(rss)


def _memory_info(p: Any) -> Any:
    import psutil

    try:
        return p.memory_info()
    except psutil.Error:  # exited meanwhile
        return None


# ---- one measurement ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def server_env() -> dict[str, str]:
    """This environment for the servers, with PYTHONPATH made absolute (they
    run in this folder) and, if xchannels is imported from outside the
    interpreter's site-packages (the source tree), its folder put first."""
    env = dict(os.environ)
    paths = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    spec = find_spec("xchannels")
    if spec is not None and spec.submodule_search_locations:
        where = str(Path(next(iter(spec.submodule_search_locations))).resolve().parent)
        sites = [str(Path(s).resolve()) for s in site.getsitepackages() + [site.getusersitepackages()]]
        if where not in sites:
            paths.insert(0, where)
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def command_text(server: Server) -> str:
    return "python -m " + " ".join(server.args).replace("{port}", "PORT")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def wait_ready(run: Running, port: int, timeout: float = READY_TIMEOUT) -> str | None:
    """None once ``GET /`` is answered with the app's JSON; else why not."""
    deadline = time.monotonic() + timeout
    last = "nothing tried"
    while time.monotonic() < deadline:
        if run.p.poll() is not None:
            out = run.output()
            return f"server exited with code {run.p.returncode}: {_last_line(out) or '(no output)'}"
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
    return f"no answer on port {port} within {timeout:g} s (last try: {last})"


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_wrk(out: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms), request count and errors from
    the output of ``wrk --latency``."""
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
    """Runs wrk against the port, sampling the RSS of pid's process tree
    ``RSS_SAMPLES`` times meanwhile; wrk's figures plus the peak RSS."""
    wrk = subprocess.Popen(wrk_command(seconds, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = procs = 0
    deadline = time.monotonic() + seconds + 30
    try:
        while True:
            try:
                wrk.wait(seconds / RSS_SAMPLES)
                break
            except subprocess.TimeoutExpired:
                pass
            rss, n = tree_rss(pid)
            if rss > peak:
                peak, procs = rss, n
            if time.monotonic() > deadline:
                wrk.kill()
                wrk.wait()
                return {"error": f"wrk did not finish within {seconds + 30:g} s"}
        out, err = wrk.communicate()
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    res = parse_wrk(out)
    if wrk.returncode != 0 or "rps" not in res or "p99_ms" not in res or not res.get("requests"):
        why = _last_line(err) or _last_line(out) or f"exit code {wrk.returncode}"
        return {"error": f"wrk: {why}"}
    res["rss_mib"] = peak / MiB
    res["procs"] = procs
    return res


def measure(server: Server, seconds: float, env: dict[str, str]) -> dict[str, Any]:
    """Start the server, wait for it, warm it up, load it, kill it: one row."""
    row: dict[str, Any] = {"name": server.name, "command": command_text(server)}
    if find_spec(server.package) is None:
        return row | {"status": "error", "error": f"{server.package} is not installed"}
    port = free_port()
    argv = [sys.executable, "-m", *(a.replace("{port}", str(port)) for a in server.args)]
    t = time.monotonic()
    run = Running(argv, env)
    try:
        why = wait_ready(run, port)
        if why is not None:
            return row | {"status": "error", "error": why}
        row["startup_s"] = time.monotonic() - t
        subprocess.run(wrk_command(WARMUP_SECONDS, port), capture_output=True, timeout=WARMUP_SECONDS + 30)
        res = load(run.p.pid, port, seconds)
        if run.p.poll() is not None:
            res = {"error": f"server exited during the load with code {run.p.returncode}: "
                            f"{_last_line(run.output()) or '(no output)'}"}
        else:
            notes = [f"{n} socket errors ({k})" for k, n in (res.get("socket_errors") or {}).items() if n]
            if res.get("non_2xx"):
                notes.append(f"{res['non_2xx']} responses not 2xx/3xx")
            if notes:
                res["note"] = ", ".join(notes)
        if "error" in res:
            return row | {"status": "error", "error": res["error"]}
        return row | {"status": "ok"} | res
    except subprocess.TimeoutExpired:
        return row | {"status": "error", "error": "the warm-up did not finish"}
    finally:
        run.stop()


# ---- the section --------------------------------------------------------------------


def app_cost_ms(repeats: int = 20) -> tuple[float, int]:
    """(ms, loops): asgi_app.work(COST_LOOPS) in this process, best of repeats."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import asgi_app

    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        asgi_app.work(asgi_app.COST_LOOPS)
        best = min(best, time.perf_counter() - t)
    return best * 1e3, asgi_app.COST_LOOPS


def run(quick: bool = False) -> dict[str, Any]:
    """Every server of ``SERVERS`` under wrk; see the module docstring."""
    seconds = SECONDS_QUICK if quick else SECONDS
    rounds = ROUNDS_QUICK if quick else ROUNDS
    deadline = time.monotonic() + (BUDGET_QUICK if quick else BUDGET)
    cost_ms, loops = app_cost_ms()  # also fails here, not in every server, if asgi_app is broken
    result: dict[str, Any] = {
        "app": APP, "cost_loops": loops, "app_cost_ms": cost_ms, "wrk": " ".join(wrk_command(seconds)[:4]),
        "seconds": seconds, "warmup_seconds": WARMUP_SECONDS, "rounds": rounds, "python": sys.version.split()[0],
        "cpus": os.cpu_count(), "rows": []}
    best: dict[str, dict[str, Any]] = {}
    every: dict[str, list[float | None]] = {s.name: [] for s in SERVERS}
    if shutil.which("wrk") is None:
        for s in SERVERS:
            best[s.name] = {"name": s.name, "command": command_text(s), "status": "error",
                            "error": "wrk not found (Debian/Ubuntu: apt-get install wrk)"}
    else:
        env = server_env()
        for rnd in range(rounds):
            for s in SERVERS if rnd % 2 == 0 else SERVERS[::-1]:
                tag = f"{s.name}" + (f" (round {rnd + 1})" if rounds > 1 else "")
                if sys.version_info[:2] < s.min_python:
                    best[s.name] = {"name": s.name, "command": command_text(s), "status": "n/a",
                                    "error": f"Python {sys.version_info[0]}.{sys.version_info[1]}: "
                                             + s.why_min_python}
                    continue
                if time.monotonic() > deadline:
                    best.setdefault(s.name, {"name": s.name, "command": command_text(s), "status": "error",
                                             "error": "not run: the section's time budget was spent"})
                    print(f"{tag}: skipped (time budget spent)", flush=True)
                    continue
                row = measure(s, seconds, env)
                every[s.name].append(row.get("rps"))
                print(f"{tag + ':':<32} {report.asgi_row_text(row)}", flush=True)
                prev = best.get(s.name)
                if prev is None or (row.get("rps") or 0) > (prev.get("rps") or 0):
                    best[s.name] = row
    for s in SERVERS:
        row = best[s.name]
        if every[s.name]:
            row["rounds"] = every[s.name]
        result["rows"].append(row)
    ok = {r["name"]: r for r in result["rows"] if r.get("status") == "ok"}
    x, h = ok.get(XCHANNELS), ok.get(HYPERCORN2)
    result["xchannels_over_hypercorn2_rps"] = x["rps"] / h["rps"] if x and h and h["rps"] else None
    result["rss_ratio"] = x["rss_mib"] / h["rss_mib"] if x and h and h["rss_mib"] else None
    return result


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="ASGI servers under wrk: requests/s, p99 latency, RSS")
    ap.add_argument("--quick", action="store_true", help=f"wrk -d{SECONDS_QUICK}s, {ROUNDS_QUICK} round")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        result = run(quick=a.quick)
    except KeyboardInterrupt:
        sys.exit("interrupted (the servers were stopped)")
    print("\n".join(report.section_lines("asgi", result)))
