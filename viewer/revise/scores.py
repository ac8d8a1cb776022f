"""How much each channel matters, by three criteria: relevance, Taylor, weight magnitude.

* :func:`relevance_scores` — LRP relevance of each channel summed over reference
  cases, optionally only the part that lands in a region of the input (the marker),
  from the attribution-graph engine (:func:`viewer.explain.graph.channel_relevance`),
  each case explained for its own target (its label, or the model's prediction).
* :func:`taylor_scores` — the first-order Taylor estimate of how much the loss would
  change if the channel's parameters were removed, ``|Σ w · ∂L/∂w|`` over the
  channel's weights, bias and norm parameters (Molchanov et al. 2019).
* :func:`magnitude_scores` — the mean |weight| of the channel's filter.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from viewer.revise.channels import ChannelMap
from viewer.revise.errors import ReviseError


def relevance_scores(
    module: nn.Module,
    cmap: ChannelMap,
    x: torch.Tensor,
    targets: torch.Tensor | None = None,
    region: torch.Tensor | None = None,
    preset: str = "epsilon-plus",
    **params: Any,
) -> dict[str, torch.Tensor]:
    """Per channel layer, the signed relevance of each channel summed over the cases.

    ``targets`` holds one class per case (None: each case's predicted class);
    ``region`` (N, 1 or C, *spatial) keeps only the relevance that the channel passes
    on to the region's voxels. ``params`` go to LRP (``low``, ``high``, ``epsilon`` …).
    """
    from viewer.explain.graph import channel_relevance

    if len(x) == 0:
        raise ReviseError("Channel relevance needs at least one reference case.")
    module.eval()
    per_case_targets = None if targets is None else [int(t) for t in targets]
    regions = None if region is None else [region[i : i + 1] for i in range(len(x))]
    got = channel_relevance(module, x, cmap.names, target=per_case_targets, region=regions, preset=preset, **params)
    return {name: got[name].detach().double().cpu() for name in cmap.names}


def taylor_scores(module: nn.Module, cmap: ChannelMap, x: torch.Tensor, y: torch.Tensor,
                  batch: int = 64) -> dict[str, torch.Tensor]:
    """``|Σ w · ∂L/∂w|`` per channel over its parameters, the loss summed over the cases."""
    if len(x) == 0:
        raise ReviseError("Taylor scores need at least one case with a label.")
    params = dict(module.named_parameters())
    flags = {n: p.requires_grad for n, p in params.items()}
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    module.eval()
    try:
        for p in params.values():
            p.requires_grad_(True)
        for i in range(0, len(x), batch):
            loss = F.cross_entropy(module(x[i : i + batch]), y[i : i + batch], reduction="sum")
            got = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for (n, _), g in zip(params.items(), got):
                if g is not None:
                    grads[n] += g
    finally:
        for n, p in params.items():
            p.requires_grad_(flags[n])
    out = {}
    for layer in cmap.layers:
        score = torch.zeros(layer.channels, dtype=torch.float64)
        for pname, dim in layer.params:
            gw = (grads[pname] * params[pname].detach()).double().movedim(dim, 0)
            score += gw.reshape(layer.channels, -1).sum(1)
        out[layer.name] = score.abs()
    return out


def magnitude_scores(module: nn.Module, cmap: ChannelMap) -> dict[str, torch.Tensor]:
    """Mean |weight| of each channel's filter (norm parameters not included)."""
    params = dict(module.named_parameters())
    out = {}
    for layer in cmap.layers:
        pname, dim = layer.params[0]
        w = params[pname].detach().double().movedim(dim, 0)
        out[layer.name] = w.reshape(layer.channels, -1).abs().mean(1)
    return out
