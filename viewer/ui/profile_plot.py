"""Relevance per slice along the current axis: where in the volume the evidence sits.

Positive relevance summed per slice is drawn above zero, negative below, with the current
slice marked, so a user scrolling the views sees which slices carry the decision.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

AXIS_NAMES = ("sagittal (R–L)", "coronal (A–P)", "axial (S–I)")


class SliceAxis(pg.AxisItem):
    """An axis of slice numbers: integer ticks only (a 5-slice volume has no slice 2.5)."""

    def tickValues(self, minVal, maxVal, size):  # noqa: N802 - pyqtgraph's API
        levels = []
        for spacing, values in super().tickValues(minVal, maxVal, size):
            if spacing < 1:
                continue
            ints = [v for v in values if abs(v - round(v)) < 1e-9]
            levels.append((spacing, ints))
        if not levels:  # zoomed in below one slice per tick: every slice
            lo, hi = int(np.ceil(minVal)), int(np.floor(maxVal))
            levels = [(1.0, [float(v) for v in range(lo, hi + 1)])]
        return levels

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        return [str(int(round(v))) for v in values]


class ProfilePlot(pg.PlotWidget):
    """Positive and negative relevance per slice, with a movable current-slice marker.

    A click anywhere on the plot, or dragging the marker, emits :attr:`sliceRequested`
    so the plot doubles as a slice slider. Slices are numbered from 0, as everywhere.
    """

    sliceRequested = QtCore.Signal(int, int)  # axis, index

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        # No context menu, and never build one: creating pyqtgraph's ViewBoxMenu only to
        # delete it again (setMenuEnabled(False)) crashed a long Qt test run in CI.
        super().__init__(parent, enableMenu=False, axisItems={"bottom": SliceAxis("bottom")})
        self.setMinimumHeight(90)
        self.showGrid(x=True, y=True, alpha=0.2)
        self.setLabel("left", "Σ relevance")
        self.getPlotItem().addLegend(offset=(-6, 6), labelTextSize="8pt")
        self.positive = self.plot([], [], pen=pg.mkPen((230, 70, 60), width=2), name="positive",
                                  fillLevel=0, brush=(230, 70, 60, 60))
        self.negative = self.plot([], [], pen=pg.mkPen((70, 120, 240), width=2), name="negative",
                                  fillLevel=0, brush=(70, 120, 240, 60))
        self.marker = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen((255, 215, 0), width=1))
        self.addItem(self.marker, ignoreBounds=True)
        self.marker.sigPositionChangeFinished.connect(self._on_marker)
        self.scene().sigMouseClicked.connect(self._on_click)
        self.axis = 2
        self._count = 0

    def set_profile(self, axis: int, positive: np.ndarray | None, negative: np.ndarray | None) -> None:
        """Show a profile (or clear the plot when there is none)."""
        self.axis = int(axis)
        self.setLabel("bottom", f"slice ({AXIS_NAMES[self.axis]})")
        if positive is None or negative is None:
            self.positive.setData([], [])
            self.negative.setData([], [])
            self._count = 0
            return
        x = np.arange(len(positive))
        self._count = len(positive)
        self.positive.setData(x, np.asarray(positive, dtype=np.float64))
        self.negative.setData(x, np.asarray(negative, dtype=np.float64))
        self.marker.setBounds((0, max(self._count - 1, 0)))

    def set_slice(self, index: int) -> None:
        self.marker.blockSignals(True)
        self.marker.setPos(int(index))
        self.marker.blockSignals(False)

    def _on_marker(self) -> None:
        if self._count:
            self.sliceRequested.emit(self.axis, int(round(self.marker.value())))

    def _on_click(self, ev) -> None:
        """A left click on the plot moves to the slice under the pointer."""
        if ev.button() != QtCore.Qt.MouseButton.LeftButton or not self._count:
            return
        vb = self.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        x = vb.mapSceneToView(ev.scenePos()).x()
        index = int(np.clip(round(x), 0, self._count - 1))
        ev.accept()
        self.set_slice(index)
        self.sliceRequested.emit(self.axis, index)



def release_plot_menus(view: pg.GraphicsView) -> None:
    """Delete the parentless context menus of every PlotItem in a graphics view now.

    pyqtgraph creates a plot's "Plot Options" menus and its ViewBox menu without a Qt
    parent (ColorBarItem is a PlotItem too), so they would outlive the window as hidden
    top-level widgets until Python's garbage collector happens to free their owners.
    """
    for item in view.scene().items():
        if not isinstance(item, pg.PlotItem):
            continue
        vb = item.getViewBox()
        menus = [getattr(item, "ctrlMenu", None), getattr(vb, "menu", None), *getattr(item, "subMenus", [])]
        for menu in menus:
            if menu is not None:
                menu.deleteLater()
        item.subMenus = []
        item.ctrlMenu = None
        vb.menu = None
