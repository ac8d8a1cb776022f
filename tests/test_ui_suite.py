"""The Qt tests (``tests/ui``), run in a pytest process of their own in a full run.

Full runs used to crash in Qt widget teardown (a segmentation fault in shiboken's
``releaseWrapper`` while the fixture flushed deferred deletions, at a different test each
time; in one CI run a spin box's ``lineEdit()`` came back as a ``QTreeWidgetItem``). The
cause: pyqtgraph's parameter trees keep the Python wrapper of their invisible root item,
which Qt makes and deletes itself and which is not a QObject, so the binding layer was
never told it was gone; the stale registration was handed to the next object made at that
address, and collecting the wrapper removed another object's registration. The panels now
invalidate that wrapper with its tree (``viewer.ui.param_specs.parameter_tree``) and the
``make_main_window`` fixture fails any test after which such a wrapper outlives its window.
The UI tests still run in their own process, as the app does; ``pytest tests/ui`` runs them
directly. A crash fails this test.
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
@pytest.mark.timeout(1800)
def test_ui_tests_pass_in_their_own_process(tmp_path: Path) -> None:
    done = _run_ui_tests(tmp_path / "ui")
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
