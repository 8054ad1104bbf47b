"""benchmarks/python/peers.py: the transports compared, and where their actors run.

A *peer* is a queue implementation plus the place its actors (producers,
consumers) run:

=================  ==========================================  ===========================
peer               queue                                       actors run in
=================  ==========================================  ===========================
xchannels          ``xchannels.Channel``                       own-GIL sub-interpreters,
                                                               one per actor, each on its
                                                               own thread
interp-queues      CPython's own interpreter queue: 3.14+      own-GIL sub-interpreters,
                   ``concurrent.interpreters.create_queue()``  one per actor, own thread
                   (pickles what is not shareable, dicts);
                   3.13 ``test.support.interpreters.queues``
                   (``syncobj=True``: no pickle; dicts:
                   ``syncobj=False``, pickled)
mp-queue           ``multiprocessing.Queue``                   processes (``spawn``)
faster-fifo        ``faster_fifo.Queue`` (pickles)             processes (``spawn``)
xchannels-process  ``xchannels.ProcessChannel`` (no pickle:    processes (``spawn``)
                   values copied through a shared-memory ring)
queue-thread       ``queue.Queue``                             threads of the one
                                                               interpreter (shared GIL)
=================  ==========================================  ===========================

Every actor runs the same role code (a string, see ``workloads.py``) after a
per-peer *prelude* that binds the names the role code uses:

``Q_<name>``      the attached queues (``.put(x)`` / ``.get()`` block)
``ctrl_get()``    next control message for this actor: ``(n, t_go)``;
                  n < 0 = stop
``wait_until(t)`` sleep, then spin, until ``perf_counter() >= t``
``report(t)``     send a tuple to the orchestrator
``batch_putter(q)`` / ``batch_getter(q)``  callables: native put_many /
                  get_many(100) where the peer has them, else put/get of one
                  100-int tuple per message
``select(qs)``    native select where the peer has one, else a polling loop
``make_payload(kind)``  the value to stream
``make_payloads(kind, k)``  k distinct objects of that kind (bytes kinds
                  only), for producers that cycle through a set bigger
                  than the last-level cache (``NDISTINCT``)
``perf_counter``  ``time.perf_counter`` (CLOCK_MONOTONIC on Linux, so the
                  same clock in every thread, interpreter and process)

Each peer's queues are also used for its own control messages, so a peer is
measured without depending on another one.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as _queue
import sys
import textwrap
import threading
import time
import traceback
from typing import Any

# ---- payloads ---------------------------------------------------------------

KiB = 1024
MiB = 1024 * 1024

# kind -> (python expression building it, size in bytes used for MB/s)
PAYLOADS: dict[str, tuple[str, int]] = {
    "int": ("12345", 8),
    "5-tuple": ('(1, 2.5, "abc", b"xyz", None)', 8 + 8 + 3 + 3 + 0),
    "str-100": ('"x" * 100', 100),
    # 10 keys "k0".."k9" -> 1000..1009 (not the small-int cache); bytes: the
    # keys' and values' payload, 10 x (2 + 8), for MB/s only.
    "dict-10": ('{"k%d" % i: 1000 + i for i in range(10)}', 10 * (2 + 8)),
    "bytes-1KiB": ('b"\\xab" * 1024', KiB),
    "bytes-1MiB": ('b"\\xab" * (1024 * 1024)', MiB),
    "bytes-64MiB": ('b"\\xab" * (64 * 1024 * 1024)', 64 * MiB),
    "SharedBuffer-64MiB": ("SHARED_64MIB", 64 * MiB),
}

# Payloads that CPython 3.13's interpreter queues cannot carry as
# cross-interpreter data (syncobj=True raises NotShareableError): the
# interp-queues peer creates their data queue with syncobj=False, so they are
# pickled (the 3.13 default), as a user of those queues would have to.
NOT_XI_SHAREABLE = {"dict-10"}

# ---- the distinct-payload set (out of the last-level cache) ---------------------

# Bounds on the bytes of distinct payloads a producer cycles through.
DISTINCT_MIN = 64 * MiB
DISTINCT_MAX = 768 * MiB  # keeps a cell's memory well under 2 GiB


def _parse_size(text: str) -> int | None:
    t = text.strip().upper().removesuffix("B")
    mult = 1
    for suf, m in (("K", KiB), ("M", MiB), ("G", 1024 * MiB)):
        if t.endswith(suf):
            t, mult = t[:-1], m
            break
    try:
        v = int(t) * mult
    except ValueError:
        return None
    return v if v > 0 else None


def llc_info() -> dict[str, Any]:
    """The last-level (L3) cache size as the kernel's sysfs (cpu0) and glibc's
    ``getconf LEVEL3_CACHE_SIZE`` report it; ``bytes`` is the larger (they
    can differ: on this AMD EPYC VM sysfs says 8 MiB, the L3 slice cpu0
    shares, and getconf 64 MiB), or 32 MiB if neither says."""
    import glob
    import subprocess

    sysfs = None
    for d in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            if open(os.path.join(d, "level")).read().strip() == "3":
                sysfs = _parse_size(open(os.path.join(d, "size")).read())
        except OSError:
            pass
    getconf = None
    try:
        out = subprocess.run(["getconf", "LEVEL3_CACHE_SIZE"], capture_output=True, text=True, timeout=5).stdout
        getconf = _parse_size(out)
    except Exception:
        pass
    found = [v for v in (sysfs, getconf) if v]
    return {"sysfs_bytes": sysfs, "getconf_bytes": getconf,
            "bytes": max(found) if found else 32 * MiB, "assumed": not found}


def distinct_count(payload_bytes: int, llc_bytes: int | None = None) -> int:
    """How many distinct payloads of this size make max(4 x LLC, 64 MiB)
    (at most ``DISTINCT_MAX``): cycling through them, every put reads its
    source from memory, not from the cache."""
    llc = llc_bytes if llc_bytes is not None else llc_info()["bytes"]
    total = min(DISTINCT_MAX, max(4 * llc, DISTINCT_MIN))
    return max(1, total // payload_bytes)


# ---- role-code helpers shared by every prelude --------------------------------

_COMMON = """\
from time import perf_counter
from functools import partial as _partial
import time as _time

