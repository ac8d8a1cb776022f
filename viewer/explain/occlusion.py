"""Occlusion: how much the target drops when a window of the input is replaced.

A window (a square in 2D, a box in 3D, always spanning all channels) slides over the
input; each voxel receives the mean output drop of the windows that cover it. The
window positions follow captum's convention (positions at multiples of the stride up
to and including one that reaches the far edge, truncated there), so the two agree.
Perturbed inputs are built and evaluated ``batch_size`` at a time.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import torch
from torch import nn

from viewer.explain.passes import (
    check_input,
    frozen_parameters,
    make_relevance,
    per_sample,
    resolve_target,
    target_values,
)
from viewer.explain.progress import Progress
from viewer.explain.reference import reference
from viewer.explain.result import Relevance


def _per_dim(value: int | Sequence[int], n: int, name: str) -> tuple[int, ...]:
    out = (int(value),) * n if isinstance(value, (int, float)) else tuple(int(v) for v in value)
    if len(out) != n or any(v < 1 for v in out):
        raise ValueError(f"{name} must be a positive integer or {n} positive integers, got {value!r}.")
    return out


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start positions along one axis: 0, stride, ... until a window reaches the edge."""
    window = min(window, size)
    count = math.ceil((size - window) / stride) + 1
    return [k * stride for k in range(count)]


@per_sample
def occlusion(model: nn.Module, x: torch.Tensor, target: Any = None, *, patch: int | Sequence[int] = 8,
              stride: int | Sequence[int] | None = None, baseline: str | float = 0.0, sigma: float = 5.0,
              batch_size: int = 16, progress: Progress | None = None) -> Relevance:
    """Occlusion map: Σ over covering windows of (f(x) - f(x with window replaced)) / count.

    ``patch`` and ``stride`` (default: half the patch) are in voxels, per spatial dim
    or one number for all. ``baseline`` is the replacement: a number, or "zeros",
    "min", "mean", "blurred" (see viewer.explain.reference).
    """
    check_input(x)
    n_spatial = x.ndim - 2
    spatial = tuple(x.shape[2:])
    window = tuple(min(w, s) for w, s in zip(_per_dim(patch, n_spatial, "patch"), spatial))
    steps = _per_dim(stride if stride is not None else tuple(max(1, w // 2) for w in window), n_spatial, "stride")
    if any(s > w for s, w, n in zip(steps, window, spatial) if w < n):
        raise ValueError(f"stride {steps} must not exceed the patch {window}: some voxels would never be occluded.")
    x = x.detach()
    fill = reference(x, baseline, sigma)
    starts = list(itertools.product(*(window_starts(n, w, s) for n, w, s in zip(spatial, window, steps))))

    def box(i: int) -> tuple[slice, ...]:
        return tuple(slice(a, a + w) for a, w in zip(starts[i], window))

    def make_batch(lo: int, hi: int) -> torch.Tensor:
        batch = x.repeat(hi - lo, *([1] * (x.ndim - 1)))
        for j, i in enumerate(range(lo, hi)):
            sl = (j, slice(None)) + box(i)
            batch[sl] = fill[(0, slice(None)) + box(i)]
        return batch

    with frozen_parameters(model):
        out, resolved = resolve_target(model, x, target)
        values = target_values(model, make_batch, len(starts), resolved, batch_size, progress)
    f_x = resolved.value(out)[0]
    drop = (f_x - values).to(x.dtype)
    total = torch.zeros(spatial, dtype=x.dtype, device=x.device)
    count = torch.zeros(spatial, dtype=x.dtype, device=x.device)
    for i in range(len(starts)):
        total[box(i)] += drop[i]
        count[box(i)] += 1
    rel = (total / count).expand(x.shape).contiguous()
    params = {"patch": window if len(set(window)) > 1 else window[0],
              "stride": steps if len(set(steps)) > 1 else steps[0],
              "baseline": baseline, "batch_size": batch_size}
    if baseline in ("blurred", "blur"):
        params["sigma"] = sigma
    return make_relevance(rel, out, resolved, "occlusion", params, meta={"windows": len(starts)})
