"""benchmarks/python/asgi_app.py: the application ``bench_asgi.py`` serves.

A plain ASGI 3 application, no framework: every HTTP request is answered
``200`` with a small JSON body after ``work(COST_LOOPS)``, a pure-Python loop
that stands for a request's CPU cost (about 0.7 ms on the benchmark machine;
``bench_asgi.py`` measures it and reports it as ``app_cost_ms``). The loop
runs in the event loop, as a view's Python code would, so one worker serves
one request's cost at a time and requests/s measures how well a server's
workers use the cores. The lifespan protocol is answered (startup and
shutdown complete); other scope types are ignored.

Pure Python and standard library only: every server under test, and every
worker interpreter of ``xchannels.asgi``, imports it as ``asgi_app:app``.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing import in every worker interpreter
    from typing import Any, Awaitable, Callable

    Receive = Callable[[], Awaitable[dict[str, Any]]]
    Send = Callable[[dict[str, Any]], Awaitable[None]]

# Iterations of work()'s loop per request: the request's CPU cost.
COST_LOOPS = 3_000


def work(n: int) -> int:
    """The per-request CPU cost: n rounds of integer arithmetic."""
    x = 0
    for i in range(n):
        x = (x + i * i) % 1_000_003
    return x


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The ASGI application: ``{"ok": true, "path": ..., "result": ...}``."""
    if scope["type"] == "lifespan":  # startup and shutdown complete at once
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    # Read the whole request body (none for wrk's GETs).
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body", False):
            break
    body = json.dumps({"ok": True, "path": scope.get("path", "/"), "result": work(COST_LOOPS)}).encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
