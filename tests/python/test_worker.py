"""tests/python/test_worker.py: xchannels.Worker (python/xchannels/_worker.py,
_bootstrap.py, _interp.py): one function run in its own own-GIL
sub-interpreter, talking over channels, with the Pool's error rules.

Task functions live in pool_script.py, which the worker imports by name (it
adopts the parent's sys.path, where conftest.py put this folder).
"""

from __future__ import annotations

import os
import subprocess
import sys

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


# CPython 3.13 before gh-136421/gh-136423: _datetime's static types belong to
# whichever interpreter imports it first, so two workers whose lives overlap,
# both importing datetime, corrupt the heap when the second is destroyed
# ("double free or corruption", SIGABRT). xchannels imports _datetime in the
# main interpreter before its first sub-interpreter (_interp.create). Run in a
# child process: without that, the child aborts.
_OVERLAPPING_DATETIME = """
import sys, xchannels
sys.path.insert(0, {here!r})
import pool_script as ps
for _ in range(3):
    a = xchannels.Worker(ps.import_datetime); a.start()
    b = xchannels.Worker(ps.import_datetime); b.start()
    assert a.result(timeout=60) == 2000
    c = xchannels.Worker(ps.import_datetime); c.start()
    assert b.result(timeout=60) == 2000 and c.result(timeout=60) == 2000
print("ok")
"""


@pytest.mark.skipif(sys.version_info < (3, 13), reason="3.12 cannot import _datetime in an own-GIL sub-interpreter")
def test_workers_with_overlapping_lives_import_datetime():
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, "-c", _OVERLAPPING_DATETIME.format(here=here)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "ok"


_RESOLVE_RACE = """
import threading
from xchannels import _bootstrap
_bootstrap._setup(path)
barrier = threading.Barrier(8)
got = []
def hit():
    barrier.wait()
    got.append(_bootstrap.resolve("__main__", "f"))
threads = [threading.Thread(target=hit) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
assert len(got) == 8 and len({id(f) for f in got}) == 1, got
"""


def test_the_script_runs_once_when_threads_resolve_it_at_once(tmp_path):
    # A worker imports the parent's script on the first task that names one
    # of its functions. Executing it lets other threads run (here: a sleep),
    # and 8 threads that found it not yet imported used to execute it 8
    # times: 8 copies of every class and global the script defines.
    counter = tmp_path / "runs"
    script = tmp_path / "script.py"
    script.write_text(
        "import time\n"
        f"with open({str(counter)!r}, 'a') as out:\n"
        "    out.write('x')\n"
        "time.sleep(0.05)\n"
        "def f():\n"
        "    return 1\n"
    )
    import subinterp

    subinterp.run(_RESOLVE_RACE, path=str(script))
    assert counter.read_text() == "x"
