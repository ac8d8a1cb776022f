"""The Qt tests (``tests/ui``), run in a pytest process of their own in a full run.

Full runs crashed in Qt widget teardown (segmentation fault while a closed main window
was deleted: shiboken found a QHBoxLayout wrapper registered whose Python object had
already been freed), in one of two full runs here and in CI, always after the other
suites had run in the same process; never in a process that runs the UI tests alone
(eight runs). The cause is not found; the app itself runs in a process of its own. So a
full run keeps the UI tests apart, and they still must all pass. ``pytest tests/ui``
runs them directly, as before.

Later runs of the UI tests alone crashed the same way, in three runs of eight here
(always in the fixture's flush of deferred deletions after a test, at a different test
each time; collecting garbage after the deletions instead of before made no
difference). A core dump of one such crash: the wrapper is of a layout nested in a box
layout (deleted by ``QBoxLayout::~QBoxLayout``) of a QWidget made in Python (plain or a
subclass), deleted with the main window; nesting layouts locally, and widgets whose
Python object a collection frees while Qt still parents them, were tried alone and do
not crash. Until that is fixed, a run that crashes there is reported and run again, up
to twice; crashing every time, or any failing test, still fails.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import UI_CHILD, UI_DIR

ROOT = UI_DIR.parents[1]
RERUNS = 2  # three crashes in three runs, at the 3 in 8 seen here: about 5 % of CI runs


def _defined_tests() -> int:
    """Test functions defined in tests/ui (parametrised ones count once)."""
    count = 0
    for path in UI_DIR.glob("test_*.py"):
        tree = ast.parse(path.read_text())
        count += sum(isinstance(n, ast.FunctionDef) and n.name.startswith("test_") for n in tree.body)
    return count


def _run_ui_tests(tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, UI_CHILD: "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", "--basetemp", str(tmp), str(UI_DIR)],
        cwd=ROOT, capture_output=True, text=True, timeout=1700, env=env)


@pytest.mark.slow
@pytest.mark.timeout(5200)
def test_ui_tests_pass_in_their_own_process(tmp_path: Path) -> None:
    done = _run_ui_tests(tmp_path / "t0")
    crash = _fatal_error(done.stdout + done.stderr)
    for again in range(1, RERUNS + 1):
        if done.returncode == 0 or "_flush_deletions" not in crash:
            break
        # the known teardown crash (module docstring): reported here, and the suite runs
        # again; crashing every time, or any failing test, fails this test
        print(f"UI run crashed in the fixture's deletion of a closed window; run {again + 1}.\n{crash}")
        done = _run_ui_tests(tmp_path / f"t{again}")
        crash = _fatal_error(done.stdout + done.stderr)
    report = done.stdout[-12000:] + done.stderr[-4000:]
    print(report[-3000:])  # the UI tests' summary (and the timing lines they print) in this run's log
    assert done.returncode == 0, crash or report
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|skipped|failed|errors?)", done.stdout)}
    assert counts.get("failed", 0) == 0 and counts.get("error", 0) == 0 and counts.get("errors", 0) == 0, report
    assert counts.get("passed", 0) + counts.get("skipped", 0) >= _defined_tests() > 0, report


def _fatal_error(output: str) -> str:
    """The interpreter's crash report (faulthandler: the crashing thread's Python stack
    first), without the list of extension modules that follows it."""
    start = output.find("Fatal Python error")
    if start < 0:
        return ""
    end = output.find("Extension modules:", start)
    return output[start:end if end > 0 else start + 8000][:8000]
