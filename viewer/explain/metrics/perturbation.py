"""Faithfulness without a mask: region perturbation curves and their AOPC.

Samek et al. (2017): remove the input's patches (squares in 2D, cubes in 3D) in order
of decreasing relevance ("most relevant first", MoRF) and watch the target fall; a
faithful map makes it fall faster than removing patches in random order. The area over
the perturbation curve, AOPC = mean_k (f(x) - f(x after k steps)), summarises each
curve; MoRF AOPC well above the random one is the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from viewer.explain.metrics.maps import spatial_map
from viewer.explain.passes import check_input, forward, frozen_parameters, target_values
from viewer.explain.progress import Progress
from viewer.explain.reference import reference
from viewer.explain.regions import grid_regions
from viewer.explain.result import Relevance
from viewer.explain.target import Target


@dataclass(frozen=True)
class PerturbationCurve:
    """Target value after removing a growing share of patches, in two orders.

    ``fractions[i]`` is the share of patches removed at step i (0 first); ``morf`` and
    ``random`` the target values; ``aopc_*`` their mean drop from the unperturbed value.
    """

    fractions: np.ndarray
    morf: np.ndarray
    random: np.ndarray
    aopc_morf: float
    aopc_random: float
    patch: tuple[int, ...]
    value: str | float
    seed: int


def aopc(values: np.ndarray) -> float:
    """Mean drop of a curve from its first (unperturbed) value."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.mean(values[0] - values))


def perturbation_curve(model: nn.Module, x: torch.Tensor, relevance: Any, target: Any = None, *,
                       patch: int = 8, steps: int | None = None, value: str | float = "zero", sigma: float = 5.0,
                       seed: int = 0, batch_size: int = 16, progress: Progress | None = None) -> PerturbationCurve:
    """MoRF and random-order region perturbation curves for one map.

    ``relevance``: the map (Relevance / tensor / array, channels summed); its target is
    used when ``target`` is None. ``patch``: patch edge in voxels. ``steps``: number of
    perturbation steps (default: one per patch, at most 50). ``value``: what replaces a
    removed patch — "zero", "mean", "min", "blur" (Gaussian, ``sigma`` voxels) or a number.
    """
    check_input(x)
    x = x.detach()
    spatial = tuple(x.shape[2:])
    if target is None and isinstance(relevance, Relevance):
        target = relevance.target
    r = spatial_map(relevance, len(spatial))
    if r.shape != spatial:
        raise ValueError(f"The map's spatial shape {r.shape} does not match the input's {spatial}.")
    labels_np = grid_regions(spatial, patch)
    k = int(labels_np.max()) + 1
    n_steps = min(k, 50) if steps is None else int(steps)
    if not 1 <= n_steps <= k:
        raise ValueError(f"steps must be between 1 and the number of patches ({k}), got {steps!r}.")
    scores = np.bincount(labels_np.ravel(), weights=r.ravel(), minlength=k)
    morf_order = np.argsort(-scores, kind="stable")
    random_order = np.random.default_rng(int(seed)).permutation(k)
    removed = np.round(np.arange(n_steps + 1) * k / n_steps).astype(int)
    labels = torch.as_tensor(labels_np, device=x.device)
    ranks = []
    for order in (morf_order, random_order):
        rank = np.empty(k, dtype=np.int64)
        rank[order] = np.arange(k)
        ranks.append(torch.as_tensor(rank, device=x.device)[labels])
    fill = reference(x, value, sigma)
    counts = torch.as_tensor(removed, device=x.device)
    n = n_steps + 1

    def make_batch(lo: int, hi: int) -> torch.Tensor:
        items = []
        for i in range(lo, hi):
            gone = (ranks[i // n] < counts[i % n]).unsqueeze(0).unsqueeze(0)
            items.append(torch.where(gone, fill, x))
        return torch.cat(items)

    with frozen_parameters(model):
        with torch.no_grad():
            resolved = Target.resolve(target, forward(model, x))
        values = target_values(model, make_batch, 2 * n, resolved, batch_size, progress)
    values = values.double().cpu().numpy()
    morf, rand = values[:n], values[n:]
    patch_t = tuple(min(patch, s) for s in spatial)
    return PerturbationCurve(removed / k, morf, rand, aopc(morf), aopc(rand), patch_t, value, int(seed))
