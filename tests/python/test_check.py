"""tests/python/test_check.py: the pre-flight check (which modules import in
an own-GIL sub-interpreter) and the hint a task's failed import carries."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

import pool_script as ps
import xchannels
from xchannels._check import ModuleCheck, check_modules

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(xchannels.__file__)))

# readline is an extension of the standard library that refuses own-GIL
# sub-interpreters on 3.12 and 3.13; the Pythons here are built with it.
needs_readline = pytest.mark.skipif(
    importlib.util.find_spec("readline") is None, reason="this Python has no readline module"
)


def _env(extra: str = "") -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE, HERE, extra, env.get("PYTHONPATH", "")])
    return env


def _cli(*args: str, extra_path: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xchannels", *args], env=_env(extra_path),
        capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """A folder of small modules on sys.path: one fine, one that raises."""
    (tmp_path / "fine_mod.py").write_text("VALUE = 1\n")
    (tmp_path / "raising_mod.py").write_text("raise ValueError('boom at import')\n")
    (tmp_path / "aborting_mod.py").write_text("import os\nos.abort()\n")
    (tmp_path / "needs_readline.py").write_text("import readline\ndef f():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@needs_readline
def test_check_modules_reports_each_module(modules):
    results = check_modules(["json", "fine_mod", "readline", "raising_mod", "no_such_module_x"])
    assert [r.module for r in results] == ["json", "fine_mod", "readline", "raising_mod", "no_such_module_x"]
    assert [r.ok for r in results] == [True, True, False, False, False]
    assert results[0] == ModuleCheck("json", True, None, None)
    assert results[2].error == "ImportError: module readline does not support loading in subinterpreters"
    assert results[3].error == "ValueError: boom at import"
    assert "raising_mod.py" in results[3].traceback
    assert results[4].error == "ModuleNotFoundError: No module named 'no_such_module_x'"


def test_check_modules_refuses_non_str():
    with pytest.raises(TypeError, match="must be str"):
        check_modules([b"json"])  # type: ignore[list-item]


@needs_readline
def test_check_command_exit_status_and_output(modules):
    out = _cli("check", "json", "readline", "fine_mod", extra_path=str(modules))
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["json", "ok"]
    assert lines[1].startswith("readline") and "FAILS: ImportError: module readline does not support" in lines[1]
    assert lines[2].split() == ["fine_mod", "ok"]
    assert "1 of 3 module(s) cannot be imported" in out.stderr
    ok = _cli("check", "json", "fine_mod", extra_path=str(modules))
    assert ok.returncode == 0 and "FAILS" not in ok.stdout


def test_check_command_json_and_a_crashing_module(modules):
    out = _cli("check", "--json", "aborting_mod", "fine_mod", extra_path=str(modules))
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert data[0]["module"] == "aborting_mod" and not data[0]["ok"]
    assert data[0]["error"] == "importing it crashed the process (SIGABRT)"
    assert data[1] == {"module": "fine_mod", "ok": True, "error": None, "traceback": None}


def test_check_command_usage_errors():
    out = _cli("check")
    assert out.returncode == 2 and "MODULE" in out.stderr
    out = _cli("frobnicate")
    assert out.returncode == 2


@needs_readline
def test_task_whose_import_fails_names_the_module_and_the_check(modules):
    with xchannels.Pool(1) as pool:
        # an import inside the task
        err = pool.submit(ps.import_module, "readline").exception(timeout=60)
        assert isinstance(err, ImportError)
        assert any("importing 'readline' failed in a worker interpreter" in n for n in err.__notes__)
        assert any("python -m xchannels check readline" in n for n in err.__notes__)
        # the task's own module cannot be imported there
        import needs_readline

        err = pool.submit(needs_readline.f).exception(timeout=60)
        assert isinstance(err, ImportError)
        assert any("python -m xchannels check readline" in n for n in err.__notes__)
        # the pool stays usable
        assert pool.submit(ps.square, 4).result(timeout=60) == 16


# ---- python -m xchannels info, and the package's metadata ----------------------------


def test_info_command_and_function():
    facts = xchannels.info()
    assert facts["version"] == xchannels.__version__
    assert facts["own_gil_subinterpreters"] is True and facts["own_gil_error"] is None
    assert os.path.samefile(facts["module"], xchannels._xchannels.__file__)
    build = facts["build"]
    assert build["compiler"].startswith(("gcc", "clang")) and build["build_type"]
    assert build["abseil"] != "unknown" and build["concurrentqueue"] != "unknown"
    assert build["pybind11"].startswith("3.")
    out = _cli("info")
    assert out.returncode == 0, out.stderr
    assert f"version: {xchannels.__version__}" in out.stdout and "own_gil_subinterpreters: True" in out.stdout
    data = json.loads(_cli("info", "--json").stdout)
    assert data["version"] == xchannels.__version__ and data["build"]["abseil"] == build["abseil"]


def test_version_is_written_once():
    import importlib.metadata
    import re

    root = os.path.dirname(os.path.dirname(HERE))
    with open(os.path.join(root, "pyproject.toml")) as f:
        text = f.read()
    assert 'dynamic = ["version"]' in text and not re.search(r"^version\s*=", text, re.M)
    assert importlib.metadata.version("xchannels") == xchannels.__version__


def test_a_source_build_without_the_debian_packages_names_them(tmp_path):
    # CMake's own message would be a page of search paths; ours names the
    # packages. Abseil is made unfindable for this configure only.
    cmake = os.path.join(os.path.dirname(sys.executable), "cmake")
    if not os.path.exists(cmake):
        pytest.skip("no cmake next to this Python (make test installs it into the venvs)")
    root = os.path.dirname(os.path.dirname(HERE))
    out = subprocess.run(
        [cmake, "-S", root, "-B", str(tmp_path / "b"), "-DXCHANNELS_TESTS=OFF",
         "-DCMAKE_DISABLE_FIND_PACKAGE_absl=ON"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode != 0
    text = " ".join(out.stderr.split())  # CMake wraps its messages
    assert "xchannels needs these Debian packages to build from source: libabsl-dev (Abseil)." in text
    assert "sudo apt-get install libabsl-dev libconcurrentqueue-dev" in text
