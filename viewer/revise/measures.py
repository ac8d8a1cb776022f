"""What a revision is judged by: accuracy, relevance on the region, parameters changed.

The relevance share on a region is the mean, over the cases whose region is not
empty, of the share of a case's positive LRP relevance that lies inside the region
(relevance mass accuracy, Arras et al. 2022), each case explained for the class the
model predicts — "how much of the evidence for what it said came from the marker".
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from viewer.explain.lrp import lrp


@torch.no_grad()
def predict(module: nn.Module, x: torch.Tensor, batch: int = 64) -> torch.Tensor:
    module.eval()
    if len(x) == 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat([module(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])


def accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of cases whose predicted class is the label (NaN without cases)."""
    if len(x) == 0:
        return float("nan")
    return float((predict(module, x) == y).double().mean())


def region_shares(module: nn.Module, x: torch.Tensor, region: torch.Tensor, preset: str = "epsilon-plus",
                  batch: int = 32, **params: Any) -> torch.Tensor:
    """Per case: positive relevance inside ``region`` / all positive relevance (NaN for
    cases with an empty region or no positive relevance)."""
    pred = predict(module, x)
    region = region.to(torch.bool)
    if region.shape[1] != x.shape[1]:
        region = region.expand(-1, x.shape[1], *region.shape[2:])
    shares = torch.full((len(x),), float("nan"), dtype=torch.float64)
    has = region.flatten(1).any(1)
    for cls in torch.unique(pred[has]).tolist():
        idx = torch.nonzero(has & (pred == cls)).flatten()
        for start in range(0, len(idx), batch):
            part = idx[start : start + batch]
            rel = lrp(module, x[part], target=int(cls), preset=preset, **params).relevance
            pos = rel.clamp_min(0).double()
            total = pos.flatten(1).sum(1)
            inside = (pos * region[part]).flatten(1).sum(1)
            shares[part] = torch.where(total > 0, inside / total, torch.full_like(total, float("nan")))
    return shares


def region_share(module: nn.Module, x: torch.Tensor, region: torch.Tensor, preset: str = "epsilon-plus",
                 **params: Any) -> float:
    """Mean of :func:`region_shares` over the cases that have a region (NaN if none)."""
    shares = region_shares(module, x, region, preset, **params)
    shares = shares[~torch.isnan(shares)]
    return float(shares.mean()) if len(shares) else float("nan")


def parameters_changed(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor]) -> int:
    """Scalar parameters whose value differs (bitwise) between two state dicts."""
    return int(sum(int((before[k] != after[k]).sum()) for k in before if k in after and before[k].is_floating_point()))
