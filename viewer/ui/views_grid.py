"""The axial, coronal and sagittal views of one volume, arranged in a chosen layout.

The grid owns no state of its own beyond which view was used last ("active"): the cursor,
window and overlay come from the session and are pushed into every view. A 2D or planar
scan shows only one view.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets

from viewer.io.view_geometry import VIEWS as ORIENTATIONS
from viewer.ui.slice_view import SliceView
from viewer.ui.zoom_link import ZoomLink

LAYOUTS = ("grid", "one-large", "row")


class ViewsGrid(QtWidgets.QWidget):
    """Three linked :class:`SliceView` s plus an optional extra widget (the profile plot)."""

    cursorRequested = QtCore.Signal(object)  # ijk
    hovered = QtCore.Signal(object)  # ijk or None
    sliceStepped = QtCore.Signal(int, int)  # axis, step
    windowDragged = QtCore.Signal(float, float, bool)
    activeChanged = QtCore.Signal(str)

    def __init__(self, extra: QtWidgets.QWidget | None = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.views: dict[str, SliceView] = {name: SliceView(name) for name in ORIENTATIONS}
        self.extra = extra
        self.active = "axial"
        self.layout_name = "grid"
        self.single = False
        self.hover_view: SliceView | None = None  # the view under the mouse, for the status bar
        self._grid = QtWidgets.QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(3)
        for name, view in self.views.items():
            view.cursorRequested.connect(self.cursorRequested)
            view.hovered.connect(lambda ijk, v=view: self._on_hover(v, ijk))
            view.windowDragged.connect(self.windowDragged)
            view.sliceStepped.connect(lambda step, v=view: self.sliceStepped.emit(v.orient.slice_axis, step))
            view.activated.connect(lambda n=name: self._set_active(n))
        self.zoom_link = ZoomLink(self.views.values())
        self._arrange()

    def _on_hover(self, view: SliceView, ijk) -> None:
        if ijk is not None:
            self.hover_view = view
        elif self.hover_view is view:
            self.hover_view = None
        self.hovered.emit(ijk)

    # -- layout ----------------------------------------------------------------------
    def set_layout(self, name: str) -> None:
        if name not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {name!r}")
        self.layout_name = name
        self._arrange()

    def _arrange(self) -> None:
        while self._grid.count():
            self._grid.takeAt(0)
        for r in range(4):
            self._grid.setRowStretch(r, 0)
            self._grid.setColumnStretch(r, 0)
        g = self._grid
        views = self.views
        if self.single:
            for name, v in views.items():
                v.setVisible(name == "axial")
            g.addWidget(views["axial"], 0, 0)
            if self.extra is not None:  # a per-slice profile of one slice says nothing
                self.extra.setVisible(False)
            return
        for v in views.values():
            v.setVisible(True)
        if self.extra is not None:
            self.extra.setVisible(True)
        if self.layout_name == "grid":
            g.addWidget(views["axial"], 0, 0)
            g.addWidget(views["coronal"], 0, 1)
            g.addWidget(views["sagittal"], 1, 0)
            if self.extra is not None:
                g.addWidget(self.extra, 1, 1)
            g.setRowStretch(0, 1)
            g.setRowStretch(1, 1)
            g.setColumnStretch(0, 1)
            g.setColumnStretch(1, 1)
        elif self.layout_name == "one-large":
            big = self.active
            small = [n for n in ORIENTATIONS if n != big]
            g.addWidget(views[big], 0, 0, 3, 1)
            g.addWidget(views[small[0]], 0, 1)
            g.addWidget(views[small[1]], 1, 1)
            if self.extra is not None:
                g.addWidget(self.extra, 2, 1)
            g.setColumnStretch(0, 3)
            g.setColumnStretch(1, 1)
            for r in range(3):
                g.setRowStretch(r, 1)
        else:  # row
            for c, name in enumerate(ORIENTATIONS):
                g.addWidget(views[name], 0, c)
                g.setColumnStretch(c, 1)
            if self.extra is not None:
                g.addWidget(self.extra, 1, 0, 1, 3)
            g.setRowStretch(0, 3)
            g.setRowStretch(1, 1)

    def _set_active(self, name: str) -> None:
        if name != self.active:
            self.active = name
            if self.layout_name == "one-large":
                self._arrange()
            self.activeChanged.emit(name)

    @property
    def active_view(self) -> SliceView:
        return self.views[self.active]

    # -- content --------------------------------------------------------------------
    def set_scan(self, data: np.ndarray, spacing, planar: bool, radiological: bool) -> None:
        self.hover_view = None  # a position on the old scan means nothing on this one
        single = bool(data.shape[2] == 1)
        if single != self.single:
            self.single = single
            if single:
                self.active = "axial"
            self._arrange()
        for v in self.views.values():
            v.set_geometry(data.shape, spacing, planar=planar, radiological=radiological)
            v.set_volume(data)

    def set_radiological(self, shape, spacing, planar: bool, radiological: bool) -> None:
        for v in self.views.values():
            v.set_geometry(shape, spacing, planar=planar, radiological=radiological)

    def set_levels(self, low: float, high: float) -> None:
        for v in self.views.values():
            v.set_levels(low, high)

    def set_overlay(self, volume: np.ndarray | None) -> None:
        for v in self.views.values():
            v.set_overlay(volume)

    def set_overlay_style(self, lut: np.ndarray, limit: float, visible: bool) -> None:
        for v in self.views.values():
            v.set_overlay_style(lut, limit, visible)

    def set_mask(self, mask: np.ndarray | None) -> None:
        for v in self.views.values():
            v.set_mask(mask)

    def set_cursor(self, ijk) -> None:
        for v in self.views.values():
            if v.isVisible() or not self.single:
                v.set_cursor(ijk)

    def set_crosshair_visible(self, visible: bool) -> None:
        for v in self.views.values():
            v.set_crosshair_visible(visible)

    def set_outline_visible(self, visible: bool, opacity: float = 1.0) -> None:
        for v in self.views.values():
            v.set_outline_visible(visible, opacity)

    def set_maps(self, maps) -> None:
        for v in self.views.values():
            v.set_maps(maps)

    def set_crosshair_gap(self, enabled: bool) -> None:
        for v in self.views.values():
            v.set_crosshair_gap(enabled)

    def reset_views(self) -> None:
        for v in self.views.values():
            v.reset_view()
