"""The window as a reading tool (issue 12, items 1–4, 6, 7, 16): the case on screen is
always the case that is open, the loader's notes and the input's fit are visible, and a
failure is said once, in place. Driven with keys, clicks, wheel and mouse moves."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from tests.ui.conftest import settle, wait_final
from tests.ui.test_main_window import send_mouse, voxel_pos
from viewer.models.demo import demo_paths

pytestmark = pytest.mark.timeout(300)
NONE = QtCore.Qt.MouseButton.NoButton


def message_boxes() -> list[QtWidgets.QMessageBox]:
    return [w for w in QtWidgets.QApplication.topLevelWidgets()
            if isinstance(w, QtWidgets.QMessageBox) and w.isVisible()]


def close_boxes() -> None:
    for box in message_boxes():
        box.close()


def hover(view, a: int, b: int) -> None:
    """Move the mouse over in-plane voxel (a, b) of a slice view."""
    send_mouse(view, QtCore.QEvent.Type.MouseMove, voxel_pos(view, a, b), NONE, NONE)


def wheel(view, steps: int) -> None:
    vp = view.viewport()
    pos = QtCore.QPointF(vp.width() / 2, vp.height() / 2)
    ev = QtGui.QWheelEvent(pos, QtCore.QPointF(vp.mapToGlobal(pos.toPoint())), QtCore.QPoint(0, 0),
                           QtCore.QPoint(0, 120 * steps), NONE, QtCore.Qt.KeyboardModifier.NoModifier,
                           QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(vp, ev)


def press(qtbot, window, key, modifier=QtCore.Qt.KeyboardModifier.NoModifier) -> None:
    """A key press on the active main window (where its shortcuts live)."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    qtbot.keyClick(window, key, modifier)
    settle(qtbot)


def choose_file(monkeypatch, path) -> None:
    """The next File → Open dialog answers ``path``, as if the user had picked it."""
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(path))


@pytest.fixture
def demo(make_main_window, qtbot):
    w = make_main_window()
    assert w.open_demo()
    wait_final(qtbot, w)
    return w


def test_a_second_scan_replaces_the_whole_case_even_under_the_mouse(demo, qtbot, monkeypatch):
    """Item 1: title, status bar, views, panels and export names change with the scan; the
    old hover position (outside the smaller scan) never reaches the new one."""
    s = demo.session
    ax = demo.views.views["axial"]
    hover(ax, 40, 50)  # a voxel that does not exist in the 48 × 56 × 1 image
    settle(qtbot)
    assert demo.status_label.text().startswith("mouse voxel (i, j, k) = (40, 50, ")
    choose_file(monkeypatch, demo_paths("case2d_right").scan)
    demo.actions_["open_scan"].trigger()  # Ctrl+O
    qtbot.waitUntil(lambda: s.scan_path.endswith("case2d_right.nii.gz"), timeout=5000)
    qtbot.waitUntil(lambda: s.wait_idle(0) and len(message_boxes()) >= 1, timeout=30000)
    settle(qtbot, 100)
    assert demo.dispatch.failures == []
    assert demo.windowTitle() == "lrp-viewer — case2d_right.nii.gz — Demo 3D lesion side classifier"
    np.testing.assert_array_equal(ax.scan_item.image, s.scan.data[:, :, 0])
    assert ax.slice_label() == "Axial" and demo.views.single
    i, j, k = s.cursor.ijk
    assert demo.status_label.text().startswith(f"cursor voxel (i, j, k) = ({i}, {j}, {k}), 0-based")
    assert f"value {float(s.scan.data[i, j, k]):.5g}" in demo.status_label.text()
    hover(ax, 3, 4)
    settle(qtbot)
    assert demo.status_label.text().startswith("mouse voxel (i, j, k) = (3, 4, 0), 0-based")
    assert f"value {float(s.scan.data[3, 4, 0]):.5g}" in demo.status_label.text()
    # the 3D model cannot take a 2D image: one message, and every panel says why
    boxes = message_boxes()
    assert [b.text() for b in boxes] == ["This model cannot take this scan"]
    assert demo.explain_panel.state_label.text().startswith("Failed: This is a 3D model but the image is 2D")
    assert demo.explain_panel.prediction_table.rowCount() == 0
    assert demo.explain_panel.prediction_box.error_label.isVisibleTo(demo)
    close_boxes()
    offered = []  # the names the save dialogs propose; the user then cancels

    def cancel_save(_parent, _title, name, *_rest):
        offered.append(name)
        return "", ""

    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", cancel_save)
    demo.actions_["save_session"].trigger()  # Ctrl+S
    demo.actions_["export_metrics"].trigger()
    assert offered == ["case2d_right_session.lrpv", "case2d_right_metrics.csv"]
    assert demo.files.default_name("relevance", ".nii.gz") == "case2d_right_lrp-epsilon-plus_relevance.nii.gz"


