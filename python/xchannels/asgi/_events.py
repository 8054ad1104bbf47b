"""python/xchannels/asgi/_events.py: the messages on a server's ``events``
channel, in one place.

The rule of ``xchannels._protocol``: every event is a tuple of shareable
values (it crosses interpreters through a channel, never pickled), built by
the constructors below and read by unpacking in the order given here, never
by index. Every kind has the same shape, so one unpacking reads any event::

    kind, slot, generation, served = event

- :data:`READY` (from a worker): worker ``slot`` of ``generation`` (its
  restarts count up from 0) listens; ``served`` is 0.
- :data:`STATS` (from a worker): it has served ``served`` HTTP requests so
  far. Sent every ``stats_interval`` seconds and once more when it stops.
- :data:`EXITED` (from the supervisor's watch thread of that worker): its
  interpreter has ended; ``served`` is 0.
- :data:`WAKE` (from the supervisor to itself): a stop was asked for; the
  event only wakes the loop waiting on the channel. ``slot`` and
  ``generation`` are -1.

Imported in every worker interpreter: keep it free of imports.
"""

from __future__ import annotations

READY = "ready"
STATS = "stats"
EXITED = "exit"
WAKE = "wake"

Event = tuple[str, int, int, int]  # (kind, slot, generation, served)


def ready(slot: int, generation: int) -> Event:
    """Worker ``slot`` of ``generation`` listens."""
    return (READY, slot, generation, 0)


def stats(slot: int, generation: int, served: int) -> Event:
    """Worker ``slot`` of ``generation`` has served ``served`` requests."""
    return (STATS, slot, generation, served)


def exited(slot: int, generation: int) -> Event:
    """The interpreter of worker ``slot`` of ``generation`` has ended."""
    return (EXITED, slot, generation, 0)


def wake() -> Event:
    """Wakes the supervisor's loop (a stop was asked for)."""
    return (WAKE, -1, -1, 0)