def make_payload(kind):
    exprs = {exprs!r}
    if kind == "SharedBuffer-64MiB":
        return SHARED_64MIB()
    return eval(exprs[kind])

def make_payloads(kind, k):
    # k distinct objects, each its own buffer (the last 8 bytes differ), made
    # before any clock starts.
    x = make_payload(kind)
    if k <= 1:
        return [x]
    if type(x) is not bytes:
        raise TypeError("make_payloads: bytes kinds only, not " + kind)
    head = x[:-8]
    return [head + i.to_bytes(8, "little") for i in range(k)]

def wait_until(t):
    d = t - perf_counter()
    if d > 0.002:
        _time.sleep(d - 0.002)
    while perf_counter() < t:
        pass

def poll_select(qs, _empty=_EMPTY, _sleep=_time.sleep):
    # No select API: round-robin get_nowait, 50 us nap when all are empty.
    while True:
        for q in qs:
            try:
                return q.get_nowait()
            except _empty:
                pass
        _sleep(0.00005)
"""


def _common() -> str:
    return _COMMON.format(exprs={k: v[0] for k, v in PAYLOADS.items()})


# Wraps the role code so any exception reaches the orchestrator as
# ("error", me, traceback) instead of vanishing with the actor. The role runs
# as a function, so its loop variables are fast locals (as in user code)
# rather than module globals: a dict store per item would be harness cost,
# the same for every peer, that dilutes the differences being measured.
_GUARD = """\
def _role():
{body}

try:
    _role()
except BaseException:
    import traceback as _tb
    try:
        report(("error", ME, _tb.format_exc()))
    except BaseException:
        pass
    raise
