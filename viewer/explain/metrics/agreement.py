"""Agreement between two maps of the same input (e.g. LRP vs Grad-CAM)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from viewer.explain.metrics.maps import as_array, spatial_map


def _pair(a: Any, b: Any, spatial_ndim: int | None) -> tuple[np.ndarray, np.ndarray]:
    if spatial_ndim is None:
        shape = as_array(a).shape
        spatial_ndim = len(shape) - 2 if len(shape) >= 4 else len(shape)
    ra, rb = spatial_map(a, spatial_ndim), spatial_map(b, spatial_ndim)
    if ra.shape != rb.shape:
        raise ValueError(f"The maps' spatial shapes differ: {ra.shape} vs {rb.shape}.")
    return ra.ravel(), rb.ravel()


def spearman(a: Any, b: Any, spatial_ndim: int | None = None) -> float:
    """Spearman rank correlation of the two maps' voxels (channels summed).

    ``spatial_ndim`` is inferred when the maps carry (batch, channel) dims.
    """
    ra, rb = _pair(a, b, spatial_ndim)
    if np.all(ra == ra[0]) or np.all(rb == rb[0]):
        return float("nan")
    return float(stats.spearmanr(ra, rb).statistic)


def top_k_overlap(a: Any, b: Any, k: int | float = 0.05, spatial_ndim: int | None = None) -> float:
    """Share of the k most relevant voxels of ``a`` that are also among those of ``b``.

    ``k``: a count, or a fraction of the voxels when below 1.
    """
    ra, rb = _pair(a, b, spatial_ndim)
    n = max(1, int(round(k * ra.size))) if isinstance(k, float) and k < 1 else int(k)
    if not 1 <= n <= ra.size:
        raise ValueError(f"k must be between 1 and {ra.size} voxels, got {k!r}.")
    ta = np.argsort(-ra, kind="stable")[:n]
    tb = np.argsort(-rb, kind="stable")[:n]
    return float(len(np.intersect1d(ta, tb)) / n)
