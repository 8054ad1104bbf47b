"""python/xchannels/_info.py: what to put in a bug report.

``python -m xchannels info`` prints :func:`info`: the version, how the
extension was built (compiler, build type, Abseil, moodycamel
ConcurrentQueue and pybind11 versions), the Python, whether own-GIL
sub-interpreters can be created here, and where the loaded module lives.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

__all__ = ["info"]


def _own_gil() -> tuple[bool, str | None]:
    from xchannels import _interp

    try:
        iid = _interp.create()
    except BaseException as exc:  # noqa: BLE001 - reported, not raised
        return False, f"{type(exc).__name__}: {exc}"
    try:
        err = _interp.run(iid, "import xchannels._xchannels", filename="<xchannels info>")
    finally:
        _interp.destroy_quietly(iid)
    if err is not None:
        return False, err.strip().splitlines()[-1]
    return True, None


def info() -> dict[str, Any]:
    """info() -> dict

    Facts about this installation, for bug reports: ``version``, ``build``
    (compiler, build type, library versions), ``python``, ``platform``,
    ``own_gil_subinterpreters`` (whether one can be created here and import
    xchannels), ``own_gil_error`` (why not, or None), ``workarounds`` (which
    of xchannels' guards against CPython bugs this Python needs: see
    docs/limitations.md), ``module`` (the path of the loaded extension) and
    ``package`` (the package folder).
    """
    import xchannels
    from xchannels import _profilers, _xchannels

    ok, why = _own_gil()
    return {
        "version": xchannels.__version__,
        "build": dict(getattr(_xchannels, "__build__", {})),
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "platform": f"{platform.system()} {platform.machine()} glibc {platform.libc_ver()[1] or '?'}",
        "own_gil_subinterpreters": ok,
        "own_gil_error": why,
        "workarounds": {
            # sys._current_frames/_current_exceptions: this interpreter's threads only
            "frames_guard": bool(getattr(_xchannels, "_frames_guard", False)),
            # no interpreter created while tracemalloc traces, and the reverse
            "tracemalloc_guard": _profilers.tracemalloc_unsafe(),
        },
        "module": _xchannels.__file__,
        "package": xchannels.__path__[0],
    }


def format_info(facts: dict[str, Any]) -> str:
    lines = []
    for key, value in facts.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines.extend(f"  {k}: {v}" for k, v in value.items())
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)