def test_png_then_dicom_folder_changes_the_title(make_main_window, qtbot, tmp_path, monkeypatch):
    from PIL import Image
    from pydicom.data import get_testdata_file

    w = make_main_window()
    Image.fromarray(np.arange(30 * 40, dtype=np.uint8).reshape(30, 40)).save(tmp_path / "photo.png")
    choose_file(monkeypatch, tmp_path / "photo.png")
    w.actions_["open_scan"].trigger()
    settle(qtbot)
    assert w.windowTitle() == "lrp-viewer — photo.png"
    folder = tmp_path / "CT series 2"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "IM0001")
    choose_file(monkeypatch, folder)
    w.actions_["open_dicom"].trigger()  # Ctrl+Shift+O
    settle(qtbot)
    assert w.windowTitle() == "lrp-viewer — CT series 2"
    assert w.session.case_name == "CT series 2" and w.views.views["axial"].slice_label() == "Axial"
    assert w.status_label.text().startswith("cursor voxel (i, j, k) = (64, 64, 0), 0-based")
    assert w.dispatch.failures == []


def test_a_failing_handler_step_leaves_the_rest_of_the_window_current(demo, qtbot, monkeypatch):
    """A bug in one part of the redraw must not keep the old case's title or status."""
    def broken(*_a):
        raise RuntimeError("simulated drawing bug")

    monkeypatch.setattr(demo.comparison, "set_scan", broken)
    from viewer.io import load_scan

    scan = load_scan(demo_paths("case_none").scan)
    demo.session.set_scan(scan, path=str(demo_paths("case_none").scan))
    qtbot.waitUntil(lambda: len(message_boxes()) == 1, timeout=10000)
    settle(qtbot)
    assert demo.dispatch.failures == [("new scan: comparison", "RuntimeError: simulated drawing bug")]
    assert demo.windowTitle().startswith("lrp-viewer — case_none.nii.gz")
    k = demo.session.cursor.ijk[2]
    np.testing.assert_array_equal(demo.views.views["axial"].scan_item.image, scan.data[:, :, k])
    assert "cursor voxel" in demo.status_label.text()
    assert message_boxes()[0].text() == "Display problem"
    assert "comparison" in demo.statusBar().currentMessage()
    close_boxes()


