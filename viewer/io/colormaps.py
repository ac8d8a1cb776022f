"""Diverging colormaps for signed relevance, as 256-entry RGB lookup tables.

Pure numpy so the figure export, the batch command and the UI draw identical colours.
Each map is centred: entry 128 is the colour of zero relevance.
"""

from __future__ import annotations

import numpy as np

# Control points (position in [0, 1], RGB in [0, 1]); interpolated linearly.
_POINTS: dict[str, list[tuple[float, tuple[float, float, float]]]] = {
    "bwr": [(0.0, (0.0, 0.0, 1.0)), (0.5, (1.0, 1.0, 1.0)), (1.0, (1.0, 0.0, 0.0))],
    "seismic": [
        (0.0, (0.0, 0.0, 0.3)),
        (0.25, (0.0, 0.0, 1.0)),
        (0.5, (1.0, 1.0, 1.0)),
        (0.75, (1.0, 0.0, 0.0)),
        (1.0, (0.5, 0.0, 0.0)),
    ],
    # black at zero: positive runs red -> yellow -> white, negative blue -> cyan -> white
    "coldnhot": [
        (0.0, (1.0, 1.0, 1.0)),
        (0.125, (0.0, 1.0, 1.0)),
        (0.25, (0.0, 0.0, 1.0)),
        (0.5, (0.0, 0.0, 0.0)),
        (0.75, (1.0, 0.0, 0.0)),
        (0.875, (1.0, 1.0, 0.0)),
        (1.0, (1.0, 1.0, 1.0)),
    ],
    # blue-orange, distinguishable with red-green colour blindness (after Paul Tol's BuRd idea,
    # but orange instead of red so deuteranopes separate the two arms)
    "blue-orange (colour-blind safe)": [
        (0.0, (0.129, 0.400, 0.674)),
        (0.25, (0.573, 0.773, 0.871)),
        (0.5, (0.969, 0.969, 0.969)),
        (0.75, (0.992, 0.722, 0.388)),
        (1.0, (0.702, 0.345, 0.024)),
    ],
}

NAMES: tuple[str, ...] = tuple(_POINTS)
DEFAULT = "bwr"


def control_points(name: str) -> list[tuple[float, tuple[float, float, float]]]:
    """The map's control points, e.g. for building a pyqtgraph ColorMap."""
    try:
        return list(_POINTS[name])
    except KeyError:
        raise ValueError(f"Unknown colormap {name!r}; choose one of {', '.join(NAMES)}") from None


def lut(name: str, n: int = 256) -> np.ndarray:
    """``(n, 3)`` uint8 lookup table of the named map."""
    pts = control_points(name)
    pos = np.array([p for p, _ in pts])
    rgb = np.array([c for _, c in pts])
    x = np.linspace(0.0, 1.0, n)
    table = np.stack([np.interp(x, pos, rgb[:, k]) for k in range(3)], axis=1)
    return np.round(table * 255).astype(np.uint8)


def colorize(
    values: np.ndarray,
    limit: float,
    name: str = DEFAULT,
    opacity: float = 1.0,
    threshold: float = 0.0,
    sign: str = "both",
) -> np.ndarray:
    """RGBA uint8 image of signed ``values`` with symmetric limits ``[-limit, limit]``.

    ``threshold`` is a fraction of ``limit``: |value| below it is transparent. ``sign``
    is "both", "positive" or "negative" (the other sign becomes transparent).
    """
    limit = float(limit) if limit and np.isfinite(limit) and limit > 0 else 1.0
    v = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0, posinf=limit, neginf=-limit)
    table = lut(name)
    idx = np.clip(np.round((v / limit + 1.0) * 0.5 * 255), 0, 255).astype(np.intp)
    rgba = np.empty(v.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = table[idx]
    visible = np.abs(v) > threshold * limit
    if sign == "positive":
        visible &= v > 0
    elif sign == "negative":
        visible &= v < 0
    elif sign != "both":
        raise ValueError(f"sign must be 'both', 'positive' or 'negative', got {sign!r}")
    rgba[..., 3] = np.where(visible, int(round(255 * float(np.clip(opacity, 0, 1)))), 0)
    return rgba


def symmetric_limit(values: np.ndarray, percentile: float = 99.5) -> float:
    """The colour limit: a percentile of |values| over non-zero finite entries."""
    a = np.abs(np.asarray(values, dtype=np.float32))
    a = a[np.isfinite(a) & (a > 0)]
    if a.size == 0:
        return 1.0
    return float(np.percentile(a, percentile)) or float(a.max())
