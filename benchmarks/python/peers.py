"""benchmarks/python/peers.py: the peers (a queue and where its actors run; table in benchmarks/README.md):
``Peer`` subclasses on the orchestrator side, ``actor_main`` on the actor side."""

from __future__ import annotations

import functools
import os
import queue as _queue
import sys
import threading
import traceback
from types import SimpleNamespace
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1024 * 1024
BASELINE = "mp-queue"
# Payloads that 3.13's interpreter queues cannot carry as cross-interpreter
# data (syncobj=True raises NotShareableError): their data queue is made
# with syncobj=False, so they are pickled, as a user would have to.
NOT_XI_SHAREABLE = {"dict-10"}
EMULATED_BATCH = "emulated: one 100-int tuple per message (no batch API)"
POLL_SELECT = "emulated: round-robin get_nowait + 50 us sleep (no select API)"
STDLIB_INTERPRETERS = sys.version_info >= (3, 14)  # concurrent.interpreters (PEP 734)


def actor_main(peer: str, role: str, queues: dict[str, Any], params: dict[str, Any]) -> None:
    """Run one actor: attach the queues, call ``workloads.<role>``. An
    exception reaches the orchestrator as ("error", ME, traceback)."""
    import workloads

    a = SimpleNamespace(**params)
    try:
        q, extra = PEERS[peer].attach(queues)
        a.__dict__.update(q=q, ctrl_get=q["ctrl"].get, report=q["out"].put, batch_putter=lambda c: c.put,
                          batch_getter=lambda c: c.get, native_batch=False)
        a.__dict__.update(extra)
        getattr(workloads, role)(a)
    except BaseException:
        try:
            a.report(("error", a.ME, traceback.format_exc()))
        except BaseException:
            pass
        raise


# ---- actors (orchestrator side) ---------------------------------------------------------


class ThreadActor:
    """A thread running ``target(*args)``; ``error``: the traceback text if it died abnormally."""

    def __init__(self, name: str, target: Any, *args: Any) -> None:
        self.name, self.error = name, None
        self._t = threading.Thread(target=self._main, args=(target, args), daemon=True, name=name)
        self._t.start()

    def _main(self, target: Any, args: tuple) -> None:
        try:
            err = target(*args)
            if isinstance(err, str):
                self.error = err
        except BaseException:
            self.error = traceback.format_exc()

    def alive(self) -> bool:
        return self._t.is_alive()

    def join(self, timeout: float) -> bool:
        self._t.join(timeout)
        return not self._t.is_alive()

    def kill(self) -> None:
        """Threads and interpreters cannot be killed: the cell's process goes."""


def _in_subinterpreter(code: str, name: str, started: threading.Event) -> str | None:
    """Create an own-GIL sub-interpreter on this thread (3.12 wants its creator to destroy it), run code,
    destroy it; the traceback text or None. ``started``: set once it exists (start-up is untimed)."""
    from xchannels import _interp  # the package's shim over CPython's private modules

    try:
        iid = _interp.create()
    finally:
        started.set()
    try:
        return _interp.run(iid, code, filename=f"<{name}>")
    finally:
        _interp.destroy(iid)


class ProcessActor:
    def __init__(self, ctx: Any, name: str, *args: Any) -> None:
        self.name, self.error = name, None
        self._p = ctx.Process(target=actor_main, args=args, daemon=True, name=name)
        self._p.start()

    def alive(self) -> bool:
        return self._p.is_alive()

    def join(self, timeout: float) -> bool:
        self._p.join(timeout)
        if self._p.is_alive():
            return False
        if self._p.exitcode not in (0, None) and self.error is None:
            self.error = f"process {self.name} exited with code {self._p.exitcode}"
        return True

    def kill(self) -> None:
        for stop in (self._p.terminate, self._p.kill):
            if self._p.is_alive():
                stop()
                self._p.join(2)


# ---- peers --------------------------------------------------------------------------


