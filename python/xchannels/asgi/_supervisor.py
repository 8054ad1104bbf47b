"""python/xchannels/asgi/_supervisor.py: the server's main-interpreter side,
:class:`Server` and :func:`serve`: it listens, starts a worker interpreter
per slot (``_worker.worker_main``), reads their events (``_events``),
restarts workers that die and stops them all.
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

from xchannels._worker import Worker
from xchannels._xchannels import Channel, ChannelEmpty
from xchannels.asgi import AppImportError, WorkerFailed, _events
from xchannels.asgi._base import PREFIX, split_app
from xchannels.asgi._worker import worker_main


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
        split_app(app)  # a malformed app fails here, not in every worker
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
        # Reentrant: the signal handler (_on_signal) takes it in the main
        # thread, which may hold it already (a signal lands between two
        # bytecodes); with a Lock, Ctrl-C there hung the server.
        self._lock = threading.RLock()
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
                f"{PREFIX} needs Python 3.13+: on {sys.version.split()[0]} importing asyncio "
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
                    raise TimeoutError(f"{PREFIX}: workers not listening after {timeout} s")
                try:
                    ev = self._events.get(timeout=left)
                except ChannelEmpty:  # the loop checks the deadline
                    continue
                kind, slot, _gen, _served = ev
                if kind == _events.READY:
                    ready.add(slot)
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
            raise AppImportError(f"{PREFIX} needs Hypercorn: pip install 'xchannels[asgi]'")

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
                worker_main,
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
            events.put(_events.exited(slot, gen))

        threading.Thread(target=watch, name=f"{w.name}-watch", daemon=True).start()

    def _handle(self, ev: _events.Event, starting: bool = False) -> bool:
        """One event; False once the server must stop with self._failure."""
        kind, slot, gen, served = ev
        if kind == _events.STATS:
            with self._lock:
                self._counts[(slot, gen)] = served
        elif kind == _events.EXITED:
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
                    print(f"{PREFIX}: worker {slot} ended with {_describe(error)}", file=sys.stderr)
                return True
            if error is None:
                error = RuntimeError("the worker returned before it was asked to stop")
            if starting or not self._counts_ready(slot, gen):
                if isinstance(error, AppImportError):
                    self._failure = error
                else:
                    self._failure = WorkerFailed(f"{PREFIX}: worker {slot} failed to start: {_describe(error)}")
                    self._failure.__cause__ = error
                return False
            with self._lock:
                can = self._restarts < self._max_restarts
                if can:
                    self._restarts += 1
                used = self._restarts
            if not can:
                self._failure = WorkerFailed(
                    f"{PREFIX}: worker {slot} died ({_describe(error)}) and the restart limit "
                    f"({self._max_restarts}) is used up"
                )
                self._failure.__cause__ = error
                return False
            print(
                f"{PREFIX}: worker {slot} died ({_describe(error)}); restarting it "
                f"({used} of {self._max_restarts} restarts)",
                file=sys.stderr,
            )
            self._spawn(slot)
        elif kind == _events.READY:
            with self._lock:
                self._counts.setdefault((slot, gen), 0)
        # WAKE: only wakes the loop
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
        self._events.put(_events.wake())

    def _abort(self) -> None:
        self._request_stop()
        self._supervise()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stopping:
            say = (f"{PREFIX}: still stopping (waiting up to {self._graceful_timeout} s "
                   "for requests in flight)")
        else:
            say = f"{PREFIX}: {signal.Signals(signum).name}: stopping gracefully"
            self._request_stop()
        try:
            print(say, file=sys.stderr)
        except RuntimeError:  # the main thread was inside a write to stderr: the line is lost, not the stop
            pass


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
