"""Agreement of a map with a ground-truth mask (a lesion, an annotation).

All functions take the map (any of Relevance / tensor / array, channels summed) and a
mask of the map's spatial shape, in 2D or 3D.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from viewer.explain.metrics.maps import matched


def _need_mask(mask: np.ndarray) -> None:
    if not mask.any():
        raise ValueError("The mask is empty: localisation metrics need at least one voxel inside it.")


def relevance_mass_accuracy(relevance: Any, mask: Any) -> float:
    """Share of the positive relevance that lies inside the mask (Arras et al. 2022).

    Negative relevance is evidence against the target; it is left out so that it cannot
    cancel positive evidence outside the mask. 0 when no voxel has positive relevance.
    """
    r, m = matched(relevance, mask)
    _need_mask(m)
    pos = np.clip(r, 0.0, None)
    total = pos.sum()
    return float(pos[m].sum() / total) if total > 0 else 0.0


def _top(r: np.ndarray, k: int) -> np.ndarray:
    """Boolean map of the k voxels with the highest relevance (stable order for ties)."""
    order = np.argsort(-r.ravel(), kind="stable")[:k]
    top = np.zeros(r.size, dtype=bool)
    top[order] = True
    return top.reshape(r.shape)


def relevance_rank_accuracy(relevance: Any, mask: Any) -> float:
    """Share of the top-|mask| voxels (by relevance) that lie inside the mask."""
    r, m = matched(relevance, mask)
    _need_mask(m)
    k = int(m.sum())
    return float((_top(r, k) & m).sum() / k)


def pointing_game(relevance: Any, mask: Any, tolerance: float = 0.0) -> bool:
    """Whether the maximum of the map lies inside the mask (Zhang et al. 2018).

    ``tolerance`` (voxels) grows the mask by that distance first, as the original
    allows a 15-pixel margin. With ties at the maximum, any of them counts.
    """
    r, m = matched(relevance, mask)
    _need_mask(m)
    if tolerance > 0:
        m = ndimage.distance_transform_edt(~m) <= tolerance
    return bool(m[r == r.max()].any())


def top_k_iou(relevance: Any, mask: Any, k: int | float | None = None) -> float:
    """Intersection over union of the k most relevant voxels and the mask.

    ``k``: a count, a fraction of all voxels (0 < k < 1), or None for the mask's size.
    """
    r, m = matched(relevance, mask)
    _need_mask(m)
    if k is None:
        n = int(m.sum())
    elif isinstance(k, float) and 0 < k < 1:
        n = max(1, int(round(k * r.size)))
    else:
        n = int(k)
    if not 1 <= n <= r.size:
        raise ValueError(f"k must be between 1 and {r.size} voxels, got {k!r}.")
    top = _top(r, n)
    return float((top & m).sum() / (top | m).sum())
