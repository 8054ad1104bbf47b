"""tests/python/test_asgi.py: xchannels.asgi, Hypercorn served by own-GIL
sub-interpreter workers (python/xchannels/asgi/).

The command line runs in a child process, as a user runs it (SIGINT, exit
status, what it prints); the Server class runs in this process where the
test needs its counters. The app is tests/python/asgi_test_app.py.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import xchannels

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(xchannels.__file__)))

if sys.version_info >= (3, 13):
    pytest.importorskip("hypercorn", reason="Hypercorn is not installed (make venvs installs it)")

needs_313 = pytest.mark.skipif(
    sys.version_info < (3, 13),
    reason="3.12 aborts when asyncio is imported in an own-GIL sub-interpreter, so xchannels.asgi "
    "needs 3.13 (test_asgi_refuses_python_3_12 checks the refusal on 3.12)",
)

from xchannels import asgi  # noqa: E402


def _get(port: int, path: str = "/", timeout: float = 30) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, (json.loads(body) if resp.status == 200 else body)
    finally:
        conn.close()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE, HERE, env.get("PYTHONPATH", "")])
    return env


class Cli:
    """``python -m xchannels.asgi asgi_test_app:app ...`` in a child process,
    started and waited for until it prints its address."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xchannels.asgi", "asgi_test_app:app", "--bind", "127.0.0.1:0", *args],
            cwd=HERE, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: list[str] = []
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"on http://127\.0\.0\.1:(\d+) with", line)
            if m:
                self.port = int(m.group(1))
                return
        self.proc.kill()
        raise AssertionError("the server did not start: " + "".join(self.lines) + self.proc.stderr.read())

    def finish(self, timeout: float) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, "".join(self.lines) + err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def cli():
    made: list[Cli] = []

    def start(*args: str) -> Cli:
        c = Cli(*args)
        made.append(c)
        return c

    yield start
    for c in made:
        c.kill()


def _clean_exit(err: str) -> None:
    for bad in ("Traceback", "Fatal Python error", "Exception ignored", "Aborted", "Segmentation"):
        assert bad not in err, err


@needs_313
def test_two_workers_serve_in_parallel_from_a_shared_socket(cli):
    c = cli("--workers", "2", "--no-reuse-port")
    assert _get(c.port)[0] == 200
    # The first request holds its worker's loop for 1.5 s of pure Python;
    # the second, sent meanwhile, can only be accepted by the other worker
    # (with a socket per worker the kernel may queue it behind the busy one:
    # test_keep_alive_connections_are_spread_over_the_workers covers that
    # mode).
    first: dict[str, Any] = {}
    t = threading.Thread(target=lambda: first.update(r=_get(c.port, "/spin?ms=1500")))
    t.start()
    time.sleep(0.3)
    status, body = _get(c.port, "/")
    t.join(30)
    assert status == 200 and first["r"][0] == 200
    assert body["interp"] != first["r"][1]["interp"]
    assert body["interp"] > 0 and first["r"][1]["interp"] > 0  # sub-interpreters, not main
    c.proc.send_signal(signal.SIGINT)
    rc, err = c.finish(timeout=10)
    assert rc == 0, err
    assert "SIGINT: stopping gracefully" in err
    m = re.search(r"requests served: worker 0: (\d+), worker 1: (\d+) \(total (\d+)", err)
    assert m, err
    assert int(m.group(3)) == 3 and int(m.group(1)) >= 1 and int(m.group(2)) >= 1
    _clean_exit(err)


@needs_313
def test_sigint_finishes_the_request_in_flight_and_exits_within_2_s(cli):
    c = cli("--workers", "2", "--graceful-timeout", "1.5")
    result: dict[str, Any] = {}
    t = threading.Thread(target=lambda: result.update(r=_get(c.port, "/slow?s=0.8")))
    t.start()
    time.sleep(0.3)  # the request is in flight
    t0 = time.monotonic()
    c.proc.send_signal(signal.SIGINT)
    rc, err = c.finish(timeout=10)
    took = time.monotonic() - t0
    t.join(10)
    assert result["r"][0] == 200 and result["r"][1]["path"] == "/slow"
    assert rc == 0, err
    assert took < 2.0, f"stopped in {took:.2f} s"
    _clean_exit(err)


