"""The mouse gestures of a slice view: what each button and the wheel do.

A plot's ViewBox pans on left drag and zooms on the wheel; a slice viewer's left button
places the crosshair, the wheel steps through slices, and the right button sets the
grey-value window (as in ITK-SNAP and most PACS viewers). Ctrl+wheel still zooms and the
middle button pans.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore


class SliceViewBox(pg.ViewBox):
    """A ViewBox whose mouse gestures suit a slice viewer rather than a plot."""

    sigPointer = QtCore.Signal(object)  # QPointF in view (millimetre) coordinates
    sigWindowDrag = QtCore.Signal(float, float, bool)  # dx, dy since press (px), is_start
    sigSliceStep = QtCore.Signal(int)

    def __init__(self) -> None:
        super().__init__(lockAspect=True, enableMenu=False, invertY=False)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (Qt naming)
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            self.sigPointer.emit(self.mapToView(ev.pos()))
        else:
            ev.accept()

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802
        button = ev.button()
        if button == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            self.sigPointer.emit(self.mapToView(ev.pos()))
        elif button == QtCore.Qt.MouseButton.MiddleButton:
            super().mouseDragEvent(ev, axis)
        elif button == QtCore.Qt.MouseButton.RightButton:
            ev.accept()
            d = ev.screenPos() - ev.buttonDownScreenPos(button)
            self.sigWindowDrag.emit(float(d.x()), float(d.y()), bool(ev.isStart()))
        else:
            ev.ignore()

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: N802
        if ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        ev.accept()
        delta = ev.delta()
        if delta:
            self.sigSliceStep.emit(1 if delta > 0 else -1)
