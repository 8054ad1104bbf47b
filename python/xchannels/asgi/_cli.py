"""python/xchannels/asgi/_cli.py: the command line, ``python -m xchannels.asgi
APP [options]``: its options, and what it prints on start, failure and stop.
"""

from __future__ import annotations

import os
import sys

from xchannels.asgi import AppImportError, WorkerFailed
from xchannels.asgi._base import PREFIX
from xchannels.asgi._supervisor import Server


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
            print(f"{PREFIX}: {e}" if not str(e).startswith(PREFIX) else str(e), file=sys.stderr)
            _print_cause(e)
            return 1
        if not server.stopping:
            host, port = server.address
            print(f"{PREFIX}: serving {args.app} on http://{host}:{port} with {server.workers} "
                  f"worker interpreter(s) (pid {os.getpid()}; Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except WorkerFailed as e:
            print(str(e), file=sys.stderr)
            _print_cause(e)
            return 1
    counts = server.requests_served
    print(f"{PREFIX}: stopped; requests served: "
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

