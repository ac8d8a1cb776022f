"""The real main window on the real demo case and demo model, driven like a user would."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from tests.ui.conftest import direct_map, settle, wait_final

pytestmark = pytest.mark.timeout(300)


def axial_overlay(window) -> np.ndarray:
    return np.asarray(window.views.views["axial"].overlay_slice())


def send_mouse(view, kind, pos: QtCore.QPointF, button, buttons) -> None:
    vp = view.viewport()
    ev = QtGui.QMouseEvent(kind, pos, QtCore.QPointF(vp.mapToGlobal(pos.toPoint())), button, buttons,
                           QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(vp, ev)


def voxel_pos(view, a: int, b: int) -> QtCore.QPointF:
    """Viewport position of the centre of in-plane voxel (a, b) of a SliceView."""
    o = view.orient
    p = QtCore.QPointF((a + 0.5) * view.spacing[o.h_axis], (b + 0.5) * view.spacing[o.v_axis])
    return QtCore.QPointF(view.mapFromScene(view.vb.mapViewToScene(p)))


@pytest.fixture
def demo(make_main_window, qtbot):
    w = make_main_window()
    assert w.open_demo()
    wait_final(qtbot, w)
    return w


def test_demo_shows_lrp_overlay_equal_to_the_engine(demo):
    s = demo.session
    res = s.result(0)
    assert res.request.method == "lrp"
    preset = dict(s.panels[0].params)["preset"]
    expected = direct_map(demo, "lrp", **dict(s.panels[0].params))
    k = s.cursor.ijk[2]
    np.testing.assert_allclose(axial_overlay(demo), expected[:, :, k], rtol=1e-4, atol=1e-9 * np.abs(expected).max())
    assert "lrp" in demo.explain_panel.state_label.text() and preset in demo.explain_panel.state_label.text()
    assert demo.windowTitle() == "lrp-viewer — case_left_large.nii.gz — Demo 3D lesion side classifier"
    assert demo.explain_panel.prediction_table.rowCount() == 3
    assert "Σ relevance" in demo.explain_panel.conservation_label.text()


def test_switching_preset_changes_the_overlay_to_the_new_engine_map(demo, qtbot):
    before = axial_overlay(demo).copy()
    demo.explain_panel.root.child("preset").setValue("epsilon-alpha2-beta1")
    wait_final(qtbot, demo)
    s = demo.session
    assert s.result(0).request.preset == "epsilon-alpha2-beta1"
    after = axial_overlay(demo)
    assert not np.allclose(before, after)
    expected = direct_map(demo, "lrp", **dict(s.panels[0].params))
    np.testing.assert_allclose(after, expected[:, :, s.cursor.ijk[2]], rtol=1e-4,
                               atol=1e-9 * np.abs(expected).max())


def test_fast_preset_switching_shows_only_the_last_request(demo, qtbot):
    shown: list[str | None] = []
    demo.bridge.resultReady.connect(lambda i: shown.append(demo.session.result(0).request.preset
                                                           if i == 0 and demo.session.result(0) else None))
    for name in ("epsilon", "epsilon-plus-flat", "epsilon-gamma-box", "epsilon-alpha2-beta1", "epsilon"):
        demo.explain_panel.root.child("preset").setValue(name)
        qtbot.wait(5)
    wait_final(qtbot, demo)
    s = demo.session
    assert s.result(0).request.preset == "epsilon"
    finals = [p for p in shown if p is not None]
    assert finals and finals[-1] == "epsilon"
    expected = direct_map(demo, "lrp", **dict(s.panels[0].params))
    np.testing.assert_allclose(axial_overlay(demo), expected[:, :, s.cursor.ijk[2]], rtol=1e-4,
                               atol=1e-9 * np.abs(expected).max())


def test_cancel_a_long_occlusion_with_escape(demo, qtbot):
    s = demo.session
    s.set_panel_method(0, "occlusion", patch=4, stride=1, batch_size=4)
    qtbot.waitUntil(lambda: s.is_busy(0), timeout=10000)
    qtbot.waitUntil(lambda: demo.explain_panel.cancel_button.isEnabled(), timeout=10000)
    demo.actions_["cancel"].trigger()  # Esc
    qtbot.waitUntil(lambda: not s.is_busy(0), timeout=20000)
    qtbot.waitUntil(lambda: not demo.explain_panel.cancel_button.isEnabled(), timeout=5000)
    settle(qtbot)
    res = s.result(0)
    assert res is None or res.request.method != "occlusion" or res.preview
    assert demo.explain_panel.progress_bar.value() == 0


def test_click_moves_every_view_and_comparison_panel(demo, qtbot):
    s = demo.session
    demo.toggle_comparison()
    qtbot.waitUntil(lambda: len(demo.comparison.panels) >= 2, timeout=10000)
    settle(qtbot, 100)
    ax = demo.views.views["axial"]
    i0, j0, k0 = s.cursor.ijk
    target = (i0 - 7, j0 + 5)
    # the comparison tab is in front now; click in the views' axial plane through the views dock
    demo.views_dock.raiseDock()
    settle(qtbot, 100)
    qtbot.mouseClick(ax.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=voxel_pos(ax, *target).toPoint())
    qtbot.waitUntil(lambda: s.cursor.ijk[:2] == target, timeout=5000)
    settle(qtbot)
    cor, sag = demo.views.views["coronal"], demo.views.views["sagittal"]
    assert cor.slice_index == target[1] and sag.slice_index == target[0]
    assert cor.crosshair.position()[0] == pytest.approx((target[0] + 0.5) * cor.spacing[0])
    assert sag.crosshair.position()[0] == pytest.approx((target[1] + 0.5) * sag.spacing[1])
    for p in demo.comparison.panels:
        assert p.view.cursor == s.cursor.ijk
        assert p.view.crosshair.position()[0] == pytest.approx(ax.crosshair.position()[0])
    # a click in a comparison panel moves the main views too
    demo.comparison_dock.raiseDock()
    settle(qtbot, 100)
    pv = demo.comparison.panels[1].view
    qtbot.mouseClick(pv.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=voxel_pos(pv, i0, j0).toPoint())
    qtbot.waitUntil(lambda: s.cursor.ijk[:2] == (i0, j0), timeout=5000)
    settle(qtbot)
    assert sag.slice_index == i0 and cor.slice_index == j0
    # comparison views share zoom and pan
    assert demo.comparison.panels[1].view.vb.linkedView(0) is demo.comparison.panels[0].view.vb


def test_right_drag_changes_window_level(demo, qtbot):
    s = demo.session
    ax = demo.views.views["axial"]
    w0 = s.window
    start = QtCore.QPointF(ax.viewport().width() / 2, ax.viewport().height() / 2)
    right = QtCore.Qt.MouseButton.RightButton
    send_mouse(ax, QtCore.QEvent.Type.MouseButtonPress, start, right, right)
    for step in range(1, 6):
        send_mouse(ax, QtCore.QEvent.Type.MouseMove, start + QtCore.QPointF(20 * step, 10 * step),
                   QtCore.Qt.MouseButton.NoButton, right)
    send_mouse(ax, QtCore.QEvent.Type.MouseButtonRelease, start + QtCore.QPointF(100, 50), right,
               QtCore.Qt.MouseButton.NoButton)
    settle(qtbot)
    w1 = s.window
    assert w1.width > w0.width * 1.2  # dragged right: wider
    assert w1.centre > w0.centre  # dragged down: higher level
    lo, hi = ax.scan_item.getLevels()
    assert (lo, hi) == pytest.approx((w1.low, w1.high))


def test_corrupt_file_shows_an_error_and_keeps_the_scan(demo, qtbot, tmp_path):
    s = demo.session
    scan_before = s.scan
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(gzip.compress(b"not a nifti file at all" * 10)[:40])
    assert not demo.files.open_scan(str(bad))
    qtbot.waitUntil(lambda: any(isinstance(w, QtWidgets.QMessageBox) and w.isVisible()
                                for w in QtWidgets.QApplication.topLevelWidgets()), timeout=5000)
    box = next(w for w in QtWidgets.QApplication.topLevelWidgets()
               if isinstance(w, QtWidgets.QMessageBox) and w.isVisible())
    assert "broken.nii.gz" in box.informativeText() or box.informativeText()
    box.close()
    settle(qtbot)
    assert s.scan is scan_before
    k = s.cursor.ijk[2]
    np.testing.assert_array_equal(demo.views.views["axial"].scan_item.image, scan_before.data[:, :, k])
    assert "case_left_large.nii.gz" in demo.windowTitle()


def test_target_and_parameter_edits_re_explain(demo, qtbot):
    s = demo.session
    panel = demo.explain_panel
    other = next(i for i in range(3) if i != s.prediction.predicted)
    panel.root.child("target").setValue(str(other))
    qtbot.waitUntil(lambda: s.target == other, timeout=5000)
    res = wait_final(qtbot, demo)
    assert res.relevance.target.index == other
    expected = direct_map(demo, "lrp", **dict(s.panels[0].params))
    np.testing.assert_allclose(axial_overlay(demo), expected[:, :, s.cursor.ijk[2]], rtol=1e-4,
                               atol=1e-9 * np.abs(expected).max())
    panel.root.child("params", "epsilon").setValue(0.01)
    panel.flush()
    qtbot.waitUntil(lambda: dict(s.panels[0].params).get("epsilon") == pytest.approx(0.01), timeout=5000)
    res = wait_final(qtbot, demo)
    assert dict(res.request.params)["epsilon"] == pytest.approx(0.01)


def test_display_changes_redraw_without_re_explaining(demo, qtbot):
    s = demo.session
    res = s.result(0)
    ax = demo.views.views["axial"]
    demo.actions_["overlay"].trigger()  # O
    settle(qtbot)
    assert not s.panels[0].overlay.visible and not ax.overlay_item.isVisible()
    demo.actions_["overlay"].trigger()
    settle(qtbot)
    assert ax.overlay_item.isVisible()
    demo.overlay_panel.root.child("overlay", "sign").setValue("positive")
    settle(qtbot)
    lut = ax.overlay_item.lut
    assert lut[:128, 3].max() == 0 and lut[200:, 3].min() > 0
    assert s.result(0) is res and not s.is_busy(0)


def test_export_menu_writes_nifti_figure_and_metrics(demo, qtbot, tmp_path):
    import json

    import nibabel as nib
    from PIL import Image

    s = demo.session
    demo.files.export_nifti(str(tmp_path / "rel.nii.gz"))
    demo.files.export_figure(str(tmp_path / "fig.png"))
    demo.files.export_metrics(str(tmp_path / "metrics.json"))
    settle(qtbot)
    img = nib.load(str(tmp_path / "rel.nii.gz"))
    np.testing.assert_allclose(np.asarray(img.dataobj), s.result(0).on_scan, rtol=1e-6)
    assert Image.open(tmp_path / "fig.png").size[0] > 100
    rows = json.loads((tmp_path / "metrics.json").read_text())
    assert rows[0]["method"] == "lrp" and rows[0]["explained"] == pytest.approx(s.result(0).relevance.explained)
    assert not any(isinstance(w, QtWidgets.QMessageBox) and w.isVisible()
                   for w in QtWidgets.QApplication.topLevelWidgets())
