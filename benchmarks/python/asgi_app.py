"""benchmarks/python/asgi_app.py: the ASGI 3 app ``bench_asgi.py`` serves: every request ``200`` with a small
JSON body after ``work(COST_LOOPS)``, a pure-Python loop in the event loop standing for a view's CPU cost
(~0.7 ms here). Standard library only: every server and every xchannels.asgi worker imports it."""

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
