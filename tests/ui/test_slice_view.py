"""SliceView and ViewsGrid on small synthetic volumes: which slice, which way round, how big."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore

from viewer.ui.colorbar import LUT_SIZE, overlay_lut
from viewer.ui.slice_view import SliceView
from viewer.ui.views_grid import ViewsGrid

SHAPE = (20, 16, 12)


def volume(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=SHAPE).astype(np.float32)


@pytest.fixture
def grid(qtbot):
    g = ViewsGrid()
    qtbot.addWidget(g)
    g.resize(600, 600)
    g.show()
    return g


def test_each_view_shows_its_plane_of_the_overlay(grid):
    data, rel = volume(0), volume(1)
    grid.set_scan(data, (1.0, 1.5, 3.0), planar=False, radiological=True)
    grid.set_overlay(rel)
    grid.set_cursor((4, 7, 9))
    v = grid.views
    np.testing.assert_array_equal(v["axial"].overlay_slice(), rel[:, :, 9])
    np.testing.assert_array_equal(v["coronal"].overlay_slice(), rel[:, 7, :])
    np.testing.assert_array_equal(v["sagittal"].overlay_slice(), rel[4, :, :])
    np.testing.assert_array_equal(v["axial"].scan_item.image, data[:, :, 9])
    assert [v[n].slice_index for n in ("axial", "coronal", "sagittal")] == [9, 7, 4]


def test_physical_aspect_and_crosshair_position_in_millimetres(grid):
    grid.set_scan(volume(), (1.0, 1.5, 3.0), planar=False, radiological=True)
    grid.set_cursor((4, 7, 9))
    cor = grid.views["coronal"]
    tr = cor.scan_item.transform()
    assert (tr.m11(), tr.m22()) == (1.0, 3.0)  # axis 0 at 1 mm, axis 2 at 3 mm per voxel
    assert cor.crosshair.position() == pytest.approx((4.5 * 1.0, 9.5 * 3.0))


def test_radiological_mirrors_and_letters(grid):
    grid.set_scan(volume(), (1, 1, 1), planar=False, radiological=True)
    ax = grid.views["axial"]
    assert ax.vb.xInverted() and [t.toPlainText() for t in ax._letters] == ["R", "L", "A", "P"]
    grid.set_radiological(SHAPE, (1, 1, 1), planar=False, radiological=False)
    assert not ax.vb.xInverted() and [t.toPlainText() for t in ax._letters] == ["L", "R", "A", "P"]
    sag = grid.views["sagittal"]
    assert sag.vb.xInverted() and [t.toPlainText() for t in sag._letters] == ["A", "P", "S", "I"]


def test_planar_image_is_a_single_unmirrored_view_without_letters(grid):
    data = np.arange(30 * 20, dtype=np.float32).reshape(30, 20, 1)
    grid.set_scan(data, (1, 1, 1), planar=True, radiological=True)
    ax = grid.views["axial"]
    assert grid.single and not grid.views["coronal"].isVisible()
    assert not ax.vb.xInverted() and all(t.toPlainText() == "" for t in ax._letters)
    np.testing.assert_array_equal(ax.scan_item.image, data[:, :, 0])


def test_click_requests_the_voxel_under_the_pointer(grid, qtbot):
    grid.set_scan(volume(), (2.0, 2.0, 2.0), planar=False, radiological=False)
    grid.set_cursor((0, 0, 5))
    with qtbot.waitSignal(grid.cursorRequested) as sig:
        grid.views["axial"].vb.sigPointer.emit(QtCore.QPointF(2.0 * 7 + 0.3, 2.0 * 3 + 1.9))
    assert sig.args[0] == (7, 3, 5)


def test_wheel_and_keys_step_slices_along_the_view_axis(grid, qtbot):
    grid.set_scan(volume(), (1, 1, 1), planar=False, radiological=True)
    steps = []
    grid.sliceStepped.connect(lambda axis, step: steps.append((axis, step)))
    cor = grid.views["coronal"]
    cor.setFocus()
    qtbot.keyClick(cor, QtCore.Qt.Key.Key_PageUp)
    qtbot.keyClick(cor, QtCore.Qt.Key.Key_Down)
    cor.vb.sigSliceStep.emit(1)
    assert steps == [(1, 10), (1, -1), (1, 1)]


def test_mask_outline_is_the_border_of_the_slice_only(grid):
    mask = np.zeros(SHAPE, bool)
    mask[5:10, 4:9, 3:8] = True  # 5 x 5 square on axial slices 3..7
    grid.set_scan(volume(), (1, 1, 1), planar=False, radiological=True)
    grid.set_mask(mask)
    grid.set_cursor((0, 0, 5))
    outline = grid.views["axial"].mask_item.image
    assert outline.sum() == 16  # a 5 x 5 square's border
    grid.set_cursor((0, 0, 0))
    assert grid.views["axial"].mask_item.image.sum() == 0


def test_overlay_lut_hides_zero_threshold_and_unwanted_sign():
    lut = overlay_lut("bwr", opacity=0.5, threshold=0.2, sign="both")
    centres = 2 * (np.arange(LUT_SIZE) + 0.5) / LUT_SIZE - 1
    assert (lut[np.abs(centres) < 0.2, 3] == 0).all()
    assert lut[-1, 3] == round(255 * 0.5) and lut[0, 3] == round(255 * 0.5)
    assert tuple(lut[-1, :3]) == (255, 0, 0) and tuple(lut[0, :3]) == (0, 0, 255)
    pos = overlay_lut("bwr", opacity=1.0, sign="positive")
    assert (pos[centres < 0, 3] == 0).all() and pos[-1, 3] == 255
    neg = overlay_lut("bwr", opacity=1.0, sign="negative")
    assert (neg[centres > 0, 3] == 0).all() and neg[0, 3] == 255
    assert overlay_lut(threshold=0.0)[LUT_SIZE // 2, 3] == 0  # zero relevance never tints


def test_overlay_indices_follow_the_limit(qtbot):
    view = SliceView("axial")
    qtbot.addWidget(view)
    view.set_geometry(SHAPE, (1, 1, 1))
    rel = volume()
    view.set_overlay_style(overlay_lut(), 0.25, True)
    view.set_overlay(rel)
    view.set_cursor((0, 0, 3))
    drawn = view.overlay_item.image
    expected = np.clip(np.floor(rel[:, :, 3] / 0.25 * 128 + 128), 0, 255)
    np.testing.assert_array_equal(drawn, expected)
    np.testing.assert_array_equal(view.overlay_slice(), rel[:, :, 3])
    view.set_overlay_style(overlay_lut(), 0.5, False)  # new limit: re-quantised
    np.testing.assert_array_equal(view.overlay_item.image, np.clip(np.floor(rel[:, :, 3] / 0.5 * 128 + 128), 0, 255))
    assert not view.overlay_item.isVisible()


def test_outline_matches_morphological_border():
    from scipy import ndimage

    from viewer.ui.slice_view import outline

    rng = np.random.default_rng(3)
    m = ndimage.binary_opening(rng.random((40, 30)) > 0.4)
    expected = m & ~ndimage.binary_erosion(m)
    np.testing.assert_array_equal(outline(m).astype(bool), expected)