@needs_313
@pytest.mark.parametrize("delay", [0.3, 0.7, 1.2])
def test_ctrl_c_at_any_moment_of_start_up(delay):
    # Start-up (workers importing Hypercorn) takes about a second here: the
    # signal lands before, during or after the workers listen.
    proc = subprocess.Popen([sys.executable, "-m", "xchannels.asgi", "asgi_test_app:app", "-b", "127.0.0.1:0",
                             "-w", "2"], cwd=HERE, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 130), err
    _clean_exit(err)


def test_a_signal_landing_while_the_supervisor_holds_its_lock_stops_it():
    # Signal handlers run in the main thread between two bytecodes, also
    # while it holds the supervisor's lock (it takes it for every event:
    # the workers' counters every second). The handler asks for the stop
    # under that lock too: with a plain Lock, a Ctrl-C landing there hung
    # the server after "stopping gracefully" (seen once in make test).
    server = asgi.Server("asgi_test_app:app", workers=1)
    handled = threading.Event()

    def supervisor() -> None:  # the thread that holds the lock takes the signal
        with server._lock:
            server._on_signal(signal.SIGINT, None)
        handled.set()

    threading.Thread(target=supervisor, daemon=True).start()
    assert handled.wait(10), "the signal handler deadlocked on the supervisor's lock"
    assert server.stopping


@needs_313
def test_sigterm_stops_gracefully(cli):
    c = cli("--workers", "1")
    assert _get(c.port)[0] == 200
    c.proc.send_signal(signal.SIGTERM)
    rc, err = c.finish(timeout=10)
    assert rc == 0, err
    assert "SIGTERM: stopping gracefully" in err
    _clean_exit(err)


@needs_313
def test_a_worker_that_dies_is_restarted_and_the_server_keeps_answering():
    server = asgi.Server("asgi_test_app:app", workers=2, bind="127.0.0.1:0", max_restarts=3,
                         stats_interval=0.1)
    server.start()
    try:
        port = server.address[1]
        runner = threading.Thread(target=server.serve_forever)
        runner.start()
        status, _ = _get(port, "/crash")
        assert status == 500  # the app raised: Hypercorn answers 500, then the worker ends
        deadline = time.monotonic() + 30
        while server.restarts < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.restarts == 1
        seen = {_get(port)[1]["interp"] for _ in range(6)}
        assert seen and all(i > 0 for i in seen)
    finally:
        server.stop(timeout=30)
    runner.join(30)
    assert not runner.is_alive()
    assert sum(server.requests_served.values()) == 7
    import _interpreters

    assert [i for i, *_ in _interpreters.list_all()] == [0], "an interpreter outlived the server"


@needs_313
def test_restart_limit_stops_the_server_with_the_workers_error(cli):
    c = cli("--workers", "1", "--max-restarts", "1")
    crashed = _get(c.port)[1]["interp"]
    for i in range(2):
        assert _get(c.port, "/crash")[0] == 500
        if i == 0:
            # A dying worker stops accepting before its 500 goes out: the
            # next request waits for the new worker. (It used to be
            # accepted by the dying worker, which then reset the request
            # after it: this test failed about 1 run in 9 under load.)
            answered_by = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    status, body = _get(c.port, timeout=2)
                    if status == 200:
                        answered_by = body["interp"]
                        break
                except OSError:
                    time.sleep(0.05)
            assert answered_by is not None and answered_by != crashed
    rc, err = c.finish(timeout=30)
    assert rc == 1, err
    assert "worker 0 died (SystemExit: crash requested by the test); restarting it (1 of 1 restarts)" in err
    assert "the restart limit (1) is used up" in err
    assert "Fatal Python error" not in err and "Aborted" not in err


@needs_313
def test_stop_from_another_thread_and_no_interpreter_left():
    import _interpreters

    server = asgi.Server("asgi_test_app:app", workers=2, bind="127.0.0.1:0", graceful_timeout=1.0)
    server.start()
    port = server.address[1]
    assert len(_interpreters.list_all()) == 3
    result: dict[str, Any] = {}
    t = threading.Thread(target=lambda: result.update(r=_get(port, "/slow?s=0.5")))
    t.start()
    time.sleep(0.2)
    server.stop(timeout=30)
    t.join(10)
    assert result["r"][0] == 200
    assert [i for i, *_ in _interpreters.list_all()] == [0]
    with pytest.raises(OSError):
        _get(port, timeout=2)  # the socket is closed


