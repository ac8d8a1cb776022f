"""Which channels a revision touches: a boolean mask per channel layer, and how to pick one.

Scores of different layers are not on one scale (a layer with 8 channels spreads its
relevance over fewer units than one with 32), so :func:`top_fraction` takes the same
share of every layer's channels, each layer's best by its own scores.
:func:`random_like` is the control every targeted selection needs: as many channels
in each layer, chosen at random.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch

from viewer.revise.channels import ChannelMap
from viewer.revise.errors import ReviseError


def check_fraction(fraction: float) -> float:
    """``fraction`` as a float in (0, 1], or a :class:`ReviseError` that says so."""
    try:
        value = float(fraction)
    except (TypeError, ValueError):
        raise ReviseError(f"The fraction of channels must be a number in (0, 1], got {fraction!r}.") from None
    if not (0.0 < value <= 1.0) or math.isnan(value):
        raise ReviseError(f"The fraction of channels must be in (0, 1] (e.g. 0.05 for 5 %), got {fraction!r}.")
    return value


@dataclass(frozen=True, eq=False)
class ChannelMask:
    """``selected[layer]`` is a bool tensor over the layer's output channels."""

    selected: Mapping[str, torch.Tensor]

    @property
    def count(self) -> int:
        return int(sum(int(m.sum()) for m in self.selected.values()))

    @property
    def total(self) -> int:
        return int(sum(m.numel() for m in self.selected.values()))

    @property
    def fraction(self) -> float:
        return self.count / self.total if self.total else 0.0

    def counts(self) -> dict[str, int]:
        return {name: int(m.sum()) for name, m in self.selected.items()}

    def complement(self) -> "ChannelMask":
        return ChannelMask({name: ~m for name, m in self.selected.items()})

    def indices(self) -> dict[str, list[int]]:
        """Selected channel numbers per layer (for reports)."""
        return {name: [int(i) for i in torch.nonzero(m).flatten()] for name, m in self.selected.items()}

    @staticmethod
    def all(cmap: ChannelMap) -> "ChannelMask":
        return ChannelMask({layer.name: torch.ones(layer.channels, dtype=torch.bool) for layer in cmap.layers})


def _k(fraction: float, total: int) -> int:
    return min(total, max(1, int(round(check_fraction(fraction) * total))))


def top_fraction(scores: Mapping[str, torch.Tensor], fraction: float) -> ChannelMask:
    """The ``fraction`` of each layer's channels with the largest |score|.

    Every layer gives the same share of its channels, so a selection cannot pile up in
    the small early layers, whose channels each hold a larger part of a layer's
    relevance. In all ``round(fraction × channels)`` channels are chosen (at least
    one): each layer first gets ``floor(fraction × its channels)``, the channels left
    over go to the layers with the largest remainders (ties: the layer whose next
    channel has the larger share of its layer's |score|). Ties within a layer are
    broken by channel number, so the result is deterministic.
    """
    fraction = check_fraction(fraction)
    ranked = {}
    for name, s in scores.items():
        s = s.detach().abs().double().flatten()
        total = s.sum()
        share = s / total if total > 0 else torch.zeros_like(s)
        ranked[name] = (torch.sort(-share, stable=True).indices, share)
    sizes = {name: order.numel() for name, (order, _) in ranked.items()}
    quota = {name: int(fraction * n) for name, n in sizes.items()}
    left = _k(fraction, sum(sizes.values())) - sum(quota.values())

    def priority(name: str) -> tuple[float, float]:
        order, share = ranked[name]
        nxt = float(share[order[quota[name]]]) if quota[name] < sizes[name] else -1.0
        return (fraction * sizes[name] - quota[name], nxt)

    for _ in range(max(left, 0)):
        open_layers = [n for n in ranked if quota[n] < sizes[n]]
        best = max(open_layers, key=priority)  # max() keeps the first of equals: layer order
        quota[best] += 1
    out = {}
    for name, (order, _) in ranked.items():
        pick = torch.zeros(sizes[name], dtype=torch.bool)
        pick[order[: quota[name]]] = True
        out[name] = pick
    return ChannelMask(out)


def random_like(mask: ChannelMask, seed: int) -> ChannelMask:
    """As many channels per layer as ``mask`` selects, drawn uniformly at random."""
    gen = torch.Generator().manual_seed(int(seed))
    out = {}
    for name, m in mask.selected.items():
        pick = torch.zeros(m.numel(), dtype=torch.bool)
        pick[torch.randperm(m.numel(), generator=gen)[: int(m.sum())]] = True
        out[name] = pick
    return ChannelMask(out)


def random_fraction(cmap: ChannelMap, fraction: float, seed: int) -> ChannelMask:
    """The ``fraction`` of all channels drawn at random, layer sizes ignored."""
    total = cmap.total_channels
    gen = torch.Generator().manual_seed(int(seed))
    chosen = torch.zeros(total, dtype=torch.bool)
    chosen[torch.randperm(total, generator=gen)[: _k(fraction, total)]] = True
    out, start = {}, 0
    for layer in cmap.layers:
        out[layer.name] = chosen[start : start + layer.channels].clone()
        start += layer.channels
    return ChannelMask(out)
