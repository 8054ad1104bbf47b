"""python/xchannels/asgi/_base.py: what the supervisor and the workers share:
the prefix of their messages and the reading of an app's ``module:attribute``
(the errors a server can end with are the package's own, in ``__init__``).

Imported in every worker interpreter: the standard library's ``os`` and
``sys`` only.
"""

from __future__ import annotations

import os
import sys

PREFIX = "xchannels.asgi"


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
