"""Relevance per slice: where along an axis the evidence sits.

Summing positive and negative relevance separately keeps cancelling evidence visible:
a slice with strong positive and strong negative relevance would look empty in a
single signed sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class RelevanceProfile:
    """``positive[k]`` = Σ max(r, 0) and ``negative[k]`` = Σ min(r, 0) over slice k of ``axis``."""

    axis: int
    positive: np.ndarray
    negative: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.positive + self.negative

    @property
    def slices(self) -> np.ndarray:
        return np.arange(self.positive.shape[0])


def relevance_profile(on_scan: np.ndarray, axis: int) -> RelevanceProfile:
    """Per-slice sums of a 3D map along ``axis`` (0, 1 or 2), in float64 for exact totals."""
    values = np.asarray(on_scan)
    if values.ndim != 3:
        raise ValueError(f"A relevance profile needs a 3D map, got shape {values.shape}.")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}.")
    values = np.nan_to_num(values.astype(np.float64, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    others = tuple(a for a in range(3) if a != axis)
    positive = np.clip(values, 0.0, None).sum(axis=others)
    negative = np.clip(values, None, 0.0).sum(axis=others)
    return RelevanceProfile(axis, positive, negative)
