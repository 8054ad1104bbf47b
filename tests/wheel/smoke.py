"""tests/wheel/smoke.py: the installed wheel works on its own.

Run by ``make wheel-test`` with the interpreter of a fresh virtual
environment that has only the wheel installed, in a private mount namespace
where every system ``libabsl*.so*`` is hidden (``/dev/null`` bound over it):
what runs here must come from the wheel. Prints one line per check and
exits non-zero on the first failure.
"""

from __future__ import annotations

import os
import sys
import textwrap
import threading

import xchannels
from xchannels import _interp


def square(x: int) -> int:
    return x * x


def main() -> None:
    print("imported", xchannels.__version__, "from", os.path.dirname(xchannels.__file__), flush=True)
    assert "site-packages" in xchannels.__file__, xchannels.__file__

    # a channel round trip, values and a SharedBuffer, in the main interpreter
    ch = xchannels.Channel()
    ch.put({"k": [1, 2.5, "x", (None, b"y")]})
    assert ch.get() == {"k": [1, 2.5, "x", (None, b"y")]}
    buf = xchannels.SharedBuffer(b"wheel")
    ch.put(buf)
    assert ch.get() == buf
    print("channel and SharedBuffer: ok", flush=True)

    # import in two own-GIL sub-interpreters at once, each answering on a channel
    code = textwrap.dedent("""
    import xchannels
    out = xchannels.Channel.from_id({cid})
    out.put(("hello from", {n}, xchannels.SharedBuffer(b"sub")))
    """)
    replies = xchannels.Channel()
    errors: list[str] = []

    def run(n: int) -> None:
        iid = _interp.create()
        try:
            err = _interp.run(iid, code.format(cid=replies.id, n=n))
            if err:
                errors.append(err)
        finally:
            _interp.destroy(iid)

    threads = [threading.Thread(target=run, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    items = [replies.get(timeout=30) for _ in range(2)]
    assert sorted(i[1] for i in items) == [1, 2] and all(i[2] == b"sub" for i in items), items
    print("two own-GIL sub-interpreters: ok", flush=True)

    with xchannels.Pool(2) as pool:
        assert pool.submit(square, 7).result(timeout=60) == 49
        assert list(pool.map(square, range(5))) == [0, 1, 4, 9, 16]
    print("Pool task: ok", flush=True)
    facts = xchannels.info()
    assert facts["own_gil_subinterpreters"], facts
    print("info:", facts["version"], facts["build"], flush=True)
    print("smoke test passed", flush=True)


if __name__ == "__main__":  # Pool workers import this file as __mp_main__
    main()
    sys.exit(0)