@needs_313
def test_keep_alive_connections_are_spread_over_the_workers():
    # Each worker listens on its own SO_REUSEPORT socket. With one shared
    # socket, the worker that woke first accepted every pending connection,
    # so keep-alive clients all landed on one worker.
    server = asgi.Server("asgi_test_app:app", workers=2, bind="127.0.0.1:0")
    server.start()
    try:
        port = server.address[1]
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(16)]
        for c in conns:
            c.connect()
        seen = set()
        for c in conns:
            c.request("GET", "/")
            seen.add(json.loads(c.getresponse().read())["interp"])
        for c in conns:
            c.close()
        assert len(seen) == 2  # all 16 on one of two sockets: (1/2)**15
    finally:
        server.stop(timeout=30)


@needs_313
def test_a_busy_port_fails_instead_of_joining_it():
    first = asgi.Server("asgi_test_app:app", workers=2, bind="127.0.0.1:0")
    first.start()
    try:
        second = asgi.Server("asgi_test_app:app", workers=2, bind=f"127.0.0.1:{first.address[1]}")
        with pytest.raises(OSError) as info:
            second.start()
        assert info.value.errno == errno.EADDRINUSE
        assert _get(first.address[1])[0] == 200
    finally:
        first.stop(timeout=30)


@needs_313
def test_app_that_cannot_be_imported_in_a_sub_interpreter(tmp_path):
    (tmp_path / "needs_readline.py").write_text("import readline\nfrom asgi_test_app import app\n")
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    proc = subprocess.run([sys.executable, "-m", "xchannels.asgi", "needs_readline:app", "-b", "127.0.0.1:0",
                           "-w", "2"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "cannot load the app 'needs_readline:app' in the workers: ImportError: module readline does " \
           "not support loading in subinterpreters" in proc.stderr
    assert "python -m xchannels check needs_readline" in proc.stderr
    assert proc.stderr.count("cannot load the app") == 1  # said once, not per worker
    _clean_exit(proc.stderr)


@needs_313
def test_missing_app_module():
    server = asgi.Server("no_such_module_xyz:app", workers=1, bind="127.0.0.1:0")
    with pytest.raises(asgi.AppImportError, match="ModuleNotFoundError: No module named 'no_such_module_xyz'"):
        server.start()
    import _interpreters

    assert [i for i, *_ in _interpreters.list_all()] == [0]


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"app": 5}, TypeError, "app must be a str"),
        ({"app": "a:b:c:d"}, ValueError, "module:attribute"),
        ({"app": "__main__:app"}, ValueError, "import the app by module name"),
        ({"app": "m:app", "workers": 0}, ValueError, "workers must be an int >= 1"),
        ({"app": "m:app", "workers": True}, ValueError, "workers must be an int >= 1"),
        ({"app": "m:app", "bind": "localhost"}, ValueError, "HOST:PORT"),
        ({"app": "m:app", "stats_interval": 0}, ValueError, "stats_interval > 0"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    app = kwargs.pop("app")
    with pytest.raises(exc, match=match):
        asgi.Server(app, **kwargs)


def test_cli_usage_error():
    proc = subprocess.run([sys.executable, "-m", "xchannels.asgi", "m:app", "--workers", "0"],
                          env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "workers must be an int >= 1" in proc.stderr


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="checks the refusal on 3.12; 3.13 serves")
def test_asgi_refuses_python_3_12():
    server = asgi.Server("asgi_test_app:app", workers=1, bind="127.0.0.1:0")
    with pytest.raises(RuntimeError, match="needs Python 3.13"):
        server.start()
    proc = subprocess.run([sys.executable, "-m", "xchannels.asgi", "asgi_test_app:app", "-b", "127.0.0.1:0"],
                          cwd=HERE, env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "needs Python 3.13" in proc.stderr
