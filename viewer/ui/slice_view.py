"""One slice of a volume on screen: scan, relevance overlay, mask outline, crosshair.

Everything drawn is a pyqtgraph item on the default (non-OpenGL) path. The view only
slices arrays it is given; colours for the signed overlay come from a lookup table with
an alpha channel (threshold, sign and opacity are baked into the table), so scrolling
re-renders one slice through pyqtgraph's LUT path without recomputing anything per map.

Mouse: left click/drag moves the crosshair, middle drag pans, right drag adjusts the
window (horizontal = width, vertical = level), the wheel changes slice and Ctrl+wheel
zooms. Keyboard (when focused): arrows and Page Up/Down change slice.

Voxel indices are 0-based everywhere on screen (slice label, status bar), as in numpy,
nibabel and the exported files, so the number a reader sees is the number a script uses.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from viewer.io.view_geometry import ViewGeometry, view_geometry
from viewer.ui.colorbar import LUT_SIZE, overlay_indices
from viewer.ui.crosshair import Crosshair
from viewer.ui.slice_viewbox import SliceViewBox

CROSSHAIR_PEN = pg.mkPen((255, 215, 0, 170), width=1)
OUTLINE_RGB = (0, 255, 120)
AXIS_LETTERS = "ijk"


def outline_lut(opacity: float = 1.0) -> np.ndarray:
    """Two-entry table of the mask outline: transparent outside, green on the border."""
    alpha = int(round(255 * float(np.clip(opacity, 0.0, 1.0))))
    return np.array([[0, 0, 0, 0], [*OUTLINE_RGB, alpha]], dtype=np.uint8)


OUTLINE_LUT = outline_lut()


_DISPLAY_COPY: list = [None, None]  # [source array, its Fortran-ordered copy]


def display_volume(volume: np.ndarray) -> np.ndarray:
    """The volume with axial planes contiguous (Fortran order), shared by all views.

    Scans arrive in C order, where an axial slice ``[:, :, k]`` is strided through the
    whole volume: drawing it costs 5–20 ms on a 512² slice against ~1 ms for a contiguous
    one. One copy per opened scan buys smooth scrolling (the cost is memory: one more
    copy of the scan while it is open).
    """
    if volume.flags.f_contiguous:
        return volume
    if _DISPLAY_COPY[0] is not volume:
        _DISPLAY_COPY[0], _DISPLAY_COPY[1] = volume, np.asfortranarray(volume)
    return _DISPLAY_COPY[1]


def outline(inside: np.ndarray) -> np.ndarray:
    """uint8 image, 1 on the border pixels of a boolean slice (inside, next to outside).

    Four shifted comparisons instead of a morphological erosion: a few array passes on
    one slice, cheap enough to run on every slice change.
    """
    out = np.zeros(inside.shape, dtype=np.uint8)
    if not inside.any():
        return out
    interior = inside.copy()
    interior[1:, :] &= inside[:-1, :]
    interior[:-1, :] &= inside[1:, :]
    interior[:, 1:] &= inside[:, :-1]
    interior[:, :-1] &= inside[:, 1:]
    interior[0, :] = interior[-1, :] = False
    interior[:, 0] = interior[:, -1] = False
    np.copyto(out, 1, where=inside & ~interior)
    return out


def plane(volume: np.ndarray, geometry: ViewGeometry, index: int) -> np.ndarray:
    """Slice ``index`` of a 3D array as (horizontal, vertical) — a view, no copy."""
    idx: list = [slice(None)] * 3
    idx[geometry.slice_axis] = int(index)
    plane = volume[tuple(idx)]
    return plane if geometry.h_axis < geometry.v_axis else plane.T


class SliceView(pg.GraphicsView):
    """A single plane (axial, coronal, sagittal or planar) of the open volume.

    Signals carry full voxel indices ``(i, j, k)`` so the owner does not need to know
    which plane the view shows.
    """

    cursorRequested = QtCore.Signal(object)  # tuple[int, int, int]
    hovered = QtCore.Signal(object)  # tuple[int, int, int] or None
    sliceStepped = QtCore.Signal(int)
    windowDragged = QtCore.Signal(float, float, bool)
    activated = QtCore.Signal()

    def __init__(self, name: str = "axial", parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, background="k")
        self.name = name
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(120, 120)
        self.vb = SliceViewBox()
        self.setCentralItem(self.vb)

        self.scan_item = pg.ImageItem(axisOrder="col-major")
        self.overlay_item = pg.ImageItem(axisOrder="col-major")
        self.mask_item = pg.ImageItem(axisOrder="col-major")
        for z, item in enumerate((self.scan_item, self.overlay_item, self.mask_item)):
            item.setZValue(z * 10)
            self.vb.addItem(item)
        self.crosshair = Crosshair(self.vb, CROSSHAIR_PEN, z=30)
        self.map_items: list[pg.ImageItem] = []  # maps from files, above the relevance

        self._letters = [pg.TextItem("", color=(255, 200, 80), anchor=a) for a in
                         ((0, 0.5), (1, 0.5), (0.5, 0), (0.5, 1))]
        self._info = pg.TextItem("", color=(200, 200, 200), anchor=(0, 0))
        for t in (*self._letters, self._info):
            t.setParentItem(self.vb)
            t.setZValue(40)
        self.vb.sigResized.connect(self._place_labels)

        self.vb.sigPointer.connect(self._on_pointer)
        self.vb.sigSliceStep.connect(self.sliceStepped)
        self.vb.sigWindowDrag.connect(self.windowDragged)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)

        self.planar = False
        self.orient: ViewGeometry = view_geometry(name)
        self.shape: tuple[int, int, int] = (1, 1, 1)
        self.spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
        self.cursor: tuple[int, int, int] = (0, 0, 0)
        self._volume: np.ndarray | None = None
        self._overlay: np.ndarray | None = None
        self._overlay_idx: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._levels: tuple[float, float] = (0.0, 1.0)
        self._overlay_lut: np.ndarray | None = None
        self._overlay_limit = 1.0
        self._drawn_index: int | None = None
        self._outline_enabled = True
        self._outline_lut = OUTLINE_LUT
        self._maps: list[tuple[np.ndarray, np.ndarray]] = []  # (LUT indices, lut) per map
        self._hover_point: QtCore.QPointF | None = None
        self._compact = False

    # -- geometry ----------------------------------------------------------------
    def set_geometry(self, shape, spacing, planar: bool = False, radiological: bool = True) -> None:
        """Adopt a volume's shape and voxel size; mirrors and letters follow the convention."""
        self.shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
        self.spacing = tuple(float(s) if s and s > 0 else 1.0 for s in spacing)  # type: ignore[assignment]
        self.planar = bool(planar)
        self.orient = view_geometry("axial" if planar else self.name, radiological=radiological, planar=planar)
        o = self.orient
        tr = QtGui.QTransform.fromScale(self.spacing[o.h_axis], self.spacing[o.v_axis])
        for item in (self.scan_item, self.overlay_item, self.mask_item, *self.map_items):
            item.setTransform(tr)
        self.crosshair.set_bounds(self.shape[o.h_axis] * self.spacing[o.h_axis],
                                  self.shape[o.v_axis] * self.spacing[o.v_axis])
        self._hover_point = None
        self.vb.invertX(o.flip_h)
        for t, text in zip(self._letters, o.letters):
            t.setText(text)
        self._drawn_index = None
        self.reset_view()

    def reset_view(self) -> None:
        o = self.orient
        w = self.shape[o.h_axis] * self.spacing[o.h_axis]
        h = self.shape[o.v_axis] * self.spacing[o.v_axis]
        self.vb.setRange(QtCore.QRectF(0, 0, w, h), padding=0.02)

    @property
    def slice_index(self) -> int:
        return int(self.cursor[self.orient.slice_axis])

    @property
    def slice_count(self) -> int:
        return int(self.shape[self.orient.slice_axis])

    # -- content -------------------------------------------------------------------
    def set_volume(self, volume: np.ndarray | None) -> None:
        self._volume = None if volume is None else display_volume(volume)
        self._drawn_index = None
        if volume is None:
            self.scan_item.clear()
        self._redraw()

    def set_levels(self, low: float, high: float) -> None:
        self._levels = (float(low), float(high))
        self.scan_item.setLevels(self._levels)

    def set_overlay(self, volume: np.ndarray | None) -> None:
        """The signed relevance on the scan's grid (or None to remove it)."""
        self._overlay = volume
        self._overlay_idx = None if volume is None else overlay_indices(volume, self._overlay_limit)
        if volume is None:
            self.overlay_item.clear()
        self._drawn_index = None
        self._redraw()

    def set_overlay_style(self, lut: np.ndarray, limit: float, visible: bool = True) -> None:
        """Colours (``(n, 4)`` uint8 with alpha) over the symmetric range ``[-limit, limit]``."""
        self._overlay_lut = lut
        limit = float(limit) if limit and limit > 0 else 1.0
        self.overlay_item.setLookupTable(lut)
        self.overlay_item.setVisible(visible)
        if limit != self._overlay_limit:
            self._overlay_limit = limit
            if self._overlay is not None:
                self._overlay_idx = overlay_indices(self._overlay, limit)
                self._drawn_index = None
                self._redraw()

    def set_mask(self, mask: np.ndarray | None) -> None:
        self._mask = None if mask is None else np.asfortranarray(np.asarray(mask) > 0)
        if mask is None:
            self.mask_item.clear()
        self._drawn_index = None
        self._redraw()

    def set_outline_visible(self, visible: bool, opacity: float = 1.0) -> None:
        self._outline_enabled = visible
        self.mask_item.setVisible(visible)
        lut = outline_lut(opacity)
        if not np.array_equal(lut, self._outline_lut):
            self._outline_lut = lut
            if self._mask is not None and self.mask_item.image is not None:
                self.mask_item.setLookupTable(lut)

    def set_maps(self, maps: list[tuple[np.ndarray, np.ndarray, float, bool]]) -> None:
        """Signed maps from files drawn above the relevance: ``(volume, lut, limit, visible)`` each."""
        while len(self.map_items) < len(maps):
            item = pg.ImageItem(axisOrder="col-major")
            item.setZValue(15 + len(self.map_items))
            item.setTransform(self.scan_item.transform())
            self.vb.addItem(item)
            self.map_items.append(item)
        for item in self.map_items[len(maps):]:
            item.clear()
            item.setVisible(False)
        self._maps = [(overlay_indices(volume, limit), lut) for volume, lut, limit, _visible in maps]
        for item, (_v, _lut, _limit, visible) in zip(self.map_items, maps):
            item.setVisible(bool(visible))
        self._drawn_index = None
        self._redraw()

    def set_crosshair_visible(self, visible: bool) -> None:
        self.crosshair.setVisible(visible)

    def set_crosshair_gap(self, enabled: bool) -> None:
        self.crosshair.set_gap(enabled)

    def set_cursor(self, ijk) -> None:
        """Move the crosshair; re-slice only when this view's own slice changed."""
        self.cursor = tuple(int(v) for v in ijk)  # type: ignore[assignment]
        o = self.orient
        self.crosshair.set_position((self.cursor[o.h_axis] + 0.5) * self.spacing[o.h_axis],
                                    (self.cursor[o.v_axis] + 0.5) * self.spacing[o.v_axis])
        if self._drawn_index != self.slice_index:
            self._redraw()

    def overlay_slice(self) -> np.ndarray | None:
        """The relevance (float) slice the overlay item currently draws."""
        if self._overlay is None or self.overlay_item.image is None:
            return None
        return plane(self._overlay, self.orient, self._drawn_index or 0)

    # -- drawing -------------------------------------------------------------------
    def _redraw(self) -> None:
        o = self.orient
        k = min(max(self.slice_index, 0), max(self.slice_count - 1, 0))
        if self._volume is not None:
            self.scan_item.setImage(plane(self._volume, o, k), autoLevels=False, levels=self._levels)
        if self._overlay_idx is not None:
            kw = {"levels": (0, LUT_SIZE)}
            if self._overlay_lut is not None:
                kw["lut"] = self._overlay_lut
            self.overlay_item.setImage(plane(self._overlay_idx, o, k), autoLevels=False, **kw)
        if self._mask is not None:
            self.mask_item.setImage(outline(plane(self._mask, o, k)), autoLevels=False, levels=(0, 2),
                                    lut=self._outline_lut)
        for item, (idx, lut) in zip(self.map_items, self._maps):
            item.setImage(plane(idx, o, k), autoLevels=False, levels=(0, LUT_SIZE), lut=lut)
        self._drawn_index = self.slice_index
        if self._volume is not None:
            self._info.setText(self.slice_label(k, compact=self._compact))

    def slice_label(self, k: int | None = None, compact: bool = False) -> str:
        """"Axial  k = 27 of 0–47": the slice as a 0-based index, like the status bar's voxel
        (``compact``: "k = 27 (0–47)", for views too narrow for the long form)."""
        label = "Image" if self.planar else self.orient.name.capitalize()
        if self.slice_count <= 1:
            return label
        k = self.slice_index if k is None else k
        letter = AXIS_LETTERS[self.orient.slice_axis]
        if compact:
            return f"{letter} = {k} (0–{self.slice_count - 1})"
        return f"{label}  {letter} = {k} of 0–{self.slice_count - 1}"

    def _place_labels(self) -> None:
        r = self.vb.boundingRect()
        w, h = r.width(), r.height()
        left, right, top, bottom = self._letters
        left.setPos(4, h / 2)
        right.setPos(w - 4, h / 2)
        top.setPos(w / 2, 2)
        bottom.setPos(w / 2, h - 2)
        self._info.setPos(4, 2)
        compact = w < 320  # the long label would run into the orientation letter at the top
        if compact != self._compact:
            self._compact = compact
            if self._volume is not None:
                self._info.setText(self.slice_label(compact=compact))

    # -- input ---------------------------------------------------------------------
    def voxel_at(self, point: QtCore.QPointF) -> tuple[int, int, int] | None:
        """The voxel under a point in view (millimetre) coordinates, or None outside."""
        o = self.orient
        a = int(np.floor(point.x() / self.spacing[o.h_axis]))
        b = int(np.floor(point.y() / self.spacing[o.v_axis]))
        if not (0 <= a < self.shape[o.h_axis] and 0 <= b < self.shape[o.v_axis]):
            return None
        ijk = list(self.cursor)
        ijk[o.h_axis] = a
        ijk[o.v_axis] = b
        return tuple(ijk)  # type: ignore[return-value]

    def _on_pointer(self, point: QtCore.QPointF) -> None:
        self.setFocus()
        self.activated.emit()
        o = self.orient
        a = int(np.clip(np.floor(point.x() / self.spacing[o.h_axis]), 0, self.shape[o.h_axis] - 1))
        b = int(np.clip(np.floor(point.y() / self.spacing[o.v_axis]), 0, self.shape[o.v_axis] - 1))
        ijk = list(self.cursor)
        ijk[o.h_axis] = a
        ijk[o.v_axis] = b
        self.cursorRequested.emit(tuple(ijk))

    def _on_mouse_moved(self, scene_pos) -> None:
        if not self.vb.sceneBoundingRect().contains(scene_pos):
            self._hover_point = None
            self.hovered.emit(None)
            return
        self._hover_point = self.vb.mapSceneToView(scene_pos)
        self.hovered.emit(self.voxel_at(self._hover_point))

    def hovered_voxel(self) -> tuple[int, int, int] | None:
        """The voxel under the mouse now: the last pointer position on the current slice
        (after a wheel or key step the same point lies on another slice)."""
        if self._hover_point is None:
            return None
        return self.voxel_at(self._hover_point)

    def leaveEvent(self, ev) -> None:  # noqa: N802
        self._hover_point = None
        self.hovered.emit(None)
        super().leaveEvent(ev)

    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:  # noqa: N802
        steps = {
            QtCore.Qt.Key.Key_Up: 1, QtCore.Qt.Key.Key_Right: 1,
            QtCore.Qt.Key.Key_Down: -1, QtCore.Qt.Key.Key_Left: -1,
            QtCore.Qt.Key.Key_PageUp: 10, QtCore.Qt.Key.Key_PageDown: -10,
        }
        step = steps.get(QtCore.Qt.Key(ev.key()))
        if step is None:
            super().keyPressEvent(ev)
            return
        ev.accept()
        self.activated.emit()
        self.sliceStepped.emit(step)

    def mousePressEvent(self, ev) -> None:  # noqa: N802
        self.activated.emit()
        super().mousePressEvent(ev)
