"""A crosshair that leaves its centre open, so it never covers the voxel it points at.

Full lines through the cursor hide exactly what a reader is looking at (a small lesion
under the crosshair). Like ITK-SNAP's and FSLeyes' cursors, the lines stop a few screen
pixels short of the centre. The gap is measured in screen pixels, not millimetres, so it
stays the same size whatever the zoom; it is recomputed when the view's range changes.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtGui, QtWidgets

GAP_PX = 9.0  # half-gap around the centre, in screen pixels


class Crosshair:
    """Two lines through ``(x, y)`` (view millimetres) across ``bounds``, gapped at the centre.

    Drawn as one plain path item of four segments (a QGraphicsPathItem paints in a
    third of the time of a plot curve), added to a ViewBox without affecting its
    auto-range.
    """

    def __init__(self, vb: pg.ViewBox, pen, z: float = 30.0) -> None:
        self.vb = vb
        self.item = QtWidgets.QGraphicsPathItem()
        self.item.setPen(pen)
        self.item.setZValue(z)
        vb.addItem(self.item, ignoreBounds=True)
        self.xs = self.ys = np.zeros(8)
        self.x = self.y = 0.0
        self.bounds = (0.0, 1.0, 0.0, 1.0)  # x0, x1, y0, y1
        self.gap_enabled = True
        # the transform signal follows the range change (the range signal comes before the
        # new transform exists), so the gap is sized for the zoom actually on screen
        vb.sigTransformChanged.connect(lambda *_: self._draw())
        vb.sigResized.connect(lambda *_: self._draw())

    def set_bounds(self, width: float, height: float) -> None:
        self.bounds = (0.0, float(width), 0.0, float(height))
        self._draw()

    def set_position(self, x: float, y: float) -> None:
        self.x, self.y = float(x), float(y)
        self._draw()

    def position(self) -> tuple[float, float]:
        return self.x, self.y

    def set_gap(self, enabled: bool) -> None:
        self.gap_enabled = bool(enabled)
        self._draw()

    def setVisible(self, visible: bool) -> None:  # noqa: N802 - reads like the Qt items beside it
        self.item.setVisible(visible)

    def isVisible(self) -> bool:  # noqa: N802
        return self.item.isVisible()

    def segments(self) -> tuple[np.ndarray, np.ndarray]:
        """x and y of the four segments' end points (pairs: left, right, bottom, top)."""
        return self.xs, self.ys

    def gap(self) -> tuple[float, float]:
        """Half-gap (horizontal, vertical) in view units for the current zoom."""
        if not self.gap_enabled:
            return 0.0, 0.0
        (x0, x1), (y0, y1) = self.vb.viewRange()
        w, h = self.vb.width(), self.vb.height()
        if w <= 0 or h <= 0:
            return 0.0, 0.0
        return GAP_PX * abs(x1 - x0) / w, GAP_PX * abs(y1 - y0) / h

    def _draw(self) -> None:
        x0, x1, y0, y1 = self.bounds
        gx, gy = self.gap()
        x, y = self.x, self.y
        self.xs = np.asarray([x0, max(x0, x - gx), min(x1, x + gx), x1, x, x, x, x], dtype=float)
        self.ys = np.asarray([y, y, y, y, y0, max(y0, y - gy), min(y1, y + gy), y1], dtype=float)
        path = QtGui.QPainterPath()
        for k in range(0, 8, 2):
            path.moveTo(self.xs[k], self.ys[k])
            path.lineTo(self.xs[k + 1], self.ys[k + 1])
        self.item.setPath(path)
