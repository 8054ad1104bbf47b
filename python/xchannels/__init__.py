"""xchannels: fast channels, shared buffers and a worker pool for Python
sub-interpreters (PEP 684), without pickle.

Import it in any interpreter, main or own-GIL sub-interpreter::

    import xchannels
    ch = xchannels.Channel()
    ch.put((1, "two", 3.0))
    ch.get()

See the documentation in ``docs/`` for the guide and the API reference.
"""

from __future__ import annotations

from xchannels._xchannels import (
    Channel,
    ChannelClosed,
    ChannelEmpty,
    ChannelError,
    ChannelFull,
    ChannelNotFoundError,
    NotShareableError,
    SharedBuffer,
    is_shareable,
    select,
)

__all__ = [
    "Channel",
    "ChannelClosed",
    "ChannelEmpty",
    "ChannelError",
    "ChannelFull",
    "ChannelNotFoundError",
    "NotShareableError",
    "SharedBuffer",
    "is_shareable",
    "select",
]

__version__ = "0.1.0"