class Peer:
    name = label = where = "?"
    batch = EMULATED_BATCH  # how the batch workload is done
    select_how = POLL_SELECT  # how the select workload is done
    go_margin = 0.005  # producers start this far ahead: more than a control message takes

    def available(self) -> str | None:
        """None if usable here, else the reason it is not."""
        return None

    def unsupported(self, workload: str, payload: str | None) -> str | None:
        """None if this peer can run the cell, else why not ('n/a')."""
        return None

    def make_queue(self, payload_bytes: int | None = None, payload: str | None = None) -> Any:
        """A queue; payload_bytes and payload for the data queues, None for control."""
        raise NotImplementedError

    def payload_note(self, payload: str) -> str | None:
        return None

    def main_put(self, q: Any, x: Any) -> None:
        q.put(x)

    def main_get(self, q: Any, timeout: float) -> Any:
        """Get from q; raise queue.Empty after timeout seconds."""
        return q.get(timeout=timeout)

    def start(self, name: str, role: str, queues: dict[str, Any], params: dict[str, Any]) -> Any:
        raise NotImplementedError

    @staticmethod
    def attach(queues: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Actor side: (queues by name, overrides of actor_main's defaults)."""
        return queues, {"select": _poll(_queue.Empty)}

    def abort(self, queues: list[Any]) -> None:
        """Wake actors blocked on these queues, if the peer can."""

    def close(self, queues: list[Any]) -> None:
        for q in queues:
            try:
                q.close()
            except Exception:
                pass


def _poll(empty: Any) -> Any:
    from workloads import poll_select

    return poll_select(empty)


def _shared_64mib() -> Any:
    import xchannels

    return xchannels.SharedBuffer(b"\xab" * (64 * MiB))


class _InterpPeer(Peer):
    where = "each actor in its own own-GIL sub-interpreter on its own thread"

    def start(self, name, role, queues, params):
        ids = {k: q.id for k, q in queues.items()}
        code = (f"import sys\nsys.path.insert(0, {HERE!r})\nimport peers\n"
                f"peers.actor_main({self.name!r}, {role!r}, {ids!r}, {params!r})\n")
        started = threading.Event()
        a = ThreadActor(name, _in_subinterpreter, code, name, started)
        started.wait(30)
        return a


class XChannelsPeer(_InterpPeer):
    name = label = "xchannels"
    batch = "put_many / get_many(100)"
    select_how = "xchannels.select"

    def __init__(self) -> None:
        import xchannels

        self.mod = xchannels

    def make_queue(self, payload_bytes=None, payload=None):
        return self.mod.Channel()

    def main_get(self, q, timeout):
        try:
            return q.get(timeout=timeout)
        except self.mod.ChannelEmpty:
            raise _queue.Empty from None

    @staticmethod
    def attach(queues):
        import xchannels

        return {k: xchannels.Channel.from_id(i) for k, i in queues.items()}, {
            "shared_64mib": _shared_64mib, "batch_putter": lambda c: c.put_many,
            "batch_getter": lambda c: functools.partial(c.get_many, 100),
            "select": lambda qs, _sel=xchannels.select: _sel(qs)[1], "native_batch": True}

    def abort(self, queues):
        self.close(queues)


def _interp_queues() -> Any:
    if STDLIB_INTERPRETERS:
        from concurrent import interpreters

        return interpreters
    from test.support.interpreters import queues

    return queues


class InterpQueuesPeer(_InterpPeer):
    name = "interp-queues"
    label = f"interp queues ({sys.version_info.major}.{sys.version_info.minor})"
    go_margin = 0.03  # control messages wait up to 10 ms (polling get)

    def available(self):
        if sys.version_info < (3, 13):
            return "needs CPython 3.13 (test.support.interpreters.queues) or 3.14+ (concurrent.interpreters)"
        try:
            _interp_queues()
        except Exception as e:  # pragma: no cover - depends on the build
            return f"cannot import CPython's interpreter queues: {e}"
        return None

    def make_queue(self, payload_bytes=None, payload=None):
        if STDLIB_INTERPRETERS:  # 3.14+ pickles what is not shareable by itself
            return _interp_queues().create_queue()
        # 3.13: syncobj=True passes cross-interpreter data, no pickle (the
        # 3.13.0 default pickles); dicts need the pickling queue.
        return _interp_queues().create(syncobj=payload not in NOT_XI_SHAREABLE)

    def payload_note(self, payload):
        if payload not in NOT_XI_SHAREABLE:
            return None
        if STDLIB_INTERPRETERS:
            return "pickled by the queue (not cross-interpreter data)"
        return ("pickled: the data queue is created with syncobj=False (the 3.13 default), "
                "since syncobj=True raises NotShareableError for it")

    def main_get(self, q, timeout):
        # 3.13-3.15 truncate timeouts with int(); ask for whole seconds.
        return q.get(timeout=max(1, int(round(timeout))))

    @staticmethod
    def attach(queues):
        # Queue(qid) by id: prepare_main(q=queue) fails on 3.13 until the
        # interpreter has imported the queues module. The SharedBuffer's
        # nearest equivalent: a shared memoryview (must not outlive us).
        m = _interp_queues()
        return {k: m.Queue(i) for k, i in queues.items()}, {
            "select": _poll(m.QueueEmpty), "shared_64mib": lambda: memoryview(bytearray(64 * MiB))}

    def close(self, queues):
        pass


class _ProcessPeer(Peer):
    where = "each actor in its own process (multiprocessing, spawn)"

    def __init__(self) -> None:
        import multiprocessing

        self.ctx = multiprocessing.get_context("spawn")

    def unsupported(self, workload, payload):
        if payload == "SharedBuffer-64MiB":
            return "no zero-copy shared buffer: items are pickled (see bytes-64MiB)"
        return None

    def start(self, name, role, queues, params):
        return ProcessActor(self.ctx, name, self.name, role, queues, params)


class MPQueuePeer(_ProcessPeer):
    name, label = "mp-queue", "multiprocessing.Queue"

    def make_queue(self, payload_bytes=None, payload=None):
        return self.ctx.Queue()

    def close(self, queues):
        for q in queues:
            try:
                q.cancel_join_thread()
                q.close()
            except Exception:
                pass


class FasterFifoPeer(_ProcessPeer):
    name = label = "faster-fifo"
    batch = "put_many / get_many(max_messages_to_get=100)"

    def available(self):
        try:
            import faster_fifo  # noqa: F401
        except Exception as e:
            return f"faster-fifo not installed ({e}); pip install faster-fifo"
        return None

    def make_queue(self, payload_bytes=None, payload=None):
        import faster_fifo

        # A fixed circular buffer in shared memory: room for a few of the largest items.
        return faster_fifo.Queue(max_size_bytes=MiB if payload_bytes is None else max(64 * MiB, 3 * payload_bytes + MiB))

    def main_put(self, q, x):
        q.put(x, timeout=60)

    @staticmethod
    def attach(queues):
        ctrl = queues["ctrl"]

        def ctrl_get():  # faster-fifo's default timeout is 10 s; block "forever"
            while True:
                try:
                    return ctrl.get(timeout=3600)
                except _queue.Empty:
                    pass

        return queues, {"ctrl_get": ctrl_get, "report": lambda t: queues["out"].put(t, timeout=60),
                        "batch_putter": lambda c: functools.partial(c.put_many, timeout=60),
                        "batch_getter": lambda c: functools.partial(c.get_many, timeout=3600,
                                                                     max_messages_to_get=100),
                        "select": _poll(_queue.Empty), "native_batch": True}


class XChannelsProcessPeer(_ProcessPeer):
    name, label = "xchannels-process", "xchannels ProcessChannel"
    where = "each actor in its own process (multiprocessing, spawn); items copied through a shared-memory ring"
    batch = "emulated: one 100-int tuple per message (ProcessChannel has no put_many/get_many)"
    select_how = "xchannels.select (over ProcessChannels: futex_waitv, Linux 5.16+)"

    def __init__(self) -> None:
        super().__init__()
        import xchannels

        self.mod = xchannels

    def unsupported(self, workload, payload):
        if payload == "SharedBuffer-64MiB":
            return ("no zero-copy across processes: a SharedBuffer is copied through the ring like "
                    "bytes (see bytes-64MiB)")
        return None

    def make_queue(self, payload_bytes=None, payload=None):
        # The ring is fixed at creation; data rings get faster-fifo's sizes,
        # control the default 1 MiB (the largest report is tens of KiB).
        if payload_bytes is None:
            return self.mod.ProcessChannel()
        return self.mod.ProcessChannel(capacity=max(64 * MiB, 3 * payload_bytes + MiB))

    @staticmethod
    def attach(queues):
        import xchannels

        return queues, {"select": lambda qs, _sel=xchannels.select: _sel(qs)[1]}

    def abort(self, queues):
        self.close(queues)  # close() wakes every waiter, in every process


class ThreadQueuePeer(Peer):
    name, label = "queue-thread", "queue.Queue (threads)"
    where = "each actor a thread of the main interpreter (one GIL)"

    def make_queue(self, payload_bytes=None, payload=None):
        return _queue.Queue()

    def start(self, name, role, queues, params):
        return ThreadActor(name, actor_main, self.name, role, queues, params)

    @staticmethod
    def attach(queues):
        return queues, {"select": _poll(_queue.Empty), "shared_64mib": _shared_64mib}

    def close(self, queues):
        pass


PEERS: dict[str, type[Peer]] = {c.name: c for c in (XChannelsPeer, InterpQueuesPeer, MPQueuePeer, FasterFifoPeer,
                                                  XChannelsProcessPeer, ThreadQueuePeer)}
PEER_NAMES = list(PEERS)


def make_peer(name: str) -> Peer:
    return PEERS[name]()


def peer_info() -> dict[str, dict[str, str]]:
    """Static description of every peer (for the JSON and the docs)."""
    return {n: {"label": c.label, "where": c.where, "batch": c.batch, "select": c.select_how}
            for n, c in PEERS.items()}
