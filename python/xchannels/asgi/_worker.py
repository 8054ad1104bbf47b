"""python/xchannels/asgi/_worker.py: what each worker interpreter runs:
Hypercorn's asyncio server on the listening socket the supervisor handed it.

The supervisor starts :func:`worker_main` in an :class:`xchannels.Worker`,
which imports this module (and so the package's ``__init__``) in the fresh
interpreter. Keep its imports to what a worker needs: not the supervisor's
(threads, signals, ``xchannels.Worker``), which ``__init__`` loads only on
first use.
"""

from __future__ import annotations

import socket

from xchannels._check import root_error
from xchannels.asgi import AppImportError
from xchannels.asgi._base import PREFIX, split_app
from xchannels.asgi._events import ready, stats

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds in every fresh worker interpreter
    from typing import Any

    from xchannels._xchannels import Channel


class Counted:
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


def worker_main(
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
            f"{PREFIX}: Hypercorn cannot be imported in an own-GIL sub-interpreter, where the "
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
                f"(python -m xchannels check {split_app(app_path)} shows which): serve it with "
                "process workers (hypercorn -w N) instead"
            )
        raise AppImportError(f"{PREFIX}: cannot load the app {app_path!r} in the workers: {why}") from e
    # An app that raises SystemExit or KeyboardInterrupt ends this worker (as
    # it would end a process worker), but through a graceful stop of the
    # worker's loop, not by tearing it down with tasks still pending.
    def stop_accepting() -> None:
        try:
            asyncio.get_running_loop().remove_reader(sock.fileno())
        except (RuntimeError, ValueError, OSError):  # no loop, or closed already
            pass

    counted = Counted(app, asyncio.Event(), stop_accepting)

    async def report() -> None:
        while True:
            await asyncio.sleep(stats_interval)
            events.put(stats(slot, gen, counted.served))

    async def shutdown_trigger() -> None:
        events.put(ready(slot, gen))
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
        events.put(stats(slot, gen, counted.served))
    if counted.fatal:
        raise counted.fatal[0]
    return counted.served
