"""xchannels: fast channels, shared buffers and a worker pool for Python
sub-interpreters (PEP 684), without pickle.

Import it in any interpreter, main or own-GIL sub-interpreter::

    import xchannels
    ch = xchannels.Channel()
    ch.put((1, "two", 3.0))
    ch.get()

See the documentation in ``docs/`` for the guide and the API reference.
"""

from xchannels._xchannels import (
    Channel,
    ChannelEmpty,
    ChannelError,
    ChannelNotFoundError,
    NotShareableError,
    ProcessChannel,
    SharedBuffer,
    is_shareable,
    select,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from xchannels._xchannels import ChannelClosed, ChannelFull
    from xchannels._pool import BrokenPool, Pool, reusable_pool
    from xchannels._calls import RemoteError, RemoteTraceback
    from xchannels._worker import Worker
    from xchannels._aio import select_async
    from xchannels._check import ModuleCheck, check_modules
    from xchannels._info import info

# Pool and Worker pull in concurrent.futures and threading machinery that a
# worker interpreter never needs: import them on first use, so
# `import xchannels` in a sub-interpreter stays cheap.
_LAZY = {
    "BrokenPool": "xchannels._pool",
    # Made on first use by the extension: they derive from queue.Full and
    # (3.13+) queue.ShutDown, and importing queue costs milliseconds in every
    # fresh interpreter.
    "ChannelClosed": "xchannels._xchannels",
    "ChannelFull": "xchannels._xchannels",
    "ModuleCheck": "xchannels._check",
    "check_modules": "xchannels._check",
    "info": "xchannels._info",
    "Pool": "xchannels._pool",
    "RemoteError": "xchannels._calls",
    "reusable_pool": "xchannels._pool",
    "RemoteTraceback": "xchannels._calls",
    "Worker": "xchannels._worker",
    "select_async": "xchannels._aio",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'xchannels' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BrokenPool",
    "Channel",
    "ChannelClosed",
    "ChannelEmpty",
    "ChannelError",
    "ChannelFull",
    "ChannelNotFoundError",
    "ModuleCheck",
    "NotShareableError",
    "Pool",
    "ProcessChannel",
    "RemoteError",
    "RemoteTraceback",
    "SharedBuffer",
    "Worker",
    "check_modules",
    "info",
    "is_shareable",
    "reusable_pool",
    "select",
    "select_async",
]

# The one place the version is written: pyproject.toml reads it from here.
__version__ = "0.2.0"
