"""Switching features off: a copy of a model whose chosen channels output zero.

The check of a graph is causal: if the graph says channel 27 of ``features.3``
carries the decision, the target logit should drop when that channel is zeroed. The
user's model is never changed; the copy's ablated modules keep their names, so layer
names, rule overrides and further graphs work on the copy unchanged, and the copy
can be explained like any model (the zeroing is part of the module's forward, not a
hook, which explainers remove from their private copies).
"""

from __future__ import annotations

import copy
from typing import Mapping, Sequence

import torch
from torch import nn

from viewer.explain.graph.errors import GraphError
from viewer.explain.graph.layers import check_layer_names

OFF = "lrp_viewer_ablated"  # buffer on an ablated module: the indices of its zeroed channels


class _ZeroChannels:
    """A module's own ``forward`` followed by zeroing the channels listed in its ``OFF`` buffer."""

    def __init__(self, forward, dim: int | None) -> None:
        self.forward = forward  # the module's bound forward; a deep copy rebinds it to the copy
        self.dim = dim

    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        first = out[0] if isinstance(out, (tuple, list)) else out
        if not isinstance(first, torch.Tensor):
            return out
        off = getattr(self.forward.__self__, OFF)
        dim = self.dim if self.dim is not None else (first.ndim - 1 if first.ndim == 3 else 1)
        n = first.shape[dim]
        if off.numel() and int(off.max()) >= n:
            raise GraphError(f"An ablated layer has {n} channels; channel {int(off.max())} does not exist.")
        keep = torch.ones(n, dtype=first.dtype, device=first.device)
        keep[off.to(first.device)] = 0
        shape = [1] * first.ndim
        shape[dim] = n
        zeroed = first * keep.reshape(shape)  # a product with a constant: LRP passes relevance through it
        if isinstance(out, tuple):
            return (zeroed, *out[1:])
        if isinstance(out, list):
            return [zeroed, *out[1:]]
        return zeroed


def ablate(
    module: nn.Module,
    channels: Mapping[str, Sequence[int]],
    channel_dim: int | Mapping[str, int] | None = None,
) -> nn.Module:
    """A deep copy of ``module`` in which ``{layer: [channels]}`` output zero.

    ``channel_dim`` (one for all layers or per layer) is the dimension of a layer's
    output that holds channels; by default 1, and the last one for 3-dimensional
    outputs (transformer tokens (B, N, D)) — pass ``graph.channel_dims`` for the layers
    of an attribution graph. Ablating a copy again zeroes the union.
    """
    check_layer_names(module, list(channels))
    twin = copy.deepcopy(module)
    for layer, chans in channels.items():
        idx = sorted({int(c) for c in chans})
        if not idx:
            continue
        if idx[0] < 0:
            raise GraphError(f"Channel numbers start at 0; got {idx[0]} for layer {layer!r}.")
        target = twin.get_submodule(layer)
        dim = channel_dim.get(layer) if isinstance(channel_dim, Mapping) else channel_dim
        off = getattr(target, OFF, None)
        if off is None:
            target.register_buffer(OFF, torch.tensor(idx, dtype=torch.long), persistent=False)
            target.forward = _ZeroChannels(target.forward, dim)
        else:
            setattr(target, OFF, torch.tensor(sorted(set(off.tolist()) | set(idx)), dtype=torch.long))
    return twin
