"""Colours of the signed relevance overlay: lookup tables with alpha, and the colour bar.

The overlay is drawn by pyqtgraph's ImageItem through a 256-entry lookup table: the
signed map is quantised once per (map, limit) into a uint8 volume of table indices, stored
with the axial plane contiguous, so scrolling only slices bytes and lets Qt apply the
table (no per-slice float arithmetic, no percentile). Opacity, threshold (|R| below a fraction of the limit hidden)
and sign selection are all encoded in the table's alpha column, so changing them never
touches the relevance data and scrolling costs one LUT pass per slice. Colours come from
viewer.io.colormaps, the same tables the figure export uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from viewer.io import colormaps

LUT_SIZE = 256
_INDEX_CACHE: list[tuple[tuple, np.ndarray, np.ndarray]] = []
_INDEX_CACHE_SIZE = 4


def overlay_lut(
    name: str = colormaps.DEFAULT,
    opacity: float = 0.6,
    threshold: float = 0.0,
    sign: str = "both",
    n: int = LUT_SIZE,
) -> np.ndarray:
    """``(n, 4)`` uint8 RGBA table for values spread evenly over ``[-limit, limit]``.

    Entry ``k`` covers the value interval centred on ``(2 (k + 0.5) / n - 1) limit``
    (see :func:`overlay_indices`). The two central entries (|R| < 2 limit / n) are always
    transparent so that zero relevance (outside the
    body, or a method's empty regions) never tints the scan; above that, alpha rises
    linearly to ``opacity`` at half the limit.
    """
    rgb = colormaps.lut(name, n)
    centres = (2.0 * (np.arange(n) + 0.5) / n - 1.0)
    visible = np.abs(centres) > max(float(threshold), 1.0 / n)
    if sign == "positive":
        visible &= centres > 0
    elif sign == "negative":
        visible &= centres < 0
    elif sign != "both":
        raise ValueError(f"sign must be 'both', 'positive' or 'negative', got {sign!r}")
    table = np.empty((n, 4), dtype=np.uint8)
    table[:, :3] = rgb
    # alpha grows with |R| up to half the limit, so faint relevance fades into the scan
    # instead of veiling it (with white-centred maps a constant alpha greys the whole image)
    ramp = np.clip(2.0 * np.abs(centres), 0.0, 1.0)
    alpha = np.round(255 * float(np.clip(opacity, 0.0, 1.0)) * ramp)
    table[:, 3] = np.where(visible, alpha, 0).astype(np.uint8)
    return table


def overlay_indices(values: np.ndarray, limit: float) -> np.ndarray:
    """Lookup-table indices ``floor((v / limit + 1) n / 2)`` clipped to ``[0, n)``, uint8.

    The result is Fortran-ordered (axis 0 fastest) so an axial slice ``[:, :, k]`` is one
    contiguous block, which is what makes scrolling fast. Recently used results are
    cached, so the three views and a repeated limit share one quantisation.
    """
    limit = float(limit) if limit and np.isfinite(limit) and limit > 0 else 1.0
    key = (id(values), values.shape, limit)
    for k, src, idx in _INDEX_CACHE:
        if k == key and src is values:
            return idx
    out = np.empty(values.shape, dtype=np.uint8, order="F")
    half = LUT_SIZE / 2.0
    scale = half / limit
    if values.ndim == 3:
        for a in range(0, values.shape[2], 16):  # blocks bound the float temporaries
            block = np.nan_to_num(values[:, :, a:a + 16].astype(np.float32) * scale + half, nan=half)
            np.clip(block, 0, LUT_SIZE - 1, out=block)
            out[:, :, a:a + 16] = block
    else:
        block = np.nan_to_num(np.asarray(values, np.float32) * scale + half, nan=half)
        out[...] = np.clip(block, 0, LUT_SIZE - 1)
    _INDEX_CACHE.insert(0, (key, values, out))
    del _INDEX_CACHE[_INDEX_CACHE_SIZE:]
    return out


def color_map(name: str = colormaps.DEFAULT) -> pg.ColorMap:
    """A pyqtgraph ColorMap built from the project's control points."""
    pts = colormaps.control_points(name)
    pos = np.array([p for p, _ in pts])
    colors = np.array([[int(round(255 * c)) for c in rgb] + [255] for _, rgb in pts], dtype=np.ubyte)
    return pg.ColorMap(pos, colors, name=name)


def limit_title(overlay: Any, limit: float) -> str:
    """The colour bar's title: what is shown and what its limits are, e.g.
    "relevance ±0.012 (99.5 pct)" — the 99.5th percentile of |R| — or "relevance ±0.5 (fixed)"."""
    if overlay is None:
        return "relevance"
    if overlay.limit_mode == "fixed":
        return f"relevance ±{limit:.3g} (fixed)"
    return f"relevance ±{limit:.2g} ({overlay.percentile:g} pct)"


class ColorBar(pg.GraphicsLayoutWidget):
    """A non-interactive colour bar showing the overlay's symmetric limits in relevance units,
    titled with what the colours mean and where the limits come from."""

    def __init__(self, orientation: str = "vertical", parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground(None)
        horizontal = orientation == "horizontal"
        self.bar = pg.ColorBarItem(
            values=(-1.0, 1.0), colorMap=color_map(), interactive=False,
            orientation=orientation, width=12 if horizontal else 16, rounding=1e-12, colorMapMenu=False,
        )
        self.addItem(self.bar)
        self.horizontal = horizontal
        if horizontal:
            self.setFixedHeight(62)
        else:
            self.setFixedWidth(92)
        self.bar.axis.enableAutoSIPrefix(False)  # a titled axis would otherwise show 30 for 0.03 (milli)
        self.limit = 1.0
        self.title = ""
        self.set_title("relevance")

    def set_title(self, text: str) -> None:
        if text != self.title:
            self.title = text
            self.bar.axis.setLabel(text, **{"font-size": "8pt", "color": "#bbb"})

    def set_map(self, name: str, limit: float, title: str | None = None) -> None:
        if title is not None:
            self.set_title(title)
        self.limit = float(limit) if limit and limit > 0 else 1.0
        how = "a fixed limit" if "fixed" in self.title else "a percentile of |R| over the whole volume"
        self.setToolTip(f"Signed relevance; the colours span ±{self.limit:.4g} ({how}). White is zero.")
        self.bar.setColorMap(color_map(name))
        self.bar.setLevels((-self.limit, self.limit))
        if self.horizontal:  # narrow bars: three labels that never collide (edge labels get clipped)
            half = self.limit / 2
            self.bar.axis.setTicks([[(-half, f"{-half:.2g}"), (0.0, "0"), (half, f"{half:.2g}")], []])
