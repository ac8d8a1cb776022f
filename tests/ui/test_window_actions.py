"""Menus, shortcuts, drag-and-drop, recent files and dialogs of the real main window."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from tests.ui.conftest import settle
from viewer.models.demo import demo_paths
from viewer.ui.dialogs import SeriesDialog


def drop(window, paths) -> None:
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QtCore.QPointF(window.width() / 2, window.height() / 2)
    enter = QtGui.QDragEnterEvent(pos.toPoint(), QtCore.Qt.DropAction.CopyAction, mime,
                                  QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    ev = QtGui.QDropEvent(pos, QtCore.Qt.DropAction.CopyAction, mime, QtCore.Qt.MouseButton.LeftButton,
                          QtCore.Qt.KeyboardModifier.NoModifier)
    window.dropEvent(ev)


@pytest.mark.filterwarnings("ignore:Function.*QDragEnterEvent:DeprecationWarning")
def test_dropping_scan_and_mask_opens_both(make_main_window, qtbot):
    w = make_main_window()
    paths = demo_paths()
    drop(w, [paths.mask, paths.scan])  # order does not matter: the scan opens first
    settle(qtbot)
    s = w.session
    assert s.scan is not None and s.mask is not None
    assert w.windowTitle() == f"lrp-viewer — {paths.scan.name}"
    k = s.cursor.ijk[2]
    np.testing.assert_array_equal(w.views.views["axial"].scan_item.image, s.scan.data[:, :, k])
    # the mask outline is drawn on the slices that cut the mask
    ijk = np.argwhere(s.mask)[len(np.argwhere(s.mask)) // 2]
    s.set_cursor(tuple(int(v) for v in ijk))
    settle(qtbot)
    assert w.views.views["axial"].mask_item.image.sum() > 0


def test_recent_files_menu_lists_opened_scan_and_reopens_it(make_main_window, qtbot):
    w = make_main_window()
    paths = demo_paths()
    assert w.files.open_scan(str(paths.scan))
    settle(qtbot)
    texts = [a.text() for a in w.recent_menu.actions()]
    assert any(str(paths.scan) in t for t in texts)
    first = next(a for a in w.recent_menu.actions() if str(paths.scan) in a.text())
    first.trigger()
    settle(qtbot)
    assert w.session.scan_path is not None and str(paths.scan) in str(w.session.scan_path)


def test_shortcuts_dialog_lists_the_keys(make_main_window, qtbot):
    w = make_main_window()
    dlg = w.show_shortcuts()
    keys = {dlg.table.item(r, 0).text() for r in range(dlg.table.rowCount())}
    for key in ("O", "C", "F11", "Esc", "Home", "Right drag", "Ctrl + wheel", "Page Up / Page Down"):
        assert key in keys, key
    dlg.close()
    settle(qtbot)


def test_radiological_switch_flips_views_and_letters(make_main_window, qtbot):
    w = make_main_window()
    assert w.files.open_scan(str(demo_paths().scan))
    settle(qtbot)
    ax = w.views.views["axial"]
    assert ax.vb.xInverted() and ax._letters[0].toPlainText() == "R"
    w.actions_["radiological"].trigger()
    settle(qtbot)
    assert not w.session.view.radiological
    assert not ax.vb.xInverted() and ax._letters[0].toPlainText() == "L"


def test_layout_menu_makes_the_active_view_large(make_main_window, qtbot):
    w = make_main_window()
    assert w.files.open_scan(str(demo_paths().scan))
    w.actions_["layout_one-large"].trigger()
    settle(qtbot, 100)
    views = w.views.views
    assert w.views.layout_name == "one-large"
    assert views["axial"].width() > 2 * views["coronal"].width()


def test_keyboard_steps_the_focused_view(make_main_window, qtbot):
    w = make_main_window()
    assert w.files.open_scan(str(demo_paths().scan))
    settle(qtbot)
    s = w.session
    k0 = s.cursor.ijk[2]
    ax = w.views.views["axial"]
    ax.setFocus()
    qtbot.keyClick(ax, QtCore.Qt.Key.Key_PageUp)
    qtbot.keyClick(ax, QtCore.Qt.Key.Key_Up)
    settle(qtbot)
    assert s.cursor.ijk[2] == min(k0 + 11, s.scan.shape[2] - 1)
    assert ax.slice_index == s.cursor.ijk[2]


def test_series_dialog_returns_the_chosen_uid(qtbot):
    dlg = SeriesDialog("CT — head", [{"uid": "1.2.3", "modality": "CT", "description": "bone", "files": 40},
                                     ("1.2.4", "MR", "T1")])
    qtbot.addWidget(dlg)
    assert dlg.chosen_uid() is None  # the opened series is preselected
    dlg.list.setCurrentRow(1)
    assert dlg.chosen_uid() == "1.2.3" and "bone" in dlg.list.item(1).text()
    dlg.list.setCurrentRow(2)
    assert dlg.chosen_uid() == "1.2.4"


def test_launcher_parses_the_documented_arguments():
    from viewer.cli.gui import parse

    a = parse(["scan.nii.gz", "--model", "card.toml", "--mask", "m.nii.gz", "--trust"])
    assert (a.scan, a.model, a.mask, a.trust, a.session) == ("scan.nii.gz", "card.toml", "m.nii.gz", True, None)
    b = parse([])
    assert b.scan is None and not b.trust


@pytest.mark.slow
def test_launcher_without_arguments_shows_the_demo_overlay(tmp_path):
    """The real ``lrp-viewer`` process: no arguments → demo → overlay, then exit cleanly."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(root), LRP_VIEWER_CONFIG_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "viewer.cli.main", "--benchmark-first-overlay"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert 0 < float(values["first_overlay_s"]) <= float(values["final_overlay_s"])
