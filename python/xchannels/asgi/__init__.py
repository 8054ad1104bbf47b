"""xchannels.asgi: one ASGI app served by own-GIL sub-interpreters of one
process, with Hypercorn in each (``pip install 'xchannels[asgi]'``).

``python -m xchannels.asgi app:app --workers 4 --bind 127.0.0.1:8000``

What ``hypercorn -w N`` does with N processes, done with N interpreters:

- The supervisor (:class:`Server`, in the main interpreter) makes one
  listening socket per worker, all on the port with ``SO_REUSEPORT`` (the
  kernel spreads new connections over them), and hands each worker a
  duplicate of its descriptor. Every worker runs Hypercorn's asyncio
  ``worker_serve`` on it.
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

The package, one module per room:

- ``_supervisor``: :class:`Server` and :func:`serve`, in the main interpreter
  (sockets, workers, restarts, signals, stop).
- ``_worker``: what each worker interpreter runs (Hypercorn on its socket,
  the request counter, its events).
- ``_events``: the events the workers (and the supervisor's watch threads)
  send the supervisor: named constructors, one shape read by unpacking.
- ``_base``: what both sides share: the messages' prefix, the reading of
  ``module:attribute``. The errors, :class:`AppImportError` and
  :class:`WorkerFailed`, are defined here.
- ``_cli``: :func:`main`, the command line (``__main__`` calls it).

Each worker interpreter imports this package to reach ``_worker``: the
supervisor and the command line are therefore loaded here on first use, not
on import.
"""

from __future__ import annotations


# The errors live here, in the public module: a worker's exception travels
# to the supervisor as (module, qualname) and is rebuilt there by import, and
# tracebacks and the docs' inspection print and find them by this name.
class AppImportError(ImportError):
    """The app (or Hypercorn) cannot be imported where the workers run: in
    an own-GIL sub-interpreter. Raised by :meth:`Server.start` when a worker
    fails to import it (every worker is then stopped); the message names the
    innermost import that failed."""


class WorkerFailed(RuntimeError):
    """A worker failed before it was listening, or died after the restart
    limit was used up; the server has stopped. ``__cause__`` is the worker's
    exception, with the remote traceback."""


TYPE_CHECKING = False
if TYPE_CHECKING:
    from xchannels.asgi._cli import main as main  # public, though not in __all__
    from xchannels.asgi._supervisor import Server, serve

__all__ = ["AppImportError", "Server", "WorkerFailed", "serve"]

_ON_FIRST_USE = ("Server", "serve", "main")


def __getattr__(name: str) -> object:
    """Server, serve and main, loaded on first use (see above)."""
    if name == "main":
        from xchannels.asgi._cli import main

        return main
    if name in _ON_FIRST_USE:
        from xchannels.asgi import _supervisor

        return getattr(_supervisor, name)
    raise AttributeError(f"module 'xchannels.asgi' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ON_FIRST_USE))