"""


def guard(role_code: str) -> str:
    return _GUARD.format(body=textwrap.indent(textwrap.dedent(role_code), "    "))


# ---- actors -------------------------------------------------------------------


class Actor:
    """One running actor; ``error`` holds text if it died abnormally."""

    name: str
    error: str | None = None

    def alive(self) -> bool:
        raise NotImplementedError

    def join(self, timeout: float) -> bool:
        raise NotImplementedError

    def kill(self) -> None:
        """Best effort; threads and interpreters cannot be killed."""


class _OnThread(Actor):
    """An actor that lives on a thread of this process (``self._t``)."""

    _t: threading.Thread

    def alive(self) -> bool:
        return self._t.is_alive()

    def join(self, timeout: float) -> bool:
        self._t.join(timeout)
        return not self._t.is_alive()


class ThreadActor(_OnThread):
    """Code exec'd in a thread of this interpreter (globals given as objects)."""

    def __init__(self, name: str, code: str, env: dict[str, Any]) -> None:
        self.name = name
        self.error = None
        self._t = threading.Thread(target=self._main, args=(code, env), daemon=True, name=name)
        self._t.start()

    def _main(self, code: str, env: dict[str, Any]) -> None:
        try:
            exec(compile(code, f"<{self.name}>", "exec"), env)  # noqa: S102 - our own code
        except BaseException:
            self.error = traceback.format_exc()


class SubinterpreterActor(_OnThread):
    """Code run in a fresh own-GIL sub-interpreter on its own thread.

    The thread creates and destroys the interpreter (3.12 requires the
    creating thread to destroy it). Creation happens before ``started`` is
    set, so start-up is outside any timed region.
    """

    def __init__(self, name: str, code: str) -> None:
        self.name = name
        self.error = None
        self.started = threading.Event()
        self._t = threading.Thread(target=self._main, args=(code,), daemon=True, name=name)
        self._t.start()

    def _main(self, code: str) -> None:
        iid = None
        try:
            # The package's one shim over CPython 3.12's and 3.13's private
            # sub-interpreter modules (imported here, not at module level:
            # process actors import this module too).
            from xchannels import _interp

            iid = _interp.create()  # own GIL
            self.started.set()
            # run() returns the remote traceback text, or None.
            err = _interp.run(iid, code, filename=f"<{self.name}>")
            if err is not None:
                self.error = err
        except BaseException:
            self.error = traceback.format_exc()
        finally:
            self.started.set()
            if iid is not None:
                try:
                    _interp.destroy(iid)
                except BaseException:
                    if self.error is None:
                        self.error = traceback.format_exc()


def _process_main(name: str, code: str, env: dict[str, Any]) -> None:
    """Entry point of a process actor (importable, for spawn)."""
    exec(compile(code, f"<{name}>", "exec"), env)  # noqa: S102 - our own code


class ProcessActor(Actor):
    def __init__(self, ctx: Any, name: str, code: str, env: dict[str, Any]) -> None:
        self.name = name
        self.error = None
        self._p = ctx.Process(target=_process_main, args=(name, code, env), daemon=True, name=name)
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
        if self._p.is_alive():
            self._p.terminate()
            self._p.join(2)
        if self._p.is_alive():
            self._p.kill()
            self._p.join(2)


# ---- peers --------------------------------------------------------------------


class Peer:
    name = "?"
    label = "?"
    where = "?"
    batch = "?"  # how the batch workload is done
    select_how = "?"  # how the select workload is done
    # Producers are told to start this far ahead: more than the time a
    # control message takes to arrive.
    go_margin = 0.005

    def available(self) -> str | None:
        """None if usable here, else the reason it is not."""
        return None

    def unsupported(self, workload: str, payload: str | None) -> str | None:
        """None if this peer can run the cell, else why not ('n/a')."""
        return None

    def make_queue(self, payload_bytes: int | None = None, payload: str | None = None) -> Any:
        """A queue; payload_bytes and payload (a ``PAYLOADS`` kind) are
        given for the data queues, None for the control ones."""
        raise NotImplementedError

    def payload_note(self, payload: str) -> str | None:
        """How this peer carries the payload, when it is not its usual way."""
        return None

    def main_put(self, q: Any, x: Any) -> None:
        q.put(x)

    def main_get(self, q: Any, timeout: float) -> Any:
        """Get from q; raise queue.Empty after timeout seconds."""
        return q.get(timeout=timeout)

    def start(self, name: str, role: str, queues: dict[str, Any], params: dict[str, Any]) -> Actor:
        raise NotImplementedError

    def abort(self, queues: list[Any]) -> None:
        """Wake actors blocked on these queues, if the peer can."""

    def close(self, queues: list[Any]) -> None:
        """Release resources after the cell."""


