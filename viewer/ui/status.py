"""The status bar's readout: which voxel, where in the patient, its value and relevance.

It shows the voxel under the mouse while the mouse is over a view, otherwise the
crosshair's voxel, and it is recomputed from the session whenever anything it shows can
have changed: a new scan (never an index from the old one), a cursor move by click,
wheel or key (the point under the mouse is then on another slice), a new result.
Indices are 0-based, as the slice labels say.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6 import QtWidgets


def _inside(ijk: Any, shape: tuple[int, ...]) -> bool:
    return ijk is not None and len(ijk) == 3 and all(0 <= int(v) < int(n) for v, n in zip(ijk, shape))


class StatusReadout:
    """Keeps a QLabel in step with the session and the pointer."""

    def __init__(self, label: QtWidgets.QLabel, session: Any) -> None:
        self.label = label
        self.session = session
        self.sources: list[Any] = []  # objects with ``hover_view`` (the views grid, the comparison)

    def voxel(self) -> tuple[tuple[int, int, int], str] | None:
        """``(ijk, "mouse" | "cursor")`` of the voxel to describe, always inside the open scan."""
        s = self.session
        scan = s.scan
        if scan is None:
            return None
        for source in self.sources:
            view = getattr(source, "hover_view", None)
            ijk = view.hovered_voxel() if view is not None and view.isVisible() else None
            if _inside(ijk, scan.shape):
                return tuple(int(v) for v in ijk), "mouse"  # type: ignore[return-value]
        c = s.cursor
        if c is not None and _inside(c.ijk, scan.shape):
            return tuple(c.ijk), "cursor"  # type: ignore[return-value]
        return None

    def text(self) -> str:
        s = self.session
        found = self.voxel()
        if found is None:
            return "Open a scan (Ctrl+O) or drop a file here." if s.scan is None else ""
        (i, j, k), where = found
        scan = s.scan
        parts = [f"{where} voxel (i, j, k) = ({i}, {j}, {k}), 0-based"]
        if not scan.planar:
            x, y, z = scan.voxel_to_world(np.asarray((i, j, k), dtype=float))
            parts.append(f"world ({x:.1f}, {y:.1f}, {z:.1f}) mm")
        parts.append(f"value {float(scan.data[i, j, k]):.5g}")
        res = s.result(0) if s.panels else None
        shown = s.graph_overlay() if hasattr(s, "graph_overlay") else None  # a graph node's map on the views
        if shown is not None and shown.on_scan.shape == scan.shape:
            parts.append(f"{shown.label} {float(shown.on_scan[i, j, k]):.4g}")
        elif res is not None and res.on_scan.shape == scan.shape:
            label = "relevance" + (" (preview)" if res.preview else "")
            parts.append(f"{label} {float(res.on_scan[i, j, k]):.4g}")
        return "   ".join(parts)

    def update(self) -> None:
        self.label.setText(self.text())
