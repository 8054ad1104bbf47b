"""xchannels.asgi: one ASGI app served by own-GIL sub-interpreters of one
process, with Hypercorn in each (``pip install 'xchannels[asgi]'``).

``python -m xchannels.asgi app:app --workers 4 --bind 127.0.0.1:8000``

What ``hypercorn -w N`` does with N processes, done with N interpreters:

- The supervisor (this module, in the main interpreter) makes one listening
  socket per worker, all on the port with ``SO_REUSEPORT`` (the kernel
  spreads new connections over them), and hands each worker a duplicate of
  its descriptor. Every worker runs Hypercorn's asyncio ``worker_serve`` on
  it.
- A worker is an :class:`xchannels.Worker`: an own-GIL interpreter on a
  thread of this process, so N workers run Python on N cores in parallel.
  They share one copy of the interpreter binary and the extension modules,
  but each imports the app and Hypercorn itself.
- The supervisor and the workers talk over two channels: ``stop`` (closed
  by the supervisor to start a graceful stop: each worker's shutdown trigger
  awaits ``stop.get_async()``) and ``events`` (workers say when they are
  listening, and report their request counters every ``stats_interval``).
- A worker whose interpreter ends with an exception is restarted, at most
  ``max_restarts`` times in all. A worker that fails before it listens is
  not restarted: it would fail again, so the server stops with its error.

The app module must be importable in an own-GIL sub-interpreter: pure-Python
frameworks are, NumPy and PyO3 packages (pydantic v2, orjson) are not yet.
The workers are the pre-flight check: if Hypercorn or the app cannot be
imported in one, :meth:`Server.start` raises :class:`AppImportError` naming
the innermost failed import (as ``python -m xchannels check`` does), and no
worker is left running. (Checking in a separate interpreter first would
cost the server 16 MiB of RSS that the main interpreter never gives back.)

Needs Python 3.13+: on 3.12 importing asyncio in an own-GIL sub-interpreter
aborts the process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, Iterator, Mapping

from xchannels._check import root_error
from xchannels._worker import Worker
from xchannels._xchannels import Channel, ChannelEmpty

__all__ = ["AppImportError", "Server", "WorkerFailed", "serve"]

_PREFIX = "xchannels.asgi"


class AppImportError(ImportError):
    """The app (or Hypercorn) cannot be imported where the workers run: in
    an own-GIL sub-interpreter. Raised by :meth:`Server.start` when a worker
    fails to import it (every worker is then stopped); the message names the
    innermost import that failed."""


class WorkerFailed(RuntimeError):
    """A worker failed before it was listening, or died after the restart
    limit was used up; the server has stopped. ``__cause__`` is the worker's
    exception, with the remote traceback."""


def _split_app(app: str) -> str:
    """The module part of ``module:attr`` (Hypercorn's ``asgi:``/``wsgi:``
    prefixes accepted)."""
    parts = app.split(":")
    if len(parts) == 3 and parts[0] in ("asgi", "wsgi"):
        parts = parts[1:]
    if len(parts) > 2 or not parts[0]:
        raise ValueError(f"app must be 'module' or 'module:attribute', not {app!r}")
    if parts[0] == "__main__":
        # Each worker imports the app by name; its own __main__ is not the
        # caller's script.
        script = getattr(sys.modules.get("__main__"), "__file__", None)
        name = os.path.splitext(os.path.basename(script))[0] if isinstance(script, str) else "myapp"
        attr = parts[1] if len(parts) == 2 else "app"
        raise ValueError(
            f"the workers import the app by module name: use {name + ':' + attr!r} "
            f"(the script's module, guarded by if __name__ == '__main__'), not {app!r}"
        )
    return parts[0]


def _parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bind must be HOST:PORT, not {bind!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


class Server:
    """Server(app, *, workers=None, bind="127.0.0.1:8000", sock=None,
    graceful_timeout=3.0, max_restarts=5, backlog=1024, stats_interval=1.0,
    log_level="warning", reuse_port=True)

    Serve the ASGI (or WSGI) app ``app`` (``"module:attribute"``, as for
    Hypercorn) from ``workers`` own-GIL sub-interpreters of this process.

    Parameters
    ----------
    app : str
        ``"module:attribute"``; the module is imported in each worker.
    workers : int, optional
        Number of worker interpreters; default ``os.cpu_count()``.
    bind : str
        ``HOST:PORT`` to listen on (port 0 picks a free port; see
        :attr:`address`). Ignored when ``sock`` is given.
    sock : socket.socket, optional
        A bound socket to serve instead (listened on here; not closed).
    graceful_timeout : float
        Seconds a graceful stop waits for requests in flight.
    max_restarts : int
        Restarts of dead workers allowed over the server's life.
    backlog : int
        The listening socket's backlog.
    stats_interval : float
        Seconds between the workers' counter reports.
    log_level : str
        Hypercorn's log level in the workers (its error log, on stderr).
    reuse_port : bool
        Give each worker its own listening socket on the port
        (``SO_REUSEPORT``), so the kernel spreads connections evenly; with
        False (or a given ``sock``) the workers share one socket.

    Use :meth:`serve_forever` from a program's main thread (SIGINT and
    SIGTERM then stop gracefully), or :meth:`start` and :meth:`stop`.
    Thread-safe: :meth:`stop`, :attr:`requests_served` and :attr:`restarts`
    may be called from any thread.
    """

    def __init__(
        self,
        app: str,
        *,
        workers: int | None = None,
        bind: str = "127.0.0.1:8000",
        sock: socket.socket | None = None,
        graceful_timeout: float = 3.0,
        max_restarts: int = 5,
        backlog: int = 1024,
        stats_interval: float = 1.0,
        log_level: str = "warning",
        reuse_port: bool = True,
    ) -> None:
        if not isinstance(app, str):
            raise TypeError(f"app must be a str 'module:attribute', not {type(app).__name__}")
        _split_app(app)  # a malformed app fails here, not in every worker
        n = (os.cpu_count() or 1) if workers is None else workers
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"workers must be an int >= 1, not {workers!r}")
        if graceful_timeout < 0 or stats_interval <= 0 or max_restarts < 0:
            raise ValueError("graceful_timeout and max_restarts must be >= 0, stats_interval > 0")
        self.app = app
        self.workers = n
        self._bind = None if sock is not None else _parse_bind(bind)
        self._given_sock = sock
        self._reuse_port = bool(reuse_port)
        self._graceful_timeout = float(graceful_timeout)
        self._max_restarts = max_restarts
        self._backlog = backlog
        self._stats_interval = float(stats_interval)
        self._log_level = log_level.upper()
        self._socks: list[socket.socket] = []  # one per worker slot (SO_REUSEPORT), or one shared
        self._stop = Channel()
        self._events = Channel()
        self._lock = threading.Lock()
        self._workers: dict[int, Worker] = {}  # slot -> the live worker
        self._generation: dict[int, int] = {}  # slot -> its current generation
        self._counts: dict[tuple[int, int], int] = {}  # (slot, generation) -> requests
        self._restarts = 0
        self._stopping = False
        self._started = False
        self._done = threading.Event()
        self._failure: BaseException | None = None
        self._loop_lock = threading.Lock()  # one thread runs the event loop

    # ---- public ----------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the server listens on (after :meth:`start`)."""
        if not self._socks:
            raise RuntimeError("the server is not started")
        host, port = self._socks[0].getsockname()[:2]
        return host, port

    @property
    def requests_served(self) -> dict[int, int]:
        """HTTP requests served per worker slot (summed over restarts), as
        of the workers' last reports (every ``stats_interval`` seconds, and
        once more when a worker stops)."""
        with self._lock:
            out = {slot: 0 for slot in range(self.workers)}
            for (slot, _), n in self._counts.items():
                out[slot] += n
            return out

    @property
    def restarts(self) -> int:
        """Workers restarted so far."""
        with self._lock:
            return self._restarts

    def start(self, timeout: float = 60.0) -> None:
        """start(timeout=60.0) -> None

        Listen, start the workers and wait until each is serving. Returns
        early, with the server stopped, if :meth:`stop` (or a signal handled
        by :meth:`serve_forever`) comes first.

        Raises
        ------
        AppImportError
            A worker cannot import Hypercorn or the app (everything is
            stopped).
        WorkerFailed
            A worker failed otherwise before it was listening (everything is
            stopped).
        TimeoutError
            The workers were not all listening after ``timeout`` seconds
            (everything is stopped).
        RuntimeError
            Python 3.12, or the server was started before.
        """
        if sys.version_info < (3, 13):
            raise RuntimeError(
                f"{_PREFIX} needs Python 3.13+: on {sys.version.split()[0]} importing asyncio "
                "in an own-GIL sub-interpreter aborts the process"
            )
        with self._lock:
            if self._started:
                raise RuntimeError("a Server can only be started once")
            self._started = True
        self._preflight()
        with self._loop_lock:  # a stop() meanwhile waits for this loop to end
            self._listen()
            for slot in range(self.workers):
                self._spawn(slot)
            deadline = time.monotonic() + timeout
            ready: set[int] = set()
            while len(ready) < self.workers:
                if self._stopping:
                    self._supervise()
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    self._abort()
                    raise TimeoutError(f"{_PREFIX}: workers not listening after {timeout} s")
                try:
                    ev = self._events.get(timeout=left)
                except ChannelEmpty:  # the loop checks the deadline
                    continue
                if ev[0] == "ready":
                    ready.add(ev[1])
                if not self._handle(ev, starting=True):
                    failure = self._failure
                    self._abort()
                    assert failure is not None
                    raise failure

    @property
    def stopping(self) -> bool:
        """True once a stop was asked for (by :meth:`stop`, a signal, or a
        worker failure)."""
        return self._stopping

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM stop the server gracefully while inside (main
        thread only; elsewhere a no-op)."""
        old: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, self._on_signal)
        try:
            yield
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def serve_forever(self) -> None:
        """serve_forever() -> None

        :meth:`start` (unless started), then supervise until :meth:`stop`,
        SIGINT or SIGTERM (handled gracefully when called from the main
        thread), restarting workers that die. Returns once every worker's
        interpreter is gone.

        Raises
        ------
        WorkerFailed
            A worker died and the restart limit was used up.
        """
        with self._signals():
            if not self._started:
                self.start()
            self._loop()
        if self._failure is not None:
            raise self._failure

    def stop(self, timeout: float | None = None) -> None:
        """stop(timeout=None) -> None

        Stop gracefully: the workers stop accepting, finish the requests in
        flight (up to ``graceful_timeout``) and end. Waits at most
        ``timeout`` seconds for the interpreters to be gone (when another
        thread runs :meth:`serve_forever`, waits for it to return).
        """
        self._request_stop()
        if self._loop_lock.acquire(blocking=False):
            try:
                self._supervise()
            finally:
                self._loop_lock.release()
        else:
            self._done.wait(timeout)

    # ---- the supervisor --------------------------------------------------------

    def _preflight(self) -> None:
        if importlib.util.find_spec("hypercorn") is None:
            raise AppImportError(f"{_PREFIX} needs Hypercorn: pip install 'xchannels[asgi]'")

    def _listen(self) -> None:
        if self._given_sock is not None:
            self._given_sock.listen(self._backlog)
            self._socks = [self._given_sock]
            return
        assert self._bind is not None
        host, port = self._bind
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # One socket per worker, all bound to the port with SO_REUSEPORT: the
        # kernel spreads new connections over them evenly. With one shared
        # socket, the worker that wakes first accepts every pending
        # connection (asyncio accepts up to the backlog per wake-up), and
        # keep-alive clients then load one worker only (measured: wrk's 32
        # connections all on one of two workers, half the requests/s).
        # This process keeps each socket open, so connections queued on a
        # slot's socket wait for its restarted worker instead of being reset.
        n = self.workers if self._reuse_port and hasattr(socket, "SO_REUSEPORT") else 1
        if n > 1 and port != 0:
            # SO_REUSEPORT would silently join another server already on the
            # port (same user): bind once without it first, so that a busy
            # port fails with EADDRINUSE as it does for any server.
            socket.create_server((host, port), family=family, backlog=1).close()
        try:
            for _ in range(n):
                sock = socket.create_server((host, port), family=family, backlog=self._backlog,
                                            reuse_port=n > 1)
                self._socks.append(sock)
                port = sock.getsockname()[1]  # port 0: the others join the port the first got
        except BaseException:
            for sock in self._socks:
                sock.close()
            self._socks = []
            raise

    def _spawn(self, slot: int) -> None:
        assert self._socks
        with self._lock:
            gen = self._generation.get(slot, -1) + 1
            self._generation[slot] = gen
        fd = os.dup(self._socks[slot % len(self._socks)].fileno())  # the worker owns and closes it
        try:
            w = Worker(
                _worker_main,
                (self.app, fd, slot, gen, self._stop, self._events,
                 self._graceful_timeout, self._stats_interval, self._log_level),
                name=f"xchannels-asgi-{slot}.{gen}",
            )
            w.start()
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            self._workers[slot] = w
        events = self._events

        def watch() -> None:
            w.join()
            events.put(("exit", slot, gen))

        threading.Thread(target=watch, name=f"{w.name}-watch", daemon=True).start()

    def _handle(self, ev: tuple[Any, ...], starting: bool = False) -> bool:
        """One event; False once the server must stop with self._failure."""
        kind = ev[0]
        if kind == "stats":
            _, slot, gen, n = ev
            with self._lock:
                self._counts[(slot, gen)] = n
        elif kind == "exit":
            _, slot, gen = ev
            with self._lock:
                w = self._workers.get(slot)
                current = self._generation.get(slot) == gen
                if current:
                    del self._workers[slot]
            if w is None or not current:
                return True
            try:
                w.result(0)
                error: BaseException | None = None
            except BaseException as e:
                error = e
            if self._stopping:
                # (a worker that fails to start while the server stops for the
                # same reason is not news)
                if error is not None and self._counts_ready(slot, gen):
                    print(f"{_PREFIX}: worker {slot} ended with {_describe(error)}", file=sys.stderr)
                return True
            if error is None:
                error = RuntimeError("the worker returned before it was asked to stop")
            if starting or not self._counts_ready(slot, gen):
                if isinstance(error, AppImportError):
                    self._failure = error
                else:
                    self._failure = WorkerFailed(f"{_PREFIX}: worker {slot} failed to start: {_describe(error)}")
                    self._failure.__cause__ = error
                return False
            with self._lock:
                can = self._restarts < self._max_restarts
                if can:
                    self._restarts += 1
                used = self._restarts
            if not can:
                self._failure = WorkerFailed(
                    f"{_PREFIX}: worker {slot} died ({_describe(error)}) and the restart limit "
                    f"({self._max_restarts}) is used up"
                )
                self._failure.__cause__ = error
                return False
            print(
                f"{_PREFIX}: worker {slot} died ({_describe(error)}); restarting it "
                f"({used} of {self._max_restarts} restarts)",
                file=sys.stderr,
            )
            self._spawn(slot)
        elif kind == "ready":
            with self._lock:
                self._counts.setdefault((ev[1], ev[2]), 0)
        # "wake": only wakes the loop
        return True

    def _counts_ready(self, slot: int, gen: int) -> bool:
        with self._lock:
            return (slot, gen) in self._counts

    def _loop(self) -> None:
        with self._loop_lock:
            self._supervise()

    def _supervise(self) -> None:
        """Handle events until every worker is gone (after a stop)."""
        try:
            while True:
                with self._lock:
                    if self._stopping and not self._workers:
                        break
                ev = self._events.get()
                if not self._handle(ev):
                    self._request_stop()
        finally:
            if self._given_sock is None:
                for sock in self._socks:
                    sock.close()
            self._done.set()

    def _request_stop(self) -> None:
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        self._stop.close()  # every worker's shutdown trigger returns
        self._events.put(("wake",))

    def _abort(self) -> None:
        self._request_stop()
        self._supervise()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stopping:
            print(f"{_PREFIX}: still stopping (waiting up to {self._graceful_timeout} s "
                  "for requests in flight)", file=sys.stderr)
            return
        print(f"{_PREFIX}: {signal.Signals(signum).name}: stopping gracefully", file=sys.stderr)
        self._request_stop()


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def serve(app: str, **options: Any) -> Mapping[int, int]:
    """serve(app, **options) -> dict[int, int]

    ``Server(app, **options).serve_forever()``; returns the requests served
    per worker slot.
    """
    server = Server(app, **options)
    server.serve_forever()
    return server.requests_served


# ---- the worker side ------------------------------------------------------------


class _Counted:
    """Hypercorn's app wrapper in a worker: counts HTTP requests, and turns
    an app's SystemExit or KeyboardInterrupt into the worker's end (``die``
    set, the exception kept in ``fatal``).

    A dying worker stops accepting at once (``stop_accepting``): its loop
    would otherwise go on accepting until Hypercorn's shutdown closes the
    listener, and drop what it accepted in between, unread (the client
    sees a reset). Connections still queued go to the worker that replaces
    it, as the supervisor keeps the listening socket open."""

    def __init__(self, app: Any, die: Any, stop_accepting: Any = None) -> None:
        self.app = app
        self.die = die
        self.stop_accepting = stop_accepting
        self.served = 0
        self.fatal: list[BaseException] = []

    async def __call__(self, scope: Any, receive: Any, send: Any, sync_spawn: Any, call_soon: Any) -> None:
        if scope["type"] == "http":
            self.served += 1
        try:
            await self.app(scope, receive, send, sync_spawn, call_soon)
        except (SystemExit, KeyboardInterrupt) as e:
            if self.stop_accepting is not None:
                self.stop_accepting()
            self.fatal.append(e)
            self.die.set()


def _worker_main(
    app_path: str,
    fd: int,
    slot: int,
    gen: int,
    stop: Channel,
    events: Channel,
    graceful_timeout: float,
    stats_interval: float,
    log_level: str,
) -> int:
    """Runs in a worker interpreter: serve ``app_path`` on the listening
    socket ``fd`` with Hypercorn until ``stop`` is closed; returns the
    number of HTTP requests served."""
    sock = socket.socket(fileno=fd)
    try:
        import asyncio

        from hypercorn.asyncio.run import worker_serve
        from hypercorn.config import Config, Sockets
        from hypercorn.utils import load_application
    except BaseException as e:
        sock.close()
        raise AppImportError(
            f"{_PREFIX}: Hypercorn cannot be imported in an own-GIL sub-interpreter, where the "
            f"workers run: {root_error(e)}"
        ) from e
    config = Config()
    config.graceful_timeout = graceful_timeout
    config.loglevel = log_level
    try:
        app = load_application(app_path, config.wsgi_max_body_size)
    except BaseException as e:
        sock.close()
        why = root_error(e)
        if "subinterpreter" in why.lower() or "sub-interpreter" in why.lower():
            why += (
                ". An extension the app needs does not support own-GIL sub-interpreters yet "
                f"(python -m xchannels check {_split_app(app_path)} shows which): serve it with "
                "process workers (hypercorn -w N) instead"
            )
        raise AppImportError(f"{_PREFIX}: cannot load the app {app_path!r} in the workers: {why}") from e
    # An app that raises SystemExit or KeyboardInterrupt ends this worker (as
    # it would end a process worker), but through a graceful stop of the
    # worker's loop, not by tearing it down with tasks still pending.
    def stop_accepting() -> None:
        try:
            asyncio.get_running_loop().remove_reader(sock.fileno())
        except (RuntimeError, ValueError, OSError):  # no loop, or closed already
            pass

    counted = _Counted(app, asyncio.Event(), stop_accepting)

    async def report() -> None:
        while True:
            await asyncio.sleep(stats_interval)
            events.put(("stats", slot, gen, counted.served))

    async def shutdown_trigger() -> None:
        events.put(("ready", slot, gen))
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(report()), loop.create_task(stop.get_async()),
                 loop.create_task(counted.die.wait())]
        try:
            await asyncio.wait(tasks[1:], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    sockets = Sockets(secure_sockets=[], insecure_sockets=[sock], quic_sockets=[])
    try:
        asyncio.run(worker_serve(counted, config, sockets=sockets, shutdown_trigger=shutdown_trigger))
    finally:
        sock.close()
        events.put(("stats", slot, gen, counted.served))
    if counted.fatal:
        raise counted.fatal[0]
    return counted.served


def main(argv: list[str] | None = None) -> int:
    """The command line: ``python -m xchannels.asgi APP [options]``."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m xchannels.asgi",
        description="Serve an ASGI app from own-GIL sub-interpreters of one process (Hypercorn in each).",
    )
    ap.add_argument("app", help="the app as module:attribute (imported in each worker)")
    ap.add_argument("-w", "--workers", type=int, default=None, help="worker interpreters (default: CPU count)")
    ap.add_argument("-b", "--bind", default="127.0.0.1:8000", help="HOST:PORT (default 127.0.0.1:8000)")
    ap.add_argument("--graceful-timeout", type=float, default=3.0,
                    help="seconds a stop waits for requests in flight (default 3)")
    ap.add_argument("--max-restarts", type=int, default=5,
                    help="restarts of dead workers allowed (default 5)")
    ap.add_argument("--backlog", type=int, default=1024)
    ap.add_argument("--log-level", default="warning", help="Hypercorn's log level in the workers")
    ap.add_argument("--no-reuse-port", action="store_true",
                    help="one listening socket shared by the workers instead of one each (SO_REUSEPORT)")
    args = ap.parse_args(argv)
    try:
        server = Server(
            args.app, workers=args.workers, bind=args.bind, graceful_timeout=args.graceful_timeout,
            max_restarts=args.max_restarts, backlog=args.backlog, log_level=args.log_level,
            reuse_port=not args.no_reuse_port,
        )
    except (TypeError, ValueError) as e:
        ap.error(str(e))
    with server._signals():  # Ctrl-C from here on stops gracefully, even while starting
        try:
            server.start()
        except (AppImportError, WorkerFailed, TimeoutError, RuntimeError, OSError) as e:
            print(f"{_PREFIX}: {e}" if not str(e).startswith(_PREFIX) else str(e), file=sys.stderr)
            _print_cause(e)
            return 1
        if not server.stopping:
            host, port = server.address
            print(f"{_PREFIX}: serving {args.app} on http://{host}:{port} with {server.workers} "
                  f"worker interpreter(s) (pid {os.getpid()}; Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except WorkerFailed as e:
            print(str(e), file=sys.stderr)
            _print_cause(e)
            return 1
    counts = server.requests_served
    print(f"{_PREFIX}: stopped; requests served: "
          + ", ".join(f"worker {s}: {n}" for s, n in counts.items())
          + f" (total {sum(counts.values())}; {server.restarts} restart(s))", file=sys.stderr)
    return 0


def _print_cause(e: BaseException) -> None:
    if isinstance(e, AppImportError):
        return  # the message says it all
    cause = e.__cause__
    tb = getattr(cause.__cause__, "tb", None) if cause is not None else None
    if tb:
        print(tb.rstrip(), file=sys.stderr)

