"""tests/python/test_state_machine.py: channel operations (put, get, close,
select, from_id, put_many, get_many, and queue.Queue's task_done, join,
shutdown(immediate) with close_after) checked against a model with
hypothesis.

One thread drives everything, so the model is exact: FIFO per channel,
capacity, close-then-drain, select taking the head of a ready channel, the
unfinished-task count, and the closes still pending."""

from __future__ import annotations

import collections

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import xchannels
from xchannels import Channel, ChannelClosed, ChannelEmpty, ChannelFull

values = st.one_of(
    st.integers(),
    st.text(max_size=5),
    st.tuples(st.integers(), st.none()),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.lists(st.booleans(), max_size=2), max_size=3),
    st.frozensets(st.integers(), max_size=3),
    st.sets(st.text(max_size=2), max_size=3),
    st.complex_numbers(allow_nan=False),
)


class ChannelModel(RuleBasedStateMachine):
    @initialize(sizes=st.lists(st.sampled_from([0, 1, 3]), min_size=1, max_size=3))
    def make(self, sizes):
        self.chans = [Channel(s) for s in sizes]
        self.model = [collections.deque() for _ in sizes]
        self.closed = [False] * len(sizes)
        self.unfinished = [0] * len(sizes)
        self.pending = [0] * len(sizes)  # close_after: closes still needed

    indexes = st.integers(min_value=0, max_value=2)

    def pick(self, i):
        i %= len(self.chans)
        return i, self.chans[i], self.model[i]

    @rule(i=indexes, v=values)
    def put_nowait(self, i, v):
        i, ch, q = self.pick(i)
        if self.closed[i]:
            try:
                ch.put_nowait(v)
                raise AssertionError("put on closed channel succeeded")
            except ChannelClosed:
                return
        if ch.maxsize and len(q) >= ch.maxsize:
            try:
                ch.put_nowait(v)
                raise AssertionError("put on full channel succeeded")
            except ChannelFull:
                return
        ch.put_nowait(v)
        q.append(v)
        self.unfinished[i] += 1

    @rule(i=indexes, vs=st.lists(values, max_size=4))
    def put_many(self, i, vs):
        i, ch, q = self.pick(i)
        room = len(vs) if not ch.maxsize else max(0, ch.maxsize - len(q))
        try:
            n = ch.put_many(vs, block=False)
        except ChannelClosed as e:
            assert self.closed[i] or False
            assert e.sent == 0
            return
        except ChannelFull as e:
            assert e.sent == room < len(vs)
            q.extend(vs[:room])
            self.unfinished[i] += room
            return
        assert not self.closed[i] and n == len(vs) <= room
        q.extend(vs)
        self.unfinished[i] += n

    @rule(i=indexes)
    def get_nowait(self, i):
        i, ch, q = self.pick(i)
        try:
            got = ch.get_nowait()
        except ChannelEmpty:
            assert not q and not self.closed[i]
            return
        except ChannelClosed:
            assert not q and self.closed[i]
            return
        want = q.popleft()
        assert got == want and type(got) is type(want)

    @rule(i=indexes, k=st.integers(min_value=1, max_value=4))
    def get_many(self, i, k):
        i, ch, q = self.pick(i)
        try:
            got = ch.get_many(k, block=False)
        except (ChannelEmpty, ChannelClosed) as e:
            assert not q and isinstance(e, ChannelClosed) == self.closed[i]
            return
        want = [q.popleft() for _ in range(min(k, len(q)))]
        assert got == want and [type(g) for g in got] == [type(w) for w in want]

    @rule(i=indexes)
    def close(self, i):
        i, ch, _ = self.pick(i)
        ch.close()
        if self.pending[i] > 0:
            self.pending[i] -= 1
            if self.pending[i] > 0:
                return
        self.closed[i] = True

    @rule(i=indexes, n=st.integers(min_value=1, max_value=3))
    def close_after(self, i, n):
        i, ch, _ = self.pick(i)
        if self.closed[i]:
            try:
                ch.close_after(n)
                raise AssertionError("close_after on a closed channel succeeded")
            except ChannelClosed:
                return
        ch.close_after(n)
        self.pending[i] += n

    @rule(i=indexes)
    def shutdown_immediate(self, i):
        i, ch, q = self.pick(i)
        ch.shutdown(immediate=True)
        # As queue.Queue: one task done per dropped item, never below zero.
        self.unfinished[i] = max(0, self.unfinished[i] - len(q))
        q.clear()
        self.closed[i] = True

    @rule(i=indexes)
    def task_done(self, i):
        i, ch, _ = self.pick(i)
        if self.unfinished[i] == 0:
            try:
                ch.task_done()
                raise AssertionError("task_done with no unfinished task succeeded")
            except ValueError:
                return
        ch.task_done()
        self.unfinished[i] -= 1

    @rule(i=indexes)
    def join_now(self, i):
        i, ch, _ = self.pick(i)
        try:
            ch.join(timeout=0)
        except TimeoutError:
            assert self.unfinished[i] > 0
            return
        assert self.unfinished[i] == 0

    @rule()
    def select(self):
        try:
            ch, got = xchannels.select(self.chans, timeout=0)
        except ChannelEmpty:
            assert not any(self.model) and not all(self.closed)
            return
        except ChannelClosed:
            assert not any(self.model) and all(self.closed)
            return
        i = next(j for j, c in enumerate(self.chans) if c is ch)
        assert self.model[i], "select returned a channel the model says is empty"
        assert got == self.model[i].popleft()

    @rule(i=indexes)
    def reattach(self, i):
        i, ch, _ = self.pick(i)
        self.chans[i] = Channel.from_id(ch.id)
        assert self.chans[i] == ch

    @invariant()
    def sizes_agree(self):
        if hasattr(self, "chans"):
            for i, ch in enumerate(self.chans):
                assert ch.qsize() == len(self.model[i])
                assert ch.closed == ch.is_shutdown == self.closed[i]
                assert ch.unfinished_tasks == self.unfinished[i]
                assert ch.close_pending == self.pending[i]


ChannelModel.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
TestChannelModel = ChannelModel.TestCase