def _params_code(params: dict[str, Any]) -> str:
    return "".join(f"{k} = {v!r}\n" for k, v in params.items())


class XChannelsPeer(Peer):
    name = "xchannels"
    label = "xchannels"
    where = "each actor in its own own-GIL sub-interpreter on its own thread"
    batch = "put_many / get_many(100)"
    select_how = "xchannels.select"

    def __init__(self) -> None:
        import xchannels

        self.mod = xchannels

    def make_queue(self, payload_bytes: int | None = None, payload: str | None = None) -> Any:
        return self.mod.Channel()

    def main_get(self, q: Any, timeout: float) -> Any:
        try:
            return q.get(timeout=timeout)
        except self.mod.ChannelEmpty:
            raise _queue.Empty from None

    def start(self, name, role, queues, params):
        lines = ["import xchannels", "_EMPTY = xchannels.ChannelEmpty"]
        for qname, ch in queues.items():
            lines.append(f"Q_{qname} = xchannels.Channel.from_id({ch.id!r})")
        code = "\n".join(lines) + "\n" + _params_code(params) + _common() + textwrap.dedent("""\
            ctrl_get = Q_ctrl.get
            report = Q_out.put
            def SHARED_64MIB():
                return xchannels.SharedBuffer(b"\\xab" * (64 * 1024 * 1024))
            def batch_putter(q):
                return q.put_many
            def batch_getter(q):
                return _partial(q.get_many, 100)
            def select(qs, _sel=xchannels.select):
                return _sel(qs)[1]
            NATIVE_BATCH = True
            """) + guard(role)
        a = SubinterpreterActor(name, code)
        a.started.wait(30)
        return a

    def abort(self, queues):
        for q in queues:
            try:
                q.close()
            except Exception:
                pass

    close = abort


# CPython's own interpreter queues: public from 3.14 (concurrent.interpreters,
# PEP 734), in the test package on 3.13.
STDLIB_INTERPRETERS = sys.version_info >= (3, 14)


class InterpQueuesPeer(Peer):
    name = "interp-queues"
    label = f"interp queues ({sys.version_info.major}.{sys.version_info.minor})"
    where = "each actor in its own own-GIL sub-interpreter on its own thread"
    batch = "emulated: one 100-int tuple per message (no batch API)"
    select_how = "emulated: round-robin get_nowait + 50 us sleep (no select API)"
    go_margin = 0.03  # control messages wait up to 10 ms (polling get)

    def available(self):
        if sys.version_info < (3, 13):
            return "needs CPython 3.13 (test.support.interpreters.queues) or 3.14+ (concurrent.interpreters)"
        try:
            if STDLIB_INTERPRETERS:
                from concurrent import interpreters  # noqa: F401
            else:
                from test.support.interpreters import queues  # noqa: F401
        except Exception as e:  # pragma: no cover - depends on the build
            return f"cannot import CPython's interpreter queues: {e}"
        return None

    def make_queue(self, payload_bytes: int | None = None, payload: str | None = None) -> Any:
        if STDLIB_INTERPRETERS:
            # 3.14+: items that are not cross-interpreter data (dicts) are
            # pickled by the queue itself; there is no syncobj any more.
            from concurrent import interpreters

            return interpreters.create_queue()
        from test.support.interpreters import queues

        # syncobj=True: items travel as cross-interpreter data, not pickled
        # (the 3.13.0 default pickles every item). Payloads that are not
        # shareable (dicts) need the pickling queue; the actors' Queue(qid)
        # picks the format up from the queue.
        return queues.create(syncobj=payload not in NOT_XI_SHAREABLE)

    def payload_note(self, payload):
        if payload in NOT_XI_SHAREABLE:
            if STDLIB_INTERPRETERS:
                return "pickled by the queue (not cross-interpreter data)"
            return ("pickled: the data queue is created with syncobj=False (the 3.13 default), "
                    "since syncobj=True raises NotShareableError for it")
        return None

    def main_get(self, q: Any, timeout: float) -> Any:
        # 3.13-3.15 truncate timeouts with int(); ask for whole seconds.
        return q.get(timeout=max(1, int(round(timeout))))

    def start(self, name, role, queues, params):
        # The queue id goes in by code string: prepare_main(q=queue) fails
        # on 3.13 until the sub-interpreter has imported the queues module.
        if STDLIB_INTERPRETERS:
            lines = ["from concurrent import interpreters as _queues"]
        else:
            lines = ["from test.support.interpreters import queues as _queues"]
        lines.append("_EMPTY = _queues.QueueEmpty")
        for qname, q in queues.items():
            lines.append(f"Q_{qname} = _queues.Queue({q.id!r})")
        code = "\n".join(lines) + "\n" + _params_code(params) + _common() + textwrap.dedent("""\
            ctrl_get = Q_ctrl.get
            report = Q_out.put
            def SHARED_64MIB():
                # nearest equivalent of a SharedBuffer: a memoryview, shared
                # zero-copy (it must not outlive this interpreter).
                return memoryview(bytearray(64 * 1024 * 1024))
            def batch_putter(q):
                return q.put
            def batch_getter(q):
                return q.get
            select = poll_select
            NATIVE_BATCH = False
            """) + guard(role)
        a = SubinterpreterActor(name, code)
        a.started.wait(30)
        return a


