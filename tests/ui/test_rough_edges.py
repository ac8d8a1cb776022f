"""Rough edges of issue 12 (items 5, 8–15) and what FSLeyes/ITK-SNAP users expect (gapped
crosshair, linked zoom, histogram window dialog, titled colour bar, layer list), each
driven as a user would and checked on what the window shows."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from tests.ui.conftest import settle, wait_final
from tests.ui.test_case_identity import press, wheel
from tests.ui.test_main_window import send_mouse, voxel_pos
from viewer.models.demo import demo_paths

pytestmark = pytest.mark.timeout(300)
RIGHT, NONE = QtCore.Qt.MouseButton.RightButton, QtCore.Qt.MouseButton.NoButton


@pytest.fixture
def demo(make_main_window, qtbot):
    w = make_main_window()
    assert w.open_demo()
    wait_final(qtbot, w)
    return w


def tree_item(param):
    return next(iter(param.items))


def test_o_unticks_show_overlay_and_a_right_drag_makes_the_window_custom(demo, qtbot):
    """Item 5."""
    visible = demo.overlay_panel.root.child("overlay", "visible")
    preset = demo.overlay_panel.root.child("window", "preset")
    assert visible.value() is True and preset.value() == "Default"
    press(qtbot, demo, QtCore.Qt.Key.Key_O)
    assert demo.session.panels[0].overlay.visible is False and visible.value() is False
    assert not demo.views.views["axial"].overlay_item.isVisible()
    press(qtbot, demo, QtCore.Qt.Key.Key_O)
    assert visible.value() is True
    ax = demo.views.views["axial"]
    start = QtCore.QPointF(ax.viewport().width() / 2, ax.viewport().height() / 2)
    send_mouse(ax, QtCore.QEvent.Type.MouseButtonPress, start, RIGHT, RIGHT)
    for step in range(1, 5):
        send_mouse(ax, QtCore.QEvent.Type.MouseMove, start + QtCore.QPointF(15 * step, 0), NONE, RIGHT)
    send_mouse(ax, QtCore.QEvent.Type.MouseButtonRelease, start + QtCore.QPointF(60, 0), RIGHT, NONE)
    settle(qtbot)
    assert demo.session.window_preset == "Custom" and preset.value() == "Custom"
    press(qtbot, demo, QtCore.Qt.Key.Key_W)  # reset window
    assert preset.value() == "Default"


def test_comparison_beside_grad_cam_is_lrp(demo, qtbot):
    """Item 8: Method = Grad-CAM, then C."""
    demo.explain_panel.root.child("method").setValue("gradcam")
    wait_final(qtbot, demo)
    press(qtbot, demo, QtCore.Qt.Key.Key_C)
    qtbot.waitUntil(lambda: len(demo.comparison.panels) == 2, timeout=10000)
    wait_final(qtbot, demo, 1)
    methods = [p.method for p in demo.session.panels]
    assert methods == ["gradcam", "lrp"]
    assert [p.combo.currentText() for p in demo.comparison.panels] == ["Grad-CAM", "LRP Epsilon + ZPlus"]
    qtbot.waitUntil(lambda: demo.session.metrics is not None and bool(demo.session.metrics.correlations),
                    timeout=20000)
    assert demo.session.metrics.correlations[(0, 1)] < 0.9


def test_grad_cam_preview_is_labelled_and_grad_cam_shows_positive_only(make_main_window, qtbot):
    """Item 9: the preview says it is one; Grad-CAM draws only its positive part."""
    from viewer.explain import explain

    gate = threading.Event()

    def slow_lrp(module, x, method="lrp", **kw):
        if method == "lrp":
            gate.wait(30)
        return explain(module, x, method=method, **kw)

    w = make_main_window(explain_fn=slow_lrp)
    try:
        assert w.open_demo()
        qtbot.waitUntil(lambda: w.session.result(0) is not None and w.session.result(0).preview, timeout=30000)
        settle(qtbot, 100)
        panel = w.explain_panel
        assert panel.state_label.text().startswith("Showing a PREVIEW: gradcam")
        assert panel.result_heading.text() == "<b>Preview: gradcam</b> (not lrp)"
        lut = w.views.views["axial"].overlay_item.lut
        assert lut[:128, 3].max() == 0 and lut[200:, 3].min() > 0  # positive only
        assert "relevance (preview)" in w.status_label.text()
    finally:
        gate.set()
    wait_final(qtbot, w)
    assert w.explain_panel.result_heading.text() == "<b>Conservation (LRP)</b>"
    lut = w.views.views["axial"].overlay_item.lut
    assert lut[:100, 3].max() > 0  # LRP: both signs again
    w.explain_panel.root.child("method").setValue("gradcam")
    wait_final(qtbot, w)
    assert w.session.panels[0].overlay.sign == "positive"
    assert w.overlay_panel.root.child("overlay", "sign").value() == "positive"


def test_profile_click_moves_the_slice_and_ticks_are_whole_slices(demo, qtbot, tmp_path):
    """Item 10."""
    s = demo.session
    prof = demo.profile
    vb = prof.getPlotItem().getViewBox()
    for target in (12, 33):
        scene = vb.mapViewToScene(QtCore.QPointF(target + 0.2, 0.0))
        pos = prof.mapFromScene(scene)
        qtbot.mouseClick(prof.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=pos)
        settle(qtbot)
        assert s.cursor.ijk[2] == target and prof.marker.value() == target
    # a five-slice volume: integer ticks only
    from viewer.ui.profile_plot import SliceAxis

    axis = prof.getPlotItem().getAxis("bottom")
    assert isinstance(axis, SliceAxis)
    levels = axis.tickValues(-0.2, 4.2, 400)
    values = [v for _spacing, vs in levels for v in vs]
    assert values and all(float(v).is_integer() for v in values) and set(values) <= {0, 1, 2, 3, 4}
    assert axis.tickStrings([0.0, 1.0, 4.0], 1.0, 1.0) == ["0", "1", "4"]


def test_opacity_is_a_wide_slider_with_a_spin_box(demo, qtbot):
    """Item 11."""
    item = tree_item(demo.overlay_panel.root.child("overlay", "opacity"))
    widget = item.widget
    assert widget.isVisible() and widget.slider.width() >= 140
    widget.slider.setValue(250)  # a quarter of the way
    settle(qtbot)
    assert demo.session.panels[0].overlay.opacity == pytest.approx(0.25)
    widget.spin.setValue(0.8)
    settle(qtbot)
    assert demo.session.panels[0].overlay.opacity == pytest.approx(0.8)
    lut = demo.views.views["axial"].overlay_item.lut
    assert lut[:, 3].max() == round(255 * 0.8)
    assert demo.overlay_panel.layers.row("relevance").opacity.value() == pytest.approx(0.8)


def test_zbox_bounds_show_the_values_in_use(demo, qtbot):
    """Item 12: the card's input_range [0, 1]."""
    demo.explain_panel.root.child("preset").setValue("epsilon-gamma-box")
    wait_final(qtbot, demo)
    params = demo.explain_panel.root.child("params")
    assert (params.child("low").value(), params.child("high").value()) == (0.0, 1.0)
    assert dict(demo.session.result(0).request.params)["low"] == 0.0


