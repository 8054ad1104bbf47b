"""tests/python/conftest.py: shared fixtures."""

from __future__ import annotations

import gc
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import subinterp  # noqa: E402


@pytest.fixture
def no_channel_leak():
    """Fails the test if it leaves channels or shared buffers alive."""
    import xchannels._xchannels as core

    gc.collect()
    channels, buffers = core._live_channels(), core._live_buffers()
    yield
    gc.collect()
    assert core._live_channels() == channels, "channels leaked"
    assert core._live_buffers() == buffers, "shared buffers leaked"


@pytest.fixture
def sub():
    """One own-GIL sub-interpreter, destroyed after the test."""
    with subinterp.Subinterpreter() as interp:
        yield interp
