"""Splitting an image into regions: the "features" of KernelSHAP and LIME.

Surrogate methods switch whole regions on and off, so their resolution is the
regions'. A regular grid is predictable and cheap; supervoxels (a SLIC-style local
k-means on intensity and position) follow anatomy, so a lesion tends to be one region.
Labels are an int64 array of the spatial shape numbered 0..K-1.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np


def grid_regions(shape: Sequence[int], size: int | Sequence[int]) -> np.ndarray:
    """Labels of a regular grid of boxes ``size`` voxels wide (edge boxes may be smaller)."""
    shape = tuple(int(s) for s in shape)
    sizes = (int(size),) * len(shape) if np.isscalar(size) else tuple(int(s) for s in size)
    if len(sizes) != len(shape) or any(s < 1 for s in sizes):
        raise ValueError(f"Region size must be a positive integer (or one per dim), got {size!r}.")
    counts = [-(-n // s) for n, s in zip(shape, sizes)]
    index = np.zeros(shape, dtype=np.int64)
    for axis, (n, s) in enumerate(zip(shape, sizes)):
        cell = (np.arange(n) // s).reshape([-1 if a == axis else 1 for a in range(len(shape))])
        index = index * counts[axis] + cell
    return index


def supervoxels(image: np.ndarray, n_regions: int = 64, compactness: float = 0.5,
                iterations: int = 5) -> np.ndarray:
    """SLIC-style supervoxels of a single-channel image (2D or 3D).

    Centres start on a regular grid of spacing S; each iteration assigns every voxel to
    the nearest centre within 2S by the distance
    ``sqrt((Δintensity / range)² + compactness² (Δposition / S)²)`` and moves centres to
    their voxels' means. Larger ``compactness`` gives more box-like regions.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim not in (2, 3):
        raise ValueError(f"supervoxels needs a 2D or 3D image, got shape {img.shape}.")
    if n_regions < 1:
        raise ValueError("n_regions must be at least 1.")
    span = float(img.max() - img.min()) or 1.0
    img = (img - img.min()) / span
    shape = img.shape
    step = max(1.0, (img.size / n_regions) ** (1.0 / img.ndim))
    axes = [np.arange(step / 2, n, step) for n in shape]
    centres_pos = np.array(list(itertools.product(*axes)), dtype=np.float64)
    idx = tuple(np.clip(centres_pos[:, a].astype(int), 0, shape[a] - 1) for a in range(img.ndim))
    centres_val = img[idx]
    grid = np.indices(shape, dtype=np.float64)
    labels = np.zeros(shape, dtype=np.int64)
    radius = int(np.ceil(2 * step))
    weight = (compactness / step) ** 2
    for _ in range(max(1, iterations)):
        best = np.full(shape, np.inf)
        for k in range(len(centres_pos)):
            lo = [max(0, int(c) - radius) for c in centres_pos[k]]
            hi = [min(n, int(c) + radius + 1) for c, n in zip(centres_pos[k], shape)]
            box = tuple(slice(a, b) for a, b in zip(lo, hi))
            d = (img[box] - centres_val[k]) ** 2
            for a in range(img.ndim):
                d = d + weight * (grid[(a,) + box] - centres_pos[k, a]) ** 2
            closer = d < best[box]
            best[box] = np.where(closer, d, best[box])
            labels[box] = np.where(closer, k, labels[box])
        flat = labels.ravel()
        n = np.bincount(flat, minlength=len(centres_pos)).astype(np.float64)
        keep = n > 0
        for a in range(img.ndim):
            s = np.bincount(flat, weights=grid[a].ravel(), minlength=len(centres_pos))
            centres_pos[keep, a] = s[keep] / n[keep]
        s = np.bincount(flat, weights=img.ravel(), minlength=len(centres_pos))
        centres_val[keep] = s[keep] / n[keep]
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(shape).astype(np.int64)


def make_regions(x: np.ndarray, kind: str = "grid", size: int = 8, n_regions: int = 64,
                 compactness: float = 0.5) -> np.ndarray:
    """Regions for an input ``(C, *spatial)`` (channels averaged for supervoxels)."""
    spatial = x.shape[1:]
    if kind == "grid":
        return grid_regions(spatial, size)
    if kind == "supervoxels":
        return supervoxels(np.asarray(x).mean(axis=0), n_regions=n_regions, compactness=compactness)
    raise ValueError(f"Unknown regions {kind!r}: choose 'grid' or 'supervoxels'.")
