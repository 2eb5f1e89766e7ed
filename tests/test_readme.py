"""Every ``python`` block of the README runs on its own, in an empty folder, as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

_BLOCKS = [(ROOT / "README.md").read_text()[:m.start()].count("\n") + 1
           for m in re.finditer(r"```python\n", (ROOT / "README.md").read_text())]


def _block(line: int) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("```python\n", sum(len(x) + 1 for x in text.split("\n")[:line - 1]))
    return text[start + len("```python\n"):text.index("```", start + 3)]


def test_the_readme_has_python_blocks():
    assert len(_BLOCKS) >= 6


@pytest.mark.parametrize("line", _BLOCKS, ids=lambda n: f"README.md:{n}")
def test_readme_block_runs_in_an_empty_folder(line, tmp_path):
    code = _block(line)
    (tmp_path / "block.py").write_text(code)
    env = dict(os.environ, PYTHONPATH="")          # only the installed package
    res = subprocess.run([sys.executable, "block.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600, env=env)
    assert res.returncode == 0, f"README.md:{line}\n{code}\n{res.stderr[-3000:]}"
