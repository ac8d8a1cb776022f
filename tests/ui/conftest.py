"""Fixtures for UI tests: the real main window on a real session, torn down strictly.

``make_main_window`` is the project's version of napari's ``make_napari_viewer``: it
builds the real MainWindow on a real Session, and after the test closes both and fails
if any top-level widget created during the test is still alive (a dialog left open, a
window never deleted) or if the session's worker thread is still running.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import shiboken6
from PySide6 import QtCore, QtWidgets


@pytest.fixture(autouse=True)
def config_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config folder, so the user's recent files are never touched."""
    d = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("LRP_VIEWER_CONFIG_DIR", str(d))
    return d


def _flush_deletions() -> None:
    app = QtWidgets.QApplication.instance()
    gc.collect()  # parentless pyqtgraph menus die with their Python owners
    for _ in range(3):
        app.processEvents()
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)


def _qt_owned_items() -> dict[int, str]:
    """Registered wrappers of objects Qt made and owns that are not QObjects (a tree's
    root item, a scene's items): shiboken is not told when Qt deletes those, so one that
    outlives its owner keeps a deleted address in the wrapper map, and an object later made
    at that address is handed the old wrapper (the crash in ``tests/test_ui_suite.py``)."""
    found = {}
    for o in shiboken6.getAllValidWrappers():
        if isinstance(o, (QtCore.QObject, QtCore.QMetaObject)):
            continue
        if not shiboken6.ownedByPython(o) and not shiboken6.createdByPython(o):
            found[id(o)] = type(o).__name__
    return found


def _alive(w: QtWidgets.QWidget) -> bool:
    try:
        w.objectName()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def make_main_window(qapp: QtWidgets.QApplication) -> Callable[..., Any]:
    from viewer.session.session import Session
    from viewer.ui.main_window import MainWindow

    _flush_deletions()
    before = {id(w) for w in QtWidgets.QApplication.topLevelWidgets()}
    items_before = _qt_owned_items()
    made: list[tuple[Any, Any]] = []

    def factory(show: bool = True, **session_kwargs: Any) -> Any:
        session = Session(**session_kwargs)
        window = MainWindow(session)
        window.files.ask_series = False
        window.resize(1280, 860)
        if show:
            window.show()
        made.append((window, session))
        return window

    yield factory

    threads = []
    windows = [w for w, _s in made]
    for window, session in made:
        window.close()
        session.close()
        threads.append(getattr(session.runner, "_thread", None))
        window.deleteLater()
    made.clear()
    # dialogs the test left open are leaks too, but close them so later tests start clean
    _flush_deletions()
    leaked = [w for w in QtWidgets.QApplication.topLevelWidgets() if id(w) not in before]
    assert all(not _alive(w) for w in windows), "The main window survived close + deleteLater"
    names = [f"{type(w).__name__}({w.objectName()!r}, visible={w.isVisible()})" for w in leaked]
    for w in leaked:
        w.close()
        w.deleteLater()
    _flush_deletions()
    assert not leaked, f"Leaked top-level widgets: {names}"
    stale = sorted(name for key, name in _qt_owned_items().items() if key not in items_before)
    assert not stale, f"Wrappers of Qt-owned items outlive their deleted window: {stale}"
    alive = [t for t in threads if t is not None and t.is_alive()]
    assert not alive, f"Session worker threads still running: {alive}"


def wait_final(qtbot: Any, window: Any, panel: int = 0, timeout: float = 60.0) -> Any:
    """Wait until ``panel`` shows a final (non-preview) result that is also drawn."""
    s = window.session

    def done() -> bool:
        r = s.result(panel)
        return r is not None and not r.preview and not s.is_busy(panel)

    qtbot.waitUntil(done, timeout=int(timeout * 1000))
    settle(qtbot)
    return s.result(panel)


def settle(qtbot: Any, ms: int = 30) -> None:
    """Let queued signals reach the widgets."""
    qtbot.wait(ms)
    QtWidgets.QApplication.instance().processEvents()


def direct_map(window: Any, method: str = "lrp", **params: Any) -> np.ndarray:
    """The engine's map for the open scan/model, computed here without the session."""
    from viewer.explain import explain

    s = window.session
    x, to_scan = s.model.prepare(s.scan)
    r = explain(s.model.module, x, method=method, target=s.target, **params)
    return np.asarray(to_scan(r.relevance), dtype=np.float32)


def wait_for(qtbot: Any, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    qtbot.waitUntil(predicate, timeout=int(1000 * (deadline - time.monotonic())))
