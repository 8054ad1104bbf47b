"""benchmarks/python/cell.py: one (workload, peer) cell, in its own process session; the last stdout
line is ``@@RESULT <json>``. Usage: ``python benchmarks/python/cell.py WORKLOAD PEER [--quick]``."""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import queue
import statistics
import subprocess
import sys
import time
import traceback
from typing import Any

from common import check_text
from peers import PEERS, Peer
from workloads import BY_NAME, Workload

# Seconds one timed round should last, and how many timed rounds.
TARGET_FULL = 0.5
TARGET_QUICK = 0.1
ROUNDS = 3
# Items per producer in the check round of a workload with ``check``.
CHECK_N = 20_000
MiB = 1024 * 1024
# Bounds on the bytes of distinct payloads a producer cycles through (the
# upper one keeps a cell's memory well under 2 GiB).
DISTINCT_MIN, DISTINCT_MAX = 64 * MiB, 768 * MiB


def _size(text: str) -> int | None:
    t = text.strip().upper().removesuffix("B")
    mult = {"K": 1024, "M": MiB, "G": 1024 * MiB}.get(t[-1:], 1)
    t = t[:-1] if mult > 1 else t
    return int(t) * mult if t.isdigit() and int(t) > 0 else None


def llc_bytes() -> int:
    """The L3 cache size: the larger of sysfs's (cpu0's slice) and getconf's, or 32 MiB if neither says."""
    from pathlib import Path

    levels = {Path(d, "level").read_text().strip(): d for d in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")}
    sysfs = _size(Path(levels["3"], "size").read_text()) if "3" in levels else None
    try:
        getconf = _size(subprocess.run(["getconf", "LEVEL3_CACHE_SIZE"], capture_output=True, text=True,
                                       timeout=5).stdout)
    except (OSError, subprocess.SubprocessError):
        getconf = None
    return max(sysfs or 0, getconf or 0) or 32 * MiB


class CellError(Exception):
    pass


class Cell:
    def __init__(self, w: Workload, peer: Peer, quick: bool) -> None:
        self.w, self.peer, self.quick = w, peer, quick
        self.target = TARGET_QUICK if quick else TARGET_FULL
        # A round that takes this long means a hang.
        self.round_timeout = 10.0 if quick else 30.0
        self.actors: list[Any] = []
        self.ctrl: list[Any] = []
        self.queues: list[Any] = []
        self.producers: list[int] = []  # indices into actors and ctrl
        self.consumers: list[int] = []
        # Distinct payloads each producer cycles through (1: one object): max(4 x LLC, 64 MiB) in all,
        # at most DISTINCT_MAX, so that every put reads memory.
        total = min(DISTINCT_MAX, max(4 * llc_bytes(), DISTINCT_MIN)) if w.distinct else 0
        self.ndistinct = max(1, total // w.payload_bytes)

    # -- set-up ---------------------------------------------------------------

    def setup(self) -> None:
        w, peer = self.w, self.peer
        self.out = peer.make(None, None)
        # The queues every actor shares, by the names the roles use.
        if w.kind == "latency":
            qs = {"ping": peer.make(None, None), "pong": peer.make(None, None)}
        else:
            qs = {"data": peer.make(w.payload_bytes, w.payload)}
        self.queues += [self.out, *qs.values()]
        common = {"PAYLOAD": w.payload, "NCONS": w.consumers, "NPROD": w.producers, "TARGET": self.target,
                  "NDISTINCT": self.ndistinct}
        # Consumers first, so they are waiting when producers start.
        for role, count, idx in ((w.consumer_role, w.consumers, self.consumers),
                                 (w.producer_role, w.producers, self.producers)):
            for _ in range(count):
                me = len(self.actors)
                ctrl = peer.make(None, None)
                self.queues.append(ctrl)
                self.ctrl.append(ctrl)
                name = f"{'prod' if idx is self.producers else 'cons'}{me}"
                # IDX: the actor's index among the producers (or consumers).
                params = dict(common, ME=me, IDX=len(idx))
                a = peer.start(peer, name, role, dict(qs, ctrl=ctrl, out=self.out), params)
                self.actors.append(a)
                idx.append(me)

    # -- rounds ---------------------------------------------------------------

    def _wait(self, want: str, k: int, deadline: float) -> dict[int, tuple]:
        got: dict[int, tuple] = {}
        while len(got) < k:
            left = deadline - time.monotonic()
            if left <= 0:
                missing = k - len(got)
                raise TimeoutError(f"timed out waiting for {missing} '{want}' report(s) "
                                   f"after {self.round_timeout:.0f} s")
            try:
                r = self.peer.get(self.out, min(1.0, left))
            except queue.Empty:
                for a in self.actors:
                    if not a.alive():
                        a.join(0)
                        raise CellError(f"actor {a.name} died: {a.error or 'no error text'}")
                continue
            if not isinstance(r, tuple):
                # interp-queues: items sent by an interpreter that has been
                # destroyed since come back as UNBOUND placeholders.
                time.sleep(0.2)
                errs = [f"{a.name}: {a.error}" for a in self.actors if a.error]
                raise CellError(f"got {r!r} (sender's interpreter is gone)"
                                + (f"; {errs[0]}" if errs else ""))
            if r[0] == "error":
                raise CellError(f"actor {r[1]} raised:\n{r[2]}")
            if r[0] != want:
                raise CellError(f"unexpected report {r!r} while waiting for {want}")
            got[r[1]] = r
        return got

    def _go(self, n: int, t_go: float | None) -> dict[int, tuple]:
        """Send a round's n to the consumers, then, once they are ready, n and t_go to the producers (t_go
        None: a few ms ahead; < 0: a check round); every actor's "done" report."""
        deadline = time.monotonic() + self.round_timeout
        for c in self.consumers:
            self.peer.put(self.ctrl[c], (n, min(0.0, t_go or 0.0)))
        self._wait("ready", len(self.consumers), deadline)
        t_go = time.perf_counter() + self.peer.go_margin if t_go is None else t_go
        for p in self.producers:
            self.peer.put(self.ctrl[p], (n, t_go))
        return self._wait("done", len(self.actors), deadline)

    def round(self, n: int) -> dict[str, Any]:
        done = self._go(n, None)
        t0 = min(done[p][2] for p in self.producers)
        t1 = max(done[c][2] for c in self.consumers)
        put = sum(done[p][3] for p in self.producers)
        res: dict[str, Any] = {"n": n, "items": put, "elapsed": t1 - t0}
        if self.w.kind == "latency":
            r = done[self.producers[0]]
            res.update(round_trips=r[3], median=r[4], p99=r[5], elapsed=r[6])
            if (got := done[self.consumers[0]][3]) != r[3]:
                raise CellError(f"ponger echoed {got} items, pinger did {r[3]}")
        elif (got := sum(done[c][3] for c in self.consumers)) != put:
            raise CellError(f"consumers got {got} items, producers put {put}")
        return res

    def check_round(self, n: int) -> dict[str, Any]:
        """One untimed round of distinct ints (workloads.producer, t_go < 0): each must reach exactly one
        consumer; the counts, ``ok`` False if an item was lost, duplicated or not one that was put."""
        done = self._go(n, -1.0)
        total = len(self.producers) * n
        times = [0] * total
        received = foreign = reordered = 0
        for c in self.consumers:
            r = done[c]
            if len(r) != 7 or len(r[4]) != total:
                raise CellError(f"check round: consumer {c} sent {str(r)[:200]}, not its counts")
            received, foreign, reordered = received + r[3], foreign + r[5], reordered + r[6]
            for i, k in enumerate(r[4]):
                times[i] += k
        lost = sum(1 for k in times if k == 0)
        duplicated = sum(k - 1 for k in times if k > 1)
        ok = lost == 0 and duplicated == 0 and foreign == 0 and received == total
        return {"ok": ok, "put": total, "received": received, "lost": lost, "duplicated": duplicated,
                "foreign": foreign, "reordered": reordered}

    def measure(self) -> dict[str, Any]:
        w = self.w
        t_cell = time.monotonic()
        warm: list[dict[str, Any]] = []
        if w.kind == "latency":
            warm.append(self.round(w.n0))
            timed = [self.round(w.n_max) for _ in range(ROUNDS)]
            med = statistics.median(r["median"] for r in timed)
            return {"rounds": timed, "warmup": warm, "rt_median_us": med * 1e6,
                    "rt_p99_us": statistics.median(r["p99"] for r in timed) * 1e6,
                    "round_trips_per_s": 1.0 / med, "round_trips": sum(r["round_trips"] for r in timed),
                    "cell_seconds": time.monotonic() - t_cell}
        # Warm up and calibrate: grow n until a round lasts >= target/2
        # (the first rounds are slow: caches, allocators, lazy imports).
        n = w.n0
        for _ in range(8):
            r = self.round(n)
            warm.append(r)
            el = max(r["elapsed"], 1e-6)
            if el >= self.target / 2 or n >= w.n_max:
                break
            n = min(w.n_max, int(n * min(20.0, max(2.0, self.target / el))))
        n = max(1, min(w.n_max, int(n * self.target / el)))
        timed = []
        for i in range(ROUNDS):
            timed.append(self.round(n))
            # A slow cell (a round far over target: big payloads on a slow
            # peer) is not repeated past ~3 rounds' worth of time.
            if sum(r["elapsed"] for r in timed) > 3 * self.target + 1.0:
                break
        ips = statistics.median(r["items"] / r["elapsed"] for r in timed)
        return {"rounds": timed, "warmup": warm, "n_per_producer": n, "items_per_s": ips,
                "mb_per_s": ips * w.payload_bytes / 1e6, "cell_seconds": time.monotonic() - t_cell}

    # -- tear-down ------------------------------------------------------------

    def teardown(self, failed: bool) -> list[str]:
        notes = []
        if failed and self.peer.abort_closes:
            self.peer.close_all(self.queues)  # wakes actors blocked on them
        for c in self.ctrl:
            try:
                self.peer.put(c, (-1, 0.0))
            except Exception:
                pass
        deadline = time.monotonic() + (5.0 if not failed else 2.0)
        for a in self.actors:
            if not a.join(max(0.05, deadline - time.monotonic())):
                notes.append(f"{a.name} did not stop; killed with the cell")
                a.kill()
        self.peer.close_all(self.queues)
        # Drop the queues now (os._exit skips finalizers; multiprocessing's
        # semaphores would be reported as leaked).
        self.queues, self.ctrl, self.out, self.actors = [], [], None, []
        gc.collect()
        return notes


def run(workload: str, peer_name: str, quick: bool) -> dict[str, Any]:
    w = BY_NAME[workload]
    res: dict[str, Any] = {"workload": workload, "peer": peer_name}
    peer = PEERS[peer_name]
    reason = peer.available() or (peer.no_shared_buffer if w.payload == "SharedBuffer-64MiB" else None)
    if reason:
        return dict(res, status="n/a", reason=reason)
    how = peer.payload_note(w.payload)
    res |= {"how": how} if how else {}
    cell = Cell(w, peer, quick)
    if w.distinct:
        res |= {"distinct_payloads": cell.ndistinct, "distinct_bytes": cell.ndistinct * w.payload_bytes}
    # *-busy workloads: a busy-loop process per core, so that a waiter that would spin parks instead.
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in os.sched_getaffinity(0)] \
        if w.busy else []
    if busy:
        res["busy_processes"] = len(busy)
        time.sleep(0.2)  # let them reach their loop
    failed = False
    try:
        cell.setup()
        res.update(cell.measure())
        if w.check:
            chk = res["check"] = cell.check_round(CHECK_N)
            if not chk["ok"]:
                raise CellError(f"check round: {chk['put']:,} distinct items put, {chk['received']:,} "
                                f"received; {check_text(chk)}")
        res["status"] = "ok"
    except TimeoutError as e:
        failed = True
        res.update(status="timeout", error=str(e))
    except BaseException as e:  # noqa: BLE001 - record and go on
        failed = True
        res.update(status="error", error=f"{type(e).__name__}: {e}"[-4000:])
        if not isinstance(e, CellError):
            res["traceback"] = traceback.format_exc()[-4000:]
    finally:
        notes = cell.teardown(failed)
        for p in busy:
            p.kill()
            p.wait()
        if notes:
            res["teardown"] = notes
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload")
    ap.add_argument("peer")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    res = run(args.workload, args.peer, args.quick)
    sys.stdout.write("@@RESULT " + json.dumps(res) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave at once: a stuck interpreter or feeder thread must not hold the
    # exit (everything this cell started is stopped or killed above).
    os._exit(0)


if __name__ == "__main__":
    main()
