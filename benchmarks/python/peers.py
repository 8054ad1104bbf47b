"""benchmarks/python/peers.py: the peers, one ``Peer`` row each (make a queue, start an actor, attach on the
actor side, close), and ``actor_main``, what every actor runs."""

from __future__ import annotations

import os
import queue as _queue
import sys
import threading
import traceback
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1024 * 1024
BASELINE = "mp-queue"
# Payloads that 3.13's interpreter queues cannot carry as cross-interpreter
# data (syncobj=True raises NotShareableError): their data queue is made
# with syncobj=False, so they are pickled, as a user would have to.
NOT_XI_SHAREABLE = {"dict-10"}
STDLIB_INTERPRETERS = sys.version_info >= (3, 14)  # concurrent.interpreters (PEP 734)


def actor_main(peer: str, role: str, queues: dict[str, Any], params: dict[str, Any]) -> None:
    """Attach the queues and run ``workloads.<role>``; an exception is reported as ("error", ME, traceback)."""
    import workloads

    a = SimpleNamespace(**params)
    try:
        q, extra = PEERS[peer].attach(queues)
        a.__dict__.update(q=q, ctrl_get=q["ctrl"].get, report=q["out"].put, shared_64mib=_shared_64mib)
        a.__dict__.update(extra)
        getattr(workloads, role)(a)
    except BaseException:
        try:
            a.report(("error", a.ME, traceback.format_exc()))
        except BaseException:
            pass
        raise


# ---- actors (orchestrator side) ---------------------------------------------------------


class Actor:
    """A started thread or process running one actor; ``error``: why it died, if it did."""

    def __init__(self, name: str, runner: Callable[["Actor"], Any]) -> None:
        self.name, self.error = name, None  # type: str, str | None
        self._r = runner(self)
        self._r.start()

    def alive(self) -> bool:
        return self._r.is_alive()

    def join(self, timeout: float) -> bool:
        self._r.join(timeout)
        if self._r.is_alive():
            return False
        if getattr(self._r, "exitcode", 0) not in (0, None) and self.error is None:
            self.error = f"process {self.name} exited with code {self._r.exitcode}"
        return True

    def kill(self) -> None:
        """A process is terminated, then killed; threads and interpreters cannot be: the cell's process goes."""
        for stop in (getattr(self._r, "terminate", None), getattr(self._r, "kill", None)):
            if stop and self._r.is_alive():
                stop()
                self._r.join(2)


def _thread(name: str, target: Any, *args: Any) -> Actor:
    """An actor on a thread: ``target(*args)``, whose str result or exception is the actor's error."""
    def main(a: Actor) -> None:
        try:
            err = target(*args)
            a.error = err if isinstance(err, str) else None
        except BaseException:
            a.error = traceback.format_exc()

    return Actor(name, lambda a: threading.Thread(target=main, args=(a,), daemon=True, name=name))


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


# ---- how actors run ------------------------------------------------------------------


def _in_interpreters(peer: "Peer", name: str, role: str, queues: dict[str, Any], params: dict[str, Any]) -> Any:
    code = (f"import sys\nsys.path.insert(0, {HERE!r})\nimport peers\n"
            f"peers.actor_main({peer.name!r}, {role!r}, {({k: q.id for k, q in queues.items()})!r}, {params!r})\n")
    started = threading.Event()
    a = _thread(name, _in_subinterpreter, code, name, started)
    started.wait(30)
    return a


def _in_processes(peer: "Peer", name: str, *args: Any) -> Any:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    return Actor(name, lambda a: ctx.Process(target=actor_main, args=(peer.name, *args), daemon=True, name=name))


def _in_threads(peer: "Peer", name: str, *args: Any) -> Any:
    return _thread(name, actor_main, peer.name, *args)


# ---- the peers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A peer: a row of benchmarks/README.md's Peers table, as the harness and its actors use it."""

    name: str
    label: str
    where: str
    start: Callable[..., Any]  # (peer, actor name, role, queues, params) -> an Actor
    make: Callable[[int | None, str | None], Any]  # a queue: (payload bytes, payload), (None, None) for control
    # Actor side: (queues by name, overrides of actor_main's defaults); by default the queues as they came.
    attach: Callable[[dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]] = lambda queues: (queues, {})
    go_margin: float = 0.005  # producers start this far ahead: more than a control message takes
    available: Callable[[], str | None] = lambda: None  # None if usable here, else the reason it is not
    no_shared_buffer: str | None = None  # why SharedBuffer-64MiB is n/a (None: it is not)
    payload_note: Callable[[str], str | None] = lambda payload: None
    put: Callable[[Any, Any], None] = lambda q, x: q.put(x)
    get: Callable[[Any, float], Any] = lambda q, timeout: q.get(timeout=timeout)  # queue.Empty after timeout s
    close: Callable[[Any], None] | None = lambda q: q.close()  # one queue (errors ignored); None: nothing to close
    abort_closes: bool = False  # closing a queue wakes the actors blocked on it (done first on a failure)

    def close_all(self, queues: list[Any]) -> None:
        close = self.close or (lambda q: None)
        for q in queues:
            try:
                close(q)
            except Exception:
                pass


def _shared_64mib() -> Any:
    import xchannels

    return xchannels.SharedBuffer(b"\xab" * (64 * MiB))


def _ring_bytes(payload_bytes: int | None) -> int:
    """faster-fifo's and ProcessChannel's fixed ring: room for a few of the largest items (control: 1 MiB)."""
    return MiB if payload_bytes is None else max(64 * MiB, 3 * payload_bytes + MiB)


