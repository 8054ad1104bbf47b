"""tests/python/test_worker.py: xchannels.Worker (python/xchannels/_worker.py,
_bootstrap.py, _interp.py): one function run in its own own-GIL
sub-interpreter, talking over channels, with the Pool's error rules.

Task functions live in pool_script.py, which the worker imports by name (it
adopts the parent's sys.path, where conftest.py put this folder).
"""

from __future__ import annotations

import pytest

import pool_script as ps
import xchannels


def test_worker_serves_requests_over_channels_and_stops_on_close():
    requests, replies = xchannels.Channel(), xchannels.Channel()
    w = xchannels.Worker(target=ps.serve, args=(requests, replies), kwargs={"offset": 100})
    assert not w.is_alive()
    w.start()
    assert w.is_alive()
    for i in range(50):
        requests.put(i)
        assert replies.get(timeout=30) == (i, i + 100)
    requests.close()
    w.join(timeout=30)
    assert not w.is_alive()
    assert w.result(timeout=0) == 50


def test_worker_exception_like_the_pool():
    w = xchannels.Worker(target=ps.fail_custom, args=(5,))
    w.start()
    with pytest.raises(ps.CustomError) as info:
        w.result(timeout=30)
    assert info.value.code == 5
    assert "fail_custom" in ps.remote_tb(info.value)
    w.join(timeout=30)
    assert not w.is_alive()


def test_worker_result_timeout_and_start_once():
    gate = xchannels.Channel()
    w = xchannels.Worker(target=ps.wait_on, args=(gate.id, 30.0))
    with pytest.raises(RuntimeError):
        w.result()
    w.start()
    with pytest.raises(RuntimeError):
        w.start()
    with pytest.raises(TimeoutError):
        w.result(timeout=0.05)
    w.join(timeout=0.05)
    assert w.is_alive()
    gate.close()
    assert w.result(timeout=30) == "closed"


def test_worker_unshareable_args_and_result():
    with pytest.raises(xchannels.NotShareableError, match="argument 0"):
        xchannels.Worker(target=ps.echo, args=(object(),))
    w = xchannels.Worker(target=ps.return_object)
    w.start()
    with pytest.raises(xchannels.NotShareableError):
        w.result(timeout=30)


def test_worker_system_exit_is_its_exception():
    w = xchannels.Worker(target=ps.system_exit, args=(4,))
    w.start()
    with pytest.raises(SystemExit):
        w.result(timeout=30)
