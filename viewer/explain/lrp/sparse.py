"""Relevance confined to a few positions, and the transposed map of a convolution
that works from those positions only.

Below a global max pooling a convolution's output carries relevance at one voxel
per channel and pooled region (on the 3D demo model: 2 of 16,128 positions per
channel); in a conditional pass of an attribution graph the relevance of one such
feature stays within a few kernel widths of those voxels for several layers (0.3 %,
1.6 % and 4 % of the positions on the way down to the input). The dense transposed
map spends its work on zeros there. From a few positions it is a small product (each
position's output-channel vector times the weight matrix gives the kernel-sized patch
it sends to the input) and an indexed sum of the patches.

A backward pass starts looking (``Book.spatial``); the first convolution whose
relevance is spread out turns the search off for the rest of the pass, since
relevance only spreads going down.
"""

from __future__ import annotations

import functools
import math

import torch

SHARE = 0.05  # at most this share of a convolution's output positions carrying relevance
BUDGET = 2 ** 24  # and at most this many patch values (positions × input channels × taps)


def applies(op, r) -> bool:
    """Whether relevance ``r`` at the output of ``op`` is a case for :func:`support`: a
    plain (ungrouped) convolution, in single or double precision."""
    return (op.kind == "conv" and op.groups == 1 and len(r.shape) == op.nd + 2
            and r.dtype in (torch.float32, torch.float64))


def support(op, r, weight: torch.Tensor) -> torch.Tensor | None:
    """The flattened (batch, position) indices where relevance ``r`` at the output of
    convolution ``op`` (a tensor, or ``pooling.Pooled`` relevance: its winners) is not
    zero in some channel, when they are few enough for :func:`transposed` to pay;
    else None (also where it does not :func:`apply <applies>`). A NaN counts as not zero."""
    if not applies(op, r):
        return None
    positions = math.prod(r.shape) // r.shape[1]
    if isinstance(r, torch.Tensor):
        hit = r.abs().amax(1).flatten().ne(0)
        found = None
        count = int(hit.sum())
    else:
        found = r.positions()
        count = found.numel()
    if count > SHARE * positions or count * weight[0].numel() > BUDGET:
        return None
    return found if found is not None else hit.nonzero().flatten()


def transposed(op, g: torch.Tensor, weight: torch.Tensor, x: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """``op``'s transposed map applied to ``g``, which is zero outside the flattened
    (batch, position) indices ``where``; shaped like ``x`` (contiguous)."""
    nd, b, c_out = op.nd, g.shape[0], g.shape[1]
    out_size, in_size = tuple(g.shape[2:]), tuple(x.shape[2:])
    last = g.movedim(1, -1)
    if last.is_contiguous():  # channels-last: each position's channels lie together
        vectors = last.reshape(-1, c_out)[where]
    else:
        flat = math.prod(out_size)
        vectors = g.reshape(b, c_out, flat)[torch.div(where, flat, rounding_mode="floor"), :, where % flat]
    c_in, ksize = weight.shape[1], tuple(weight.shape[2:])
    taps = math.prod(ksize)
    # (C_in · K, C_out) @ (C_out, N): the patches, laid out as (C_in, K, N)
    patches = weight.reshape(c_out, c_in * taps).t().matmul(vectors.t()).view(c_in, taps, len(where))
    # the input position each position's first tap reads, per dimension (may lie in the padding)
    firsts, rest = [], where
    for d in reversed(range(nd)):
        firsts.append((rest % out_size[d]) * op.stride[d] - op.padding[d])
        rest = torch.div(rest, out_size[d], rounding_mode="floor")
    firsts = firsts[::-1]
    inside = not len(where) or all(int(f.min()) >= 0 and int(f.max()) + (k - 1) * dil < n
                                   for f, k, dil, n in zip(firsts, ksize, op.dilation, in_size))
    # where some taps fall in the padding they land in a padded copy, cropped after
    shift = (0,) * nd if inside else op.padding
    size = tuple(n + 2 * p for n, p in zip(in_size, shift))
    base = rest * math.prod(size)  # rest is the batch index
    for d, first in enumerate(firsts):
        base = base + (first + shift[d]) * math.prod(size[d + 1:])
    index = _tap_offsets(ksize, op.dilation, size, str(g.device))[:, None] + base[None, :]  # (K, N)
    out = g.new_zeros(c_in, b * math.prod(size))
    out.index_add_(1, index.reshape(-1), patches.reshape(c_in, -1))
    out = out.view(c_in, b, *size)
    if not inside:
        out = out[(slice(None), slice(None)) + tuple(slice(p, p + n) for p, n in zip(op.padding, in_size))]
    return out.transpose(0, 1).contiguous()


@functools.lru_cache(maxsize=64)
def _tap_offsets(ksize: tuple, dilation: tuple, size: tuple, device: str) -> torch.Tensor:
    """Flat offsets, in a tensor of spatial ``size``, of the kernel's taps in the
    weight's order."""
    offsets = torch.zeros(1, dtype=torch.long)
    for d, (k, dil) in enumerate(zip(ksize, dilation)):
        offsets = (offsets[:, None] + torch.arange(k) * (dil * math.prod(size[d + 1:]))).reshape(-1)
    return offsets.to(device)