def test_loader_notes_show_in_a_dismissable_bar_and_the_scan_info_dialog(make_main_window, qtbot, tmp_path):
    """Item 2."""
    data = np.random.default_rng(0).random((20, 24, 16, 3)).astype(np.float32)
    data[0, 0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, np.diag([-2.0, 2.0, 3.0, 1.0])), str(tmp_path / "series4d.nii.gz"))
    w = make_main_window()
    assert w.files.open_scan(str(tmp_path / "series4d.nii.gz"))
    settle(qtbot)
    notes = w.session.scan_notes()
    assert len(notes) >= 2 and any("3 volumes" in n for n in notes) and any("NaN" in n for n in notes)
    bar = w.notes_bar
    assert bar.isVisibleTo(w) and bar.notes == notes
    assert f"{len(notes)} notes about this scan" in bar.label.text()
    qtbot.mouseClick(bar.info_button, QtCore.Qt.MouseButton.LeftButton)
    dlg = w.findChild(QtWidgets.QDialog, "scanInfoDialog")
    rows = dict(dlg.rows)
    assert rows["Size (voxels)"] == "20 × 24 × 16" and rows["Spacing (mm)"] == "2 × 2 × 3"
    assert rows["NaN/Inf voxels"] == "1 (0.013 %)" and rows["Volumes in the file"] == "3"
    assert [v for label, v in dlg.rows if label == "Loader note"] == notes
    dlg.close()
    qtbot.mouseClick(bar.close_button, QtCore.Qt.MouseButton.LeftButton)
    assert not bar.isVisibleTo(w)
    assert w.files.open_scan(str(demo_paths().scan))  # no notes: the bar stays away
    settle(qtbot)
    assert not bar.isVisibleTo(w) and bar.notes == []
    assert w.files.open_scan(str(tmp_path / "series4d.nii.gz"))  # a scan with notes: back again
    settle(qtbot)
    assert bar.isVisibleTo(w)
    press(qtbot, w, QtCore.Qt.Key.Key_I, QtCore.Qt.KeyboardModifier.ControlModifier)  # Ctrl+I
    dlg = w.findChild(QtWidgets.QDialog, "scanInfoDialog")
    assert dlg is not None and dlg.isVisible()
    dlg.close()
    settle(qtbot)


def test_a_0_255_picture_on_the_2d_model_warns_next_to_the_prediction(make_main_window, qtbot, tmp_path):
    """Item 3, as reported: 64 % of the input clipped, yet 'lesion right 99.8 %'."""
    from PIL import Image

    from viewer.io import load_scan

    case = load_scan(demo_paths("case_right_small").scan).data[:, :, 26]
    pixels = np.clip(case / case.max() * 255, 0, 255).astype(np.uint8).T[::-1]
    Image.fromarray(pixels).save(tmp_path / "slice.png")
    w = make_main_window()
    assert w.files.open_scan(str(tmp_path / "slice.png"))
    assert w.files.open_model(str(demo_paths().model2d))
    wait_final(qtbot, w)
    box = w.explain_panel.prediction_box
    pred = w.session.prediction
    assert len(pred.warnings) == 1 and pred.warnings[0].startswith("67 % of the model input is above the top")
    assert box.warning_label.isVisibleTo(w)
    assert "The input does not fit this model" in box.warning_label.text() and "67 %" in box.warning_label.text()
    top = box.table.cellWidget(0, 1).text()
    assert top.endswith("⚠") and box.table.item(0, 0).text() == pred.labels[pred.predicted]
    # the demo case itself fits: no warning
    assert w.files.open_scan(str(demo_paths("case2d_right").scan))
    wait_final(qtbot, w)
    assert w.session.prediction.warnings == () and not box.warning_label.isVisibleTo(w)


def test_the_model_is_named_with_its_card_on_hover(demo):
    """Item 4."""
    label = demo.explain_panel.prediction_box.model_label
    assert "Demo 3D lesion side classifier" in label.text() and "demo3d.toml" in label.text()
    assert "classification" in label.text() and "3 classes" in label.text()
    assert "Small 3D CNN trained on synthetic lesions" in label.toolTip()
    assert demo.windowTitle().endswith("Demo 3D lesion side classifier")


