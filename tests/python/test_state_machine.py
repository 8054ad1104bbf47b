"""tests/python/test_state_machine.py: channel operations (put, get, close,
select, from_id, put_many, get_many) checked against a model with hypothesis.

One thread drives everything, so the model is exact: FIFO per channel,
capacity, close-then-drain, and select taking the head of a ready channel."""

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
            return
        assert not self.closed[i] and n == len(vs) <= room
        q.extend(vs)

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
        self.closed[i] = True

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
            for ch, q, closed in zip(self.chans, self.model, self.closed):
                assert ch.qsize() == len(q)
                assert ch.closed == closed


ChannelModel.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
TestChannelModel = ChannelModel.TestCase