def test_perturbation_legend_names_methods_beside_the_plot(demo, qtbot):
    """Item 13."""
    demo.toggle_comparison()
    qtbot.waitUntil(lambda: len(demo.comparison.panels) == 2, timeout=10000)
    wait_final(qtbot, demo, 1)
    demo.actions_["perturbation"].trigger()  # Ctrl+P
    s = demo.session
    qtbot.waitUntil(lambda: s.perturbation(0) is not None and s.perturbation(1) is not None, timeout=120000)
    settle(qtbot, 100)
    legend = demo.comparison.curves_legend.text().replace("&nbsp;", " ")
    assert "1: LRP Epsilon + ZPlus" in legend and "2: Grad-CAM" in legend and "random order" in legend
    assert demo.comparison.curves.getPlotItem().legend is None  # nothing drawn over the curves
    rows = [demo.comparison.metrics_table.item(r, 0).text() for r in range(2)]
    assert rows == ["1: LRP Epsilon + ZPlus", "2: Grad-CAM"]
    assert demo.comparison.curves.getPlotItem().layout.getContentsMargins()[1] >= 10  # room for the top label


def test_file_filters_list_every_supported_format(tmp_path):
    """Item 14: .hdr/.img/.mgh and DICOM files without an extension."""
    from viewer.ui.file_actions import SCAN_FILTER

    for name in ("a.hdr", "a.img", "b.mgh", "c.mgz", "d.nii.gz", "IM0001", "e.dcm", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    filters = SCAN_FILTER.split(";;")
    patterns = [f[f.index("(") + 1: f.rindex(")")].split() for f in filters]
    listed = [set(QtCore.QDir(str(tmp_path)).entryList(p, QtCore.QDir.Filter.Files)) for p in patterns]
    assert {"a.hdr", "a.img", "b.mgh", "c.mgz", "d.nii.gz", "e.dcm"} <= listed[0] and "notes.txt" not in listed[0]
    assert filters[1].startswith("DICOM files with any name") and "IM0001" in listed[1]


def test_series_chooser_tells_two_series_apart(qtbot):
    """Item 15: number, time and the UID's ends; never patient fields."""
    from viewer.ui.dialogs import SeriesDialog, current_series_text

    root = "1.2.826.0.1.3680043.8.498.1234567890"
    entries = [{"uid": f"{root}.11", "modality": "CT", "description": "Head", "images": 40, "rows": 512,
                "columns": 512, "series_number": 3, "series_time": "101503.2", "PatientName": "DOE^JANE"},
               {"uid": f"{root}.12", "modality": "CT", "description": "Head", "images": 40, "rows": 512,
                "columns": 512, "series_number": 4, "series_time": "102230"}]
    current = current_series_text({"SeriesNumber": 2, "Modality": "CT", "SeriesDescription": "Head",
                                   "series": f"{root}.10"})
    dlg = SeriesDialog(current, entries)
    qtbot.addWidget(dlg)
    rows = [dlg.list.item(r).text() for r in range(dlg.list.count())]
    assert rows == [
        "#2 — CT — Head — UID 1.2.826.0.…4567890.10 (opened)",
        "#3 — 10:15:03 — CT — Head — 40 images — 512 × 512 — UID 1.2.826.0.…4567890.11",
        "#4 — 10:22:30 — CT — Head — 40 images — 512 × 512 — UID 1.2.826.0.…4567890.12",
    ]
    assert len(set(rows)) == 3 and not any("DOE" in r for r in rows)


def test_crosshair_leaves_its_centre_open_at_any_zoom(demo, qtbot):
    ax = demo.views.views["axial"]
    x, y = ax.crosshair.position()
    xs, ys = ax.crosshair.segments()
    gx, gy = ax.crosshair.gap()
    assert gx > 0 and xs[1] == pytest.approx(x - gx) and xs[2] == pytest.approx(x + gx)
    assert ys[5] == pytest.approx(y - gy) and ys[6] == pytest.approx(y + gy)
    px = ax.vb.viewRange()[0][1] - ax.vb.viewRange()[0][0]
    assert gx == pytest.approx(9.0 * px / ax.vb.width(), rel=1e-6)  # nine screen pixels
    ax.vb.scaleBy((0.5, 0.5))  # zoom in: the gap shrinks in millimetres, not on screen
    settle(qtbot)
    assert ax.crosshair.gap()[0] == pytest.approx(gx / 2, rel=0.05)
    demo.overlay_panel.root.child("view", "crosshair_gap").setValue(False)
    settle(qtbot)
    assert ax.crosshair.gap() == (0.0, 0.0)


def test_linked_zoom_gives_every_view_the_same_scale(demo, qtbot):
    from viewer.ui.zoom_link import scale_of

    views = demo.views.views
    ax, cor = views["axial"], views["coronal"]
    ctrl = QtCore.Qt.KeyboardModifier.ControlModifier

    def ctrl_wheel(view, steps):
        vp = view.viewport()
        pos = QtCore.QPointF(vp.width() / 2, vp.height() / 2)
        from PySide6 import QtGui

        ev = QtGui.QWheelEvent(pos, QtCore.QPointF(vp.mapToGlobal(pos.toPoint())), QtCore.QPoint(0, 0),
                               QtCore.QPoint(0, 120 * steps), NONE, ctrl, QtCore.Qt.ScrollPhase.NoScrollPhase, False)
        QtWidgets.QApplication.sendEvent(vp, ev)
        settle(qtbot)

    before = scale_of(cor)
    ctrl_wheel(ax, 3)  # unlinked: only the axial view zooms
    assert scale_of(cor) == pytest.approx(before)
    press(qtbot, demo, QtCore.Qt.Key.Key_Z)  # link zoom
    assert demo.session.view.link_zoom and demo.actions_["link_zoom"].isChecked()
    ctrl_wheel(ax, 2)
    assert scale_of(cor) == pytest.approx(scale_of(ax), rel=1e-3)
    assert scale_of(views["sagittal"]) == pytest.approx(scale_of(ax), rel=1e-3)
    wheel(ax, 1)  # a plain wheel still changes the slice, not the zoom
    settle(qtbot)
    assert scale_of(cor) == pytest.approx(scale_of(ax), rel=1e-3)


def test_window_dialog_shows_the_histogram_and_sets_the_window(demo, qtbot):
    press(qtbot, demo, QtCore.Qt.Key.Key_L, QtCore.Qt.KeyboardModifier.ControlModifier)  # Ctrl+L
    dlg = demo.findChild(QtWidgets.QDialog, "windowLevelDialog")
    assert dlg is not None and dlg.isVisible()
    s = demo.session
    h = s.scan_histogram()
    assert h.counts.sum() == s.scan.data.size
    edges, heights = dlg.bars.getData()
    np.testing.assert_allclose(heights, np.log10(h.counts + 1.0))
    assert dlg.region.getRegion() == pytest.approx((s.window.low, s.window.high))
    dlg.region.setRegion((0.1, 0.7))
    settle(qtbot)
    assert (s.window.low, s.window.high) == pytest.approx((0.1, 0.7))
    assert demo.views.views["axial"].scan_item.getLevels() == pytest.approx((0.1, 0.7))
    assert dlg.preset.currentText() == "Custom"
    dlg.width_box.setValue(0.2)
    settle(qtbot)
    assert s.window.width == pytest.approx(0.2)
    assert dlg.region.getRegion() == pytest.approx((0.3, 0.5))
    dlg.close()
    settle(qtbot)


def test_colour_bar_title_says_what_and_which_limits(demo, qtbot):
    bar = demo.overlay_panel.colorbar
    limit = demo.session.panel_limit(0)
    assert bar.title == f"relevance ±{limit:.2g} (99.5 pct)"
    assert "99.5" in bar.title and f"±{limit:.4g}" in bar.toolTip()
    demo.overlay_panel.root.child("overlay", "limit_mode").setValue("fixed")
    settle(qtbot)
    assert bar.title == "relevance ±1 (fixed)"


def test_layer_list_shows_a_second_map_from_file_with_its_own_opacity(demo, qtbot, tmp_path, monkeypatch):
    s = demo.session
    path = tmp_path / "earlier.nii.gz"
    demo.files.export_nifti(str(path))
    layers = demo.overlay_panel.layers
    assert [r.key for r in layers.rows] == ["relevance", "mask"]
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    qtbot.mouseClick(layers.add_button, QtCore.Qt.MouseButton.LeftButton)
    settle(qtbot)
    assert [r.key for r in layers.rows] == [("map", 0), "relevance", "mask"]
    row = layers.row(("map", 0))
    assert row.check.text() == "Map: earlier.nii.gz" and row.check.isChecked()
    ax = demo.views.views["axial"]
    item = ax.map_items[0]
    assert item.isVisible() and item.image is not None
    row.opacity.spin.setValue(0.3)
    settle(qtbot)
    assert s.maps[0].overlay.opacity == pytest.approx(0.3) and item.lut[:, 3].max() == round(255 * 0.3)
    qtbot.mouseClick(layers.row("relevance").check, QtCore.Qt.MouseButton.LeftButton)  # hide the live map
    settle(qtbot)
    assert not s.panels[0].overlay.visible and not ax.overlay_item.isVisible()
    assert demo.overlay_panel.root.child("overlay", "visible").value() is False
    qtbot.mouseClick(layers.row("mask").check, QtCore.Qt.MouseButton.LeftButton)
    settle(qtbot)
    assert not s.view.mask_outline and not ax.mask_item.isVisible()
    qtbot.mouseClick(row.remove, QtCore.Qt.MouseButton.LeftButton)
    settle(qtbot)
    assert s.maps == [] and [r.key for r in layers.rows] == ["relevance", "mask"] and not item.isVisible()


def test_automatic_zbox_bounds_show_the_numbers_in_use(make_main_window, qtbot, tmp_path):
    """Item 12 for a card without input_range: the engine takes the input's min/max; say which."""
    # without input_range and with an unclipped window the card names no range at all
    card = (demo_paths().model3d).read_text().replace("input_range = [0.0, 1.0]\n", "").replace(
        "clip = true", "clip = false")
    weights = (demo_paths().model3d).parent / "demo3d.safetensors"
    card = card.replace('weights = "demo3d.safetensors"', f'weights = "{weights}"')
    (tmp_path / "no_range.toml").write_text(card)
    w = make_main_window()
    assert w.files.open_scan(str(demo_paths().scan))
    assert w.files.open_model(str(tmp_path / "no_range.toml"))
    wait_final(qtbot, w)
    w.explain_panel.root.child("preset").setValue("epsilon-gamma-box")
    wait_final(qtbot, w)
    lo, hi = w.session.prediction.input_values
    params = w.explain_panel.root.child("params")
    assert params.child("low").opts["title"] == f"ZBox lower bound (auto: {lo:.4g})"
    assert params.child("high").opts["title"] == f"ZBox upper bound (auto: {hi:.4g})"
    assert lo < 0.0 < hi  # background noise below zero: not the [0, 1] of the clipped card
    x, _ = w.session.model.prepare(w.session.scan)
    assert (lo, hi) == (float(x.min()), float(x.max()))


def test_view_toggles_reach_the_comparison_panels(demo, qtbot):
    demo.toggle_comparison()
    qtbot.waitUntil(lambda: len(demo.comparison.panels) == 2, timeout=10000)
    settle(qtbot)
    view = demo.comparison.panels[1].view
    assert view.crosshair.gap()[0] > 0 and view.mask_item.isVisible()
    demo.session.set_view(crosshair_gap=False, mask_opacity=0.4)
    settle(qtbot)
    assert view.crosshair.gap() == (0.0, 0.0)
    assert view.mask_item.lut is not None and view.mask_item.lut[1, 3] == round(255 * 0.4)
