"""tests/python/test_docs.py: every Python example in README.md and docs/
runs, each as a script in a fresh interpreter."""

from __future__ import annotations

import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def examples():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for path in files:
        if not path.exists():
            continue
        for n, m in enumerate(FENCE.finditer(path.read_text()), 1):
            yield pytest.param(m.group(1), id=f"{path.relative_to(ROOT)}#{n}")


@pytest.mark.parametrize("code", list(examples()))
def test_example_runs(code, tmp_path):
    if re.search(r"^import .*\b_interpreters\b", code, re.M) and sys.version_info < (3, 13):
        pytest.skip("example uses CPython 3.13's _interpreters module")
    if re.search(r"concurrent(\.futures import InterpreterPool|\.interpreters| import interpreters)", code) and sys.version_info < (3, 14):
        pytest.skip("example uses concurrent.interpreters, new in CPython 3.14")
    if "xchannels.asgi" in code and sys.version_info < (3, 13):
        pytest.skip("xchannels.asgi needs 3.13: 3.12 aborts when asyncio is imported in a sub-interpreter")
    if re.search(r"^import numpy\b", code, re.M) and importlib.util.find_spec("numpy") is None:
        pytest.skip("example needs NumPy, which is not installed here")
    script = tmp_path / "example.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_there_are_examples():
    assert len(list(examples())) >= 5


def test_readme_links_into_docs_exist():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(((?!https?:)[^)#]+)", text)
    assert links
    for link in links:
        assert (ROOT / link).exists(), f"README links to missing {link}"


def test_typing_example_runs():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "python" / "typing_example.py")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_guide_interpreter_example_reports_errors_instead_of_hanging(tmp_path):
    # The guide's "Passing a channel into an interpreter" example checks the
    # sub-interpreter's error on both Pythons: with a typo in the code it
    # runs there, it fails at once instead of waiting in get().
    text = (ROOT / "docs" / "guide.md").read_text()
    section = text[text.index("## Passing a channel into an interpreter") :]
    code = FENCE.search(section).group(1)
    assert "Channel.from_id" in code
    script = tmp_path / "typo.py"
    script.write_text(code.replace("Channel.from_id", "Channel.frm_id"))
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode != 0
    assert "frm_id" in proc.stderr