class _ProcessPeer(Peer):
    where = "each actor in its own process (multiprocessing, spawn)"

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("spawn")

    def unsupported(self, workload, payload):
        if payload == "SharedBuffer-64MiB":
            return "no zero-copy shared buffer: items are pickled (see bytes-64MiB)"
        return None

    _PROC_PRELUDE = ""

    def start(self, name, role, queues, params):
        env = {f"Q_{k}": v for k, v in queues.items()}
        env["__name__"] = "__actor__"
        code = (
            "import queue as _q\n_EMPTY = _q.Empty\n"
            + _params_code(params)
            + _common()
            + textwrap.dedent(self._PROC_PRELUDE)
            + guard(role)
        )
        return ProcessActor(self.ctx, name, code, env)


class MPQueuePeer(_ProcessPeer):
    name = "mp-queue"
    label = "multiprocessing.Queue"
    batch = "emulated: one 100-int tuple per message (no batch API)"
    select_how = "emulated: round-robin get_nowait + 50 us sleep (no select API)"

    def make_queue(self, payload_bytes: int | None = None, payload: str | None = None) -> Any:
        return self.ctx.Queue()

    _PROC_PRELUDE = """\
        ctrl_get = Q_ctrl.get
        report = Q_out.put
        def batch_putter(q):
            return q.put
        def batch_getter(q):
            return q.get
        select = poll_select
        NATIVE_BATCH = False
        """

    def close(self, queues):
        for q in queues:
            try:
                q.cancel_join_thread()
                q.close()
            except Exception:
                pass


class FasterFifoPeer(_ProcessPeer):
    name = "faster-fifo"
    label = "faster-fifo"
    batch = "put_many / get_many(max_messages_to_get=100)"
    select_how = "emulated: round-robin get_nowait + 50 us sleep (no select API)"

    def available(self):
        try:
            import faster_fifo  # noqa: F401
        except Exception as e:
            return f"faster-fifo not installed ({e}); pip install faster-fifo"
        return None

    def make_queue(self, payload_bytes: int | None = None, payload: str | None = None) -> Any:
        import faster_fifo

        # A circular buffer of fixed size in shared memory; room for a few
        # pickled items of the largest payload.
        if payload_bytes is None:  # control queue
            size = MiB
        else:
            size = max(64 * MiB, 3 * payload_bytes + MiB)
        return faster_fifo.Queue(max_size_bytes=size)

    def main_put(self, q, x):
        q.put(x, timeout=60)

    def main_get(self, q, timeout):
        return q.get(timeout=timeout)

    # faster-fifo's default timeout is 10 s; block "forever" instead.
    _PROC_PRELUDE = """\
        import faster_fifo
        _EMPTY = _q.Empty
        def _forever_get(q):
            def get():
                while True:
                    try:
                        return q.get(timeout=3600)
                    except _q.Empty:
                        pass
            return get
        ctrl_get = _forever_get(Q_ctrl)
        report = lambda t: Q_out.put(t, timeout=60)
        def batch_putter(q):
            return _partial(q.put_many, timeout=60)
        def batch_getter(q):
            return _partial(q.get_many, timeout=3600, max_messages_to_get=100)
        select = poll_select
        NATIVE_BATCH = True
        """

    def close(self, queues):
        for q in queues:
            try:
                q.close()
            except Exception:
                pass


