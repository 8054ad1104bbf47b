"""python/xchannels/asgi/_base.py: what the supervisor and the workers share:
the errors a server can end with, the prefix of its messages, and the reading
of an app's ``module:attribute``.

Imported in every worker interpreter: the standard library's ``os`` and
``sys`` only.
"""

from __future__ import annotations

import os
import sys

PREFIX = "xchannels.asgi"


class AppImportError(ImportError):
    """The app (or Hypercorn) cannot be imported where the workers run: in
    an own-GIL sub-interpreter. Raised by :meth:`Server.start` when a worker
    fails to import it (every worker is then stopped); the message names the
    innermost import that failed."""

    # The public name. A worker's exception travels to the supervisor as
    # (module, qualname) and is rebuilt there by import; tracebacks print it.
    __module__ = "xchannels.asgi"


class WorkerFailed(RuntimeError):
    """A worker failed before it was listening, or died after the restart
    limit was used up; the server has stopped. ``__cause__`` is the worker's
    exception, with the remote traceback."""

    __module__ = "xchannels.asgi"  # the public name, as for AppImportError


def split_app(app: str) -> str:
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
