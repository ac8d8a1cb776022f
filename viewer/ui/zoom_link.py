"""Linked zoom: when one slice view is zoomed, the others take the same scale.

The three planes show different extents (axial R–L × A–P, sagittal A–P × S–I), so their
ranges cannot simply be linked as a plot's axes are; what readers expect (ITK-SNAP's
"sync zoom") is one scale — millimetres per screen pixel — in every view, each staying
centred where it was. Only user zooms are propagated (``sigRangeChangedManually``), so
programmatic resets and the propagation itself do not echo back.
"""

from __future__ import annotations

from typing import Iterable

from PySide6 import QtCore

from viewer.ui.slice_view import SliceView


class ZoomLink:
    """Propagates the scale of a manually zoomed view to the other views while enabled."""

    def __init__(self, views: Iterable[SliceView]) -> None:
        self.views = list(views)
        self.enabled = False
        self._busy = False
        for v in self.views:
            v.vb.sigRangeChangedManually.connect(lambda _mask, src=v: self._on_zoom(src))

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = bool(enabled)

    def _on_zoom(self, source: SliceView) -> None:
        if not self.enabled or self._busy:
            return
        self.apply_scale(source)

    def apply_scale(self, source: SliceView) -> None:
        """Give every other visible view ``source``'s millimetres per pixel, about its own centre."""
        (x0, x1), _ = source.vb.viewRange()
        width_px = max(source.vb.width(), 1.0)
        scale = abs(x1 - x0) / width_px
        self._busy = True
        try:
            for v in self.views:
                if v is source or not v.isVisible():
                    continue
                (a0, a1), (b0, b1) = v.vb.viewRange()
                cx, cy = (a0 + a1) / 2, (b0 + b1) / 2
                w, h = scale * max(v.vb.width(), 1.0), scale * max(v.vb.height(), 1.0)
                v.vb.setRange(QtCore.QRectF(cx - w / 2, cy - h / 2, w, h), padding=0)
        finally:
            self._busy = False


def scale_of(view: SliceView) -> float:
    """Millimetres per screen pixel across ``view`` (for tests and the status line)."""
    (x0, x1), _ = view.vb.viewRange()
    return abs(x1 - x0) / max(view.vb.width(), 1.0)