class XChannelsProcessPeer(_ProcessPeer):
    """``xchannels.ProcessChannel`` with processes as actors, like the two
    peers above: each item is encoded (the flat form ``Channel`` uses, no
    pickle) into a ring in a shared-memory segment (a memfd) that every
    process maps; the channel reaches the spawned actors as a duplicated file
    descriptor (pickled by ``multiprocessing``'s own machinery)."""

    name = "xchannels-process"
    label = "xchannels ProcessChannel"
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

    def make_queue(self, payload_bytes: int | None = None, payload: str | None = None) -> Any:
        # The ring is fixed at creation and an item larger than it raises
        # ValueError: the data queues get room for a few of the largest items
        # (faster-fifo's sizes); the control queues the default 1 MiB (the
        # largest report, mpmc-2x2's check round, is a few tens of KiB).
        if payload_bytes is None:
            return self.mod.ProcessChannel()
        return self.mod.ProcessChannel(capacity=max(64 * MiB, 3 * payload_bytes + MiB))

    # xchannels.ChannelEmpty is a queue.Empty: the harness's main_get works
    # unchanged.
    _PROC_PRELUDE = """\
        import xchannels
        ctrl_get = Q_ctrl.get
        report = Q_out.put
        def batch_putter(q):
            return q.put
        def batch_getter(q):
            return q.get
        def select(qs, _sel=xchannels.select):
            return _sel(qs)[1]
        NATIVE_BATCH = False
        """

    def abort(self, queues):
        # close() wakes every waiter, in every process.
        for q in queues:
            try:
                q.close()
            except Exception:
                pass

    close = abort


class ThreadQueuePeer(Peer):
    name = "queue-thread"
    label = "queue.Queue (threads)"
    where = "each actor a thread of the main interpreter (one GIL)"
    batch = "emulated: one 100-int tuple per message (no batch API)"
    select_how = "emulated: round-robin get_nowait + 50 us sleep (no select API)"

    def make_queue(self, payload_bytes: int | None = None, payload: str | None = None) -> Any:
        return _queue.Queue()

    def start(self, name, role, queues, params):
        env: dict[str, Any] = {f"Q_{k}": v for k, v in queues.items()}
        env["__name__"] = "__actor__"
        env["_EMPTY"] = _queue.Empty
        code = (
            _params_code(params)
            + _common()
            + textwrap.dedent("""\
            ctrl_get = Q_ctrl.get
            report = Q_out.put
            def SHARED_64MIB():
                import xchannels
                return xchannels.SharedBuffer(b"\\xab" * (64 * 1024 * 1024))
            def batch_putter(q):
                return q.put
            def batch_getter(q):
                return q.get
            select = poll_select
            NATIVE_BATCH = False
            """)
            + guard(role)
        )
        return ThreadActor(name, code, env)


PEER_CLASSES = [XChannelsPeer, InterpQueuesPeer, MPQueuePeer, FasterFifoPeer, XChannelsProcessPeer, ThreadQueuePeer]
PEER_NAMES = [c.name for c in PEER_CLASSES]
BASELINE = "mp-queue"


def make_peer(name: str) -> Peer:
    for c in PEER_CLASSES:
        if c.name == name:
            return c()
    raise KeyError(name)


def peer_info() -> dict[str, dict[str, str]]:
    """Static description of every peer (for the JSON and the docs)."""
    return {
        c.name: {
            "label": c.label,
            "where": c.where if c is not _ProcessPeer else "",
            "batch": c.batch,
            "select": c.select_how,
        }
        for c in PEER_CLASSES
    }
