"""Relevance per slice along the current axis: where in the volume the evidence sits.

Positive relevance summed per slice is drawn above zero, negative below, with the current
slice marked, so a user scrolling the views sees which slices carry the decision.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

AXIS_NAMES = ("sagittal (R–L)", "coronal (A–P)", "axial (S–I)")


class ProfilePlot(pg.PlotWidget):
    """Positive and negative relevance per slice, with a movable current-slice marker.

    Dragging the marker emits :attr:`sliceRequested` so the plot doubles as a slice slider.
    """

    sliceRequested = QtCore.Signal(int, int)  # axis, index

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        # No context menu, and never build one: creating pyqtgraph's ViewBoxMenu only to
        # delete it again (setMenuEnabled(False)) crashed a long Qt test run in CI.
        super().__init__(parent, enableMenu=False)
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
