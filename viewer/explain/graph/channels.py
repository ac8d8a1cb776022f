"""Channel relevance on a reference set: how much of a target's relevance each channel
of a layer carries, summed over cases, optionally only the part that lands in a region.

This is what attribution-guided training (``viewer.revise``) ranks channels by: the
channels that carry the relevance of a shortcut marker (``region`` = the marker's
mask) are the ones to correct or prune, the channels that carry the task are the ones
to keep.

Without a region a case costs one LRP forward and one backward pass to the lowest
layer: the relevance at a layer, summed per channel. With a region, the relevance
of each channel is followed down to the input (one pass from the layer per channel
that received any relevance) and only what lands inside the region counts.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from viewer.explain.graph.conditional import (
    MAX_BATCH, ConditionalPass, auto_batch, channel_sums, span,
)
from viewer.explain.graph.errors import GraphError
from viewer.explain.progress import Progress


def channel_relevance(
    module: nn.Module,
    cases: torch.Tensor | Iterable[torch.Tensor],
    layers: Sequence[str] | str,
    target: Any = None,
    region: Any = None,
    preset: str = "epsilon-plus",
    *,
    overrides: Mapping | None = None,
    channel_dim: int | Mapping[str, int] | None = None,
    per_case: bool = False,
    progress: Progress | None = None,
    batch: int | None = None,
    **params: Any,
) -> dict[str, torch.Tensor]:
    """Relevance of ``target`` per channel of each layer, summed over ``cases``.

    Parameters
    ----------
    cases
        A tensor ``(N, C, *spatial)`` whose rows are N cases, or an iterable of
        model inputs, one per case (a case may have several rows, e.g. the slices a
        2D model runs on).
    layers
        Module names (one name or a list).
    target
        As for :func:`viewer.explain.lrp` (None: each case's predicted class), or a
        ``list`` with one target per case.
    region
        None, or a mask in input space (0/1 or weights) that broadcasts against a
        case's input (e.g. the spatial shape), or a ``list`` with one mask per case
        (None entries count the whole input). Then each channel's relevance is the
        part of its conditional input relevance that lands inside the mask.
    per_case
        Return ``(N, channels)`` per layer instead of the sum over cases.
    batch
        With a region: channels followed down together in one backward pass (None: by
        input size).

    Returns
    -------
    ``{layer: float64 tensor (channels,)}`` (or ``(N, channels)``), in ``layers`` order.
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise GraphError("Choose at least one layer.")
    items = list(cases.split(1)) if isinstance(cases, torch.Tensor) else list(cases)
    if not items:
        raise GraphError("The reference set is empty; give at least one case.")
    targets = _per_case(target, len(items), "targets")
    regions = _per_case(region, len(items), "regions")
    progress = progress or Progress()
    rows: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for i, x in enumerate(items):
        progress.step(i, len(items))
        case_progress = span(progress, i / len(items), (i + 1) / len(items))
        together = 1 if regions[i] is None else (auto_batch(x, MAX_BATCH) if batch is None else batch)
        cp = ConditionalPass(module, x, names, targets[i], preset, overrides, channel_dim, case_progress,
                             batch=together, **params)
        rel = cp.relevance(names)
        for name in names:
            dim = cp.dims[name]
            if regions[i] is None:
                rows[name].append(channel_sums(rel[name], dim))
            else:
                rows[name].append(_inside(cp, name, rel[name], dim, _region_for(regions[i], x)))
    progress.step(1, 1)
    out = {}
    for name in names:
        stacked = torch.stack(rows[name])
        out[name] = stacked if per_case else stacked.sum(0)
    return out


def _inside(cp: ConditionalPass, layer: str, r: torch.Tensor, dim: int, region: torch.Tensor) -> torch.Tensor:
    """Per channel, the conditional input relevance inside ``region`` (channels that
    received exactly nothing pass nothing on and are skipped)."""
    sums = channel_sums(r.abs(), dim)
    values = torch.zeros(r.shape[dim], dtype=torch.float64)
    live = torch.nonzero(sums).flatten().tolist()
    heats = cp.down_channels(layer, live, ledger=False)
    for c, (heat, _) in zip(live, heats):
        values[c] = float((heat.double() * region).sum())
    return values


def _region_for(region: Any, x: torch.Tensor) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(region) if not isinstance(region, torch.Tensor) else region)
    m = m.to(dtype=torch.float64, device=x.device)
    try:
        torch.broadcast_shapes(m.shape, x.shape)
    except RuntimeError:
        raise GraphError(f"The region mask has shape {tuple(m.shape)}, which does not fit the model input "
                         f"{tuple(x.shape)}; give a mask on the model's input grid.") from None
    if torch.broadcast_shapes(m.shape, x.shape) != x.shape:
        raise GraphError(f"The region mask of shape {tuple(m.shape)} is larger than the model input {tuple(x.shape)}.")
    return m


def _per_case(value: Any, n: int, what: str) -> list:
    if isinstance(value, list):
        if len(value) != n:
            raise GraphError(f"Got {len(value)} {what} for {n} cases; give one per case (or one for all).")
        return value
    return [value] * n
