"""Test configuration shared by every test module.

Qt runs offscreen here so nobody has to set QT_QPA_PLATFORM by hand; torch uses the
machine's cores without oversubscribing.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
os.environ.setdefault("PYTEST_QT_API", "pyside6")

import tempfile

# Recent-files lists and other settings go to a throwaway folder, never the user's ~/.config.
os.environ.setdefault("LRP_VIEWER_CONFIG_DIR", tempfile.mkdtemp(prefix="lrp-viewer-test-config-"))

from pathlib import Path  # noqa: E402

UI_DIR = Path(__file__).resolve().parent / "ui"
UI_CHILD = "LRP_VIEWER_UI_CHILD"


def _inside_ui(path: Path) -> bool:
    return path == UI_DIR or UI_DIR in path.parents


def _broad_run(config) -> bool:  # noqa: ANN001 - pytest's Config
    """The run covers more than tests/ui (e.g. plain ``pytest``, whose argument is tests/)."""
    for arg in config.args:
        path = Path(arg.split("::")[0])
        path = (path if path.is_absolute() else Path(str(config.invocation_params.dir)) / path).resolve()
        if not _inside_ui(path):
            return True
    return False


def pytest_ignore_collect(collection_path, config):  # noqa: ANN001, ANN201 - pytest hook
    """In a run wider than tests/ui the UI tests are left to ``tests/test_ui_suite.py``,
    which runs them in a pytest process of their own (see there why)."""
    if os.environ.get(UI_CHILD) == "1":
        return None
    if _inside_ui(Path(collection_path).resolve()) and _broad_run(config):
        return True
    return None