def _x_get(q: Any, timeout: float) -> Any:
    import xchannels

    try:
        return q.get(timeout=timeout)
    except xchannels.ChannelEmpty:
        raise _queue.Empty from None


def _x_attach(queues: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    import xchannels

    return {k: xchannels.Channel.from_id(i) for k, i in queues.items()}, {}


def _interp_queues() -> Any:
    if STDLIB_INTERPRETERS:
        from concurrent import interpreters

        return interpreters
    from test.support.interpreters import queues

    return queues


def _iq_available() -> str | None:
    if sys.version_info < (3, 13):
        return "needs CPython 3.13 (test.support.interpreters.queues) or 3.14+ (concurrent.interpreters)"
    try:
        _interp_queues()
    except Exception as e:  # pragma: no cover - depends on the build
        return f"cannot import CPython's interpreter queues: {e}"
    return None


def _iq_make(payload_bytes: int | None, payload: str | None) -> Any:
    if STDLIB_INTERPRETERS:  # 3.14+ pickles what is not shareable by itself
        return _interp_queues().create_queue()
    # 3.13: syncobj=True passes cross-interpreter data, no pickle (the
    # 3.13.0 default pickles); dicts need the pickling queue.
    return _interp_queues().create(syncobj=payload not in NOT_XI_SHAREABLE)


def _iq_note(payload: str) -> str | None:
    if payload not in NOT_XI_SHAREABLE:
        return None
    if STDLIB_INTERPRETERS:
        return "pickled by the queue (not cross-interpreter data)"
    return ("pickled: the data queue is created with syncobj=False (the 3.13 default), "
            "since syncobj=True raises NotShareableError for it")


def _iq_attach(queues: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    # Queue(qid) by id: prepare_main(q=queue) fails on 3.13 until the
    # interpreter has imported the queues module. The SharedBuffer's
    # nearest equivalent: a shared memoryview (must not outlive us).
    m = _interp_queues()
    return {k: m.Queue(i) for k, i in queues.items()}, {"shared_64mib": lambda: memoryview(bytearray(64 * MiB))}


def _mp_close(q: Any) -> None:
    q.cancel_join_thread()
    q.close()


def _ff_available() -> str | None:
    try:
        import faster_fifo  # noqa: F401
    except Exception as e:
        return f"faster-fifo not installed ({e}); pip install faster-fifo"
    return None


def _ff_make(payload_bytes: int | None, payload: str | None) -> Any:
    import faster_fifo

    return faster_fifo.Queue(max_size_bytes=_ring_bytes(payload_bytes))


def _ff_attach(queues: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    ctrl = queues["ctrl"]

    def ctrl_get():  # faster-fifo's default timeout is 10 s; block "forever"
        while True:
            try:
                return ctrl.get(timeout=3600)
            except _queue.Empty:
                pass

    return queues, {"ctrl_get": ctrl_get, "report": lambda t: queues["out"].put(t, timeout=60)}


def _xp_make(payload_bytes: int | None, payload: str | None) -> Any:
    import xchannels

    return xchannels.ProcessChannel() if payload_bytes is None else \
        xchannels.ProcessChannel(capacity=_ring_bytes(payload_bytes))


_IN_INTERPRETERS = "each actor in its own own-GIL sub-interpreter on its own thread"
_IN_PROCESSES = "each actor in its own process (multiprocessing, spawn)"
PEERS: dict[str, Peer] = {p.name: p for p in (
    Peer("xchannels", "xchannels", _IN_INTERPRETERS, _in_interpreters, lambda b, p: __import__("xchannels").Channel(),
         _x_attach, get=_x_get, abort_closes=True),
    Peer("interp-queues", f"interp queues ({sys.version_info.major}.{sys.version_info.minor})", _IN_INTERPRETERS,
         _in_interpreters, _iq_make, _iq_attach, go_margin=0.03,  # control messages wait up to 10 ms (polling)
         available=_iq_available, payload_note=_iq_note, close=None,
         # 3.13-3.15 truncate timeouts with int(); ask for whole seconds.
         get=lambda q, timeout: q.get(timeout=max(1, int(round(timeout))))),
    Peer("mp-queue", "multiprocessing.Queue", _IN_PROCESSES, _in_processes,
         lambda b, p: __import__("multiprocessing").get_context("spawn").Queue(),
         no_shared_buffer="no zero-copy shared buffer: items are pickled (see bytes-64MiB)", close=_mp_close),
    Peer("faster-fifo", "faster-fifo", _IN_PROCESSES, _in_processes, _ff_make, _ff_attach, available=_ff_available,
         no_shared_buffer="no zero-copy shared buffer: items are pickled (see bytes-64MiB)",
         put=lambda q, x: q.put(x, timeout=60)),
    Peer("xchannels-process", "xchannels ProcessChannel",
         _IN_PROCESSES + "; items copied through a shared-memory ring", _in_processes, _xp_make,
         no_shared_buffer="a plain SharedBuffer is copied like bytes (see bytes-64MiB); one made with "
                          "memfd=True goes by descriptor (see Large values between processes)",
         abort_closes=True),  # close() wakes every waiter, in every process
    Peer("queue-thread", "queue.Queue (threads)", "each actor a thread of the main interpreter (one GIL)",
         _in_threads, lambda b, p: _queue.Queue(), close=None),
)}
PEER_NAMES = list(PEERS)


def peer_info() -> dict[str, dict[str, str]]:
    """Static description of every peer (for the JSON and the docs)."""
    return {n: {"label": p.label, "where": p.where} for n, p in PEERS.items()}
