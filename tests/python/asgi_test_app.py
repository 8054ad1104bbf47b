"""The ASGI app of tests/python/test_asgi.py, served by xchannels.asgi workers.

Paths:
- ``/``: ``{"interp": <interpreter id>}``.
- ``/spin?ms=N``: holds its worker's event loop for N ms of pure Python, so a
  request that arrives meanwhile is accepted by another worker.
- ``/slow?s=X``: answers after X seconds (a request in flight).
- ``/crash``: raises SystemExit, which ends the worker that serves it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs


def _interp_id() -> int:
    try:
        import _interpreters

        return int(_interpreters.get_current()[0])
    except ImportError:  # 3.12
        return -1


async def _respond(send: Any, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = parse_qs(scope.get("query_string", b"").decode())
    path = scope["path"]
    if path == "/crash":
        raise SystemExit("crash requested by the test")
    if path == "/spin":
        end = time.monotonic() + float(query["ms"][0]) / 1000
        while time.monotonic() < end:
            pass
    elif path == "/slow":
        await asyncio.sleep(float(query["s"][0]))
    await _respond(send, {"interp": _interp_id(), "path": path})
