"""python/xchannels/_check.py: the pre-flight check. Which modules can be
imported in an own-GIL sub-interpreter (where Pool and Worker tasks run)?

Most pure-Python code and most of the standard library can; many C
extensions cannot yet (NumPy, PyO3 packages such as pydantic-core and
orjson, msgspec, pyarrow; from the standard library ``readline``,
``_curses``, ``_tkinter``, and on 3.12 also ``_ctypes``, ``_decimal`` and
``pyexpat``). Users find out here, before a task fails.

``python -m xchannels check MODULE...`` runs :func:`check_modules` for each
module in a child process of its own, so an extension that crashes a
sub-interpreter is reported instead of ending the check.
"""

from __future__ import annotations

import sys
from typing import Iterable, NamedTuple

from xchannels import _interp
from xchannels._xchannels import Channel, ChannelEmpty

__all__ = ["ModuleCheck", "check_modules"]


class ModuleCheck(NamedTuple):
    """The outcome of importing one module in a fresh own-GIL
    sub-interpreter."""

    module: str
    """The module name, as given."""
    ok: bool
    """True if the import succeeded."""
    error: str | None
    """``"Type: message"`` of the root cause (the innermost exception of
    the chain: for NumPy, the extension that refused to load), or None."""
    traceback: str | None
    """The whole traceback text of the failed import, or None."""


# Runs in the fresh interpreter: imports the module and reports through a
# channel (the caller's sys.path, so it finds what the caller finds).
_CHECK_CODE = """\
import sys
sys.path[:] = {path!r}
import importlib
import xchannels
_out = xchannels.Channel.from_id({out})
try:
    importlib.import_module({module!r})
except BaseException as _e:
    import traceback
    from xchannels._check import root_error
    _out.put((False, root_error(_e), "".join(traceback.format_exception(_e))))
else:
    _out.put((True, None, None))
"""


def root_error(exc: BaseException) -> str:
    """root_error(exc) -> str

    ``"Type: first line of message"`` of the innermost exception of
    ``exc``'s chain (for a failed import: the extension that refused to load,
    not the import statement of the app that triggered it)."""
    root = exc
    seen = {id(root)}
    while (nxt := root.__cause__ or root.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        root = nxt
    first = (str(root).strip().splitlines() or [""])[0]
    return type(root).__name__ + (": " + first if first else "")


def _check_one(module: str) -> ModuleCheck:
    out = Channel()
    iid = _interp.create()
    try:
        text = _interp.run(
            iid, _CHECK_CODE.format(path=[p for p in sys.path if isinstance(p, str)], out=out.id, module=module),
            filename="<xchannels check>",
        )
    finally:
        _interp.destroy_quietly(iid)
    try:
        ok, error, tb = out.get_nowait()
    except ChannelEmpty:  # the check itself failed (xchannels not importable there?)
        last = (text or "").strip().splitlines()[-1:] or ["no traceback"]
        return ModuleCheck(module, False, last[0], text)
    return ModuleCheck(module, ok, error, tb)


def check_modules(modules: Iterable[str]) -> list[ModuleCheck]:
    """check_modules(modules) -> list[ModuleCheck]

    Import each module in a fresh own-GIL sub-interpreter of this process
    (one interpreter per module, destroyed afterwards) and report, per
    module, whether it imported and, if not, the exact error. The
    interpreters adopt this interpreter's ``sys.path``.

    An extension module that crashes the process when imported in a
    sub-interpreter (some old releases did) crashes this function too; the
    command line ``python -m xchannels check`` isolates each module in a
    child process and reports such a crash.

    Raises
    ------
    TypeError
        A module name is not a str.
    """
    names = list(modules)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"module names must be str, not {type(name).__name__}")
    return [_check_one(name) for name in names]
