"""Pruning by explanation: switch off the channels that carry the unwanted relevance.

A pruned channel has its weights, bias and norm parameters set to zero, so it outputs
exactly zero (a normalisation with zero scale and zero shift outputs zero) and the
layers after it see what they would see if the channel had been removed. The model
keeps its shape, so its card and every tool that reads it still fit; the
multiply-accumulates (MACs) that removing the channels from the architecture would
save are counted from the shapes of one forward pass.
"""

from __future__ import annotations

import torch
from torch import nn

from viewer.revise.channels import ChannelMap
from viewer.revise.selection import ChannelMask


@torch.no_grad()
def prune(module: nn.Module, cmap: ChannelMap, mask: ChannelMask) -> int:
    """Zero the selected channels in place; returns the number of parameters set to zero."""
    params = dict(module.named_parameters())
    zeroed = 0
    for layer in cmap.layers:
        index = torch.nonzero(mask.selected[layer.name]).flatten()
        if not index.numel():
            continue
        for pname, dim in layer.params:
            p = params[pname]
            p.index_fill_(dim, index, 0.0)
            zeroed += p.numel() // p.shape[dim] * index.numel()
    return zeroed


def macs(cmap: ChannelMap, mask: ChannelMask | None = None) -> int:
    """MACs of the model's convolution and dense layers for one input, with the channels
    in ``mask`` removed (their own MACs and their share of the consumer's)."""
    kept_out = {name: 1.0 for name in cmap.all_affine}
    kept_in = {name: 1.0 for name in cmap.all_affine}
    if mask is not None:
        for layer in cmap.layers:
            keep = 1.0 - float(mask.selected[layer.name].double().mean())
            kept_out[layer.name] = keep
            if layer.consumer is not None:
                kept_in[layer.consumer] = keep
    return int(round(sum(cmap.macs[name] * kept_out[name] * kept_in[name] for name in cmap.all_affine)))
