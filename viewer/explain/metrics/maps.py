"""Bringing a relevance map to the plain spatial array every metric works on.

Metrics accept a Relevance, a tensor or an array, with or without the batch and
channel dims; channels are summed first, as the viewer does before display.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from viewer.explain.result import Relevance


def as_array(values: Any) -> np.ndarray:
    """A float64 numpy copy of a Relevance's map, a tensor or an array-like."""
    if isinstance(values, Relevance):
        values = values.relevance
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def spatial_map(values: Any, spatial_ndim: int) -> np.ndarray:
    """The map summed over its leading (batch/channel) dims down to ``spatial_ndim`` dims."""
    a = as_array(values)
    if a.ndim < spatial_ndim:
        raise ValueError(f"A map of shape {a.shape} has fewer than {spatial_ndim} spatial dims.")
    if a.ndim > spatial_ndim + 2:
        raise ValueError(f"A map of shape {a.shape} has more dims than (batch, channel, {spatial_ndim} spatial).")
    if a.ndim == spatial_ndim + 2 and a.shape[0] != 1:
        raise ValueError(f"Metrics take one map at a time; got a batch of {a.shape[0]}.")
    return a.reshape((-1,) + a.shape[a.ndim - spatial_ndim:]).sum(axis=0)


def matched(relevance: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """(map, boolean mask) of the same spatial shape; ValueError when they disagree."""
    m = as_array(mask).astype(bool)
    r = spatial_map(relevance, m.ndim)
    if r.shape != m.shape:
        raise ValueError(f"The mask's shape {m.shape} does not match the map's spatial shape {r.shape}.")
    return r, m