def test_status_bar_follows_wheel_keys_clicks_and_results(demo, qtbot):
    """Item 6 (and 16: the status voxel and the slice label use the same 0-based index)."""
    s = demo.session
    ax = demo.views.views["axial"]
    demo.status.sources = [demo.views]  # the mouse is not over any view in this test
    i, j, k = s.cursor.ijk
    assert demo.status_label.text().startswith(f"cursor voxel (i, j, k) = ({i}, {j}, {k}), 0-based")
    assert ax.slice_label() == f"Axial  k = {k} of 0–47" and ax._info.toPlainText() == ax.slice_label()
    wheel(ax, 1)
    qtbot.waitUntil(lambda: s.cursor.ijk[2] == k + 1, timeout=3000)
    settle(qtbot)
    assert demo.status_label.text().startswith(f"cursor voxel (i, j, k) = ({i}, {j}, {k + 1})")
    assert ax._info.toPlainText() == f"Axial  k = {k + 1} of 0–47"
    ax.setFocus()
    qtbot.keyClick(ax, QtCore.Qt.Key.Key_PageDown)
    settle(qtbot)
    assert demo.status_label.text().startswith(f"cursor voxel (i, j, k) = ({i}, {j}, {k - 9})")
    qtbot.mouseClick(ax.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=voxel_pos(ax, 10, 12).toPoint())
    settle(qtbot)
    assert demo.status_label.text().startswith(f"cursor voxel (i, j, k) = (10, 12, {k - 9})")
    value = float(s.result(0).on_scan[10, 12, k - 9])
    assert demo.status_label.text().endswith(f"relevance {value:.4g}")
    # hovering, then the wheel: the voxel under the mouse is now on the next slice
    hover(ax, 20, 30)
    settle(qtbot)
    wheel(ax, 1)
    settle(qtbot)
    assert demo.status_label.text().startswith(f"mouse voxel (i, j, k) = (20, 30, {k - 8})")
    # a new result updates the relevance shown
    s.set_panel_method(0, "gradcam")
    wait_final(qtbot, demo)
    value = float(s.result(0).on_scan[20, 30, k - 8])
    assert demo.status_label.text().endswith(f"relevance {value:.4g}")


def test_one_failure_is_one_message_and_each_panel_says_it_failed(demo, qtbot):
    """Item 7: a scan the model cannot take, with the comparison open."""
    from viewer.io.scan import Scan

    demo.toggle_comparison()
    qtbot.waitUntil(lambda: len(demo.comparison.panels) == 2, timeout=10000)
    wait_final(qtbot, demo, 1)
    picture = Scan(np.ones((30, 20, 1), np.float32), np.eye(4), (1.0, 1.0, 1.0), planar=True)
    demo.session.set_scan(picture)
    assert demo.session.wait_idle(30)
    qtbot.waitUntil(lambda: len(message_boxes()) == 1, timeout=5000)
    settle(qtbot, 200)
    assert len(message_boxes()) == 1
    reason = "This is a 3D model but the image is 2D (shape 30×20)"
    assert demo.explain_panel.state_label.text().startswith(f"Failed: {reason}")
    for p in demo.comparison.panels:
        assert p.caption.text().startswith(f"Failed: {reason}")
    close_boxes()


def test_an_all_nan_scan_gets_an_error_not_a_confident_answer(demo, qtbot, tmp_path):
    """Issue 11: no 'no lesion 81 %' for a scan without a single number."""
    data = np.full((48, 56, 48), np.nan, np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([4.0, 4.0, 4.0, 1.0])), str(tmp_path / "empty.nii.gz"))
    assert demo.files.open_scan(str(tmp_path / "empty.nii.gz"))
    assert demo.session.wait_idle(30)
    qtbot.waitUntil(lambda: len(message_boxes()) == 1, timeout=5000)
    settle(qtbot, 100)
    box = message_boxes()[0]
    assert "no finite values: all 129024 voxels are NaN or infinite" in box.informativeText()
    assert demo.session.prediction is None
    assert demo.explain_panel.prediction_table.rowCount() == 0
    error = demo.explain_panel.prediction_box.error_label
    assert error.isVisibleTo(demo) and error.text().startswith("Prediction failed: The scan has no finite values")
    assert demo.session.result(0) is None and demo.views.views["axial"].overlay_slice() is None
    close_boxes()
