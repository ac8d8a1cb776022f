"""The intensity histogram behind the window/level dialog.

A 512 × 512 × 300 CT has 78 million voxels; counting all of them on the GUI thread takes
longer than a dialog may take to open. A regular subsample of about two million voxels
gives the same histogram shape to well under a percent, so the dialog samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SAMPLES = 2_000_000


@dataclass(frozen=True, eq=False)
class Histogram:
    """Counts of finite values in ``bins`` equal bins between ``edges[0]`` and ``edges[-1]``;
    ``robust`` is the (0.5, 99.5) percentile range, a good first view of the x axis."""

    edges: np.ndarray
    counts: np.ndarray
    robust: tuple[float, float]
    sampled: int

    @property
    def centres(self) -> np.ndarray:
        return 0.5 * (self.edges[:-1] + self.edges[1:])


def intensity_histogram(data: np.ndarray, bins: int = 256, max_samples: int = MAX_SAMPLES) -> Histogram:
    """Histogram of the finite values of ``data`` (regularly subsampled beyond ``max_samples``)."""
    flat = np.asarray(data).reshape(-1)
    step = max(1, int(np.ceil(flat.size / max_samples)))
    sample = flat[::step]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return Histogram(np.linspace(0.0, 1.0, bins + 1), np.zeros(bins, np.int64), (0.0, 1.0), 0)
    lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(sample, bins=bins, range=(lo, hi))
    p_lo, p_hi = np.percentile(sample, [0.5, 99.5])
    return Histogram(edges, counts, (float(p_lo), float(p_hi)), int(sample.size))
