"""The Ray batch tests (``ray_cases.py``), run in a pytest process of their own.

A Ray driver leaves its native threads (about fifty) and its own SIGSEGV handler in the
process after ``ray.shutdown()``. Sharing the test process with them, the Qt tests that
run later crashed at random places in widget teardown (segmentation fault, roughly one
full run in two), and the crash report was Ray's, not Python's. The app never starts
Ray in the GUI process; the tests now keep it out of the process that runs the UI.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).with_name("ray_cases.py")
ROOT = Path(__file__).resolve().parents[2]


def _test_count() -> int:
    tree = ast.parse(CASES.read_text())
    return sum(isinstance(n, ast.FunctionDef) and n.name.startswith("test_") for n in tree.body)


@pytest.mark.slow
def test_ray_cases_pass_in_their_own_process(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "t"), str(CASES)],
        cwd=ROOT, capture_output=True, text=True, timeout=1500)
    report = done.stdout[-8000:] + done.stderr[-3000:]
    assert done.returncode == 0, report
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|skipped|failed|error)", done.stdout)}
    assert counts.get("failed", 0) == 0 and counts.get("error", 0) == 0, report
    assert counts.get("passed", 0) + counts.get("skipped", 0) == _test_count() > 0, report
    if importlib.util.find_spec("ray") is not None:
        assert counts.get("skipped", 0) == 0, report  # with Ray installed, every case ran
