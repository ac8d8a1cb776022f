"""Training only chosen channels: frozen tensors with trainable slices.

Masking gradients is not enough to freeze a slice: AdamW's decoupled weight decay
shrinks every parameter it holds, and momentum keeps moving entries whose gradient
became zero. Here the frozen part is not handed to the optimiser at all. Each
partially trained tensor is re-parametrised (``torch.nn.utils.parametrize``) as the
original, frozen tensor with its selected slices replaced by a small trainable tensor
of just those slices (``index_copy``), so

* the frozen slices are bitwise the original values, whatever the optimiser does;
* the optimiser's state (Adam's two moments) exists only for the selected slices —
  this is where a masked update saves memory and optimiser work;
* the backward pass still computes the full weight gradient of every layer that has
  a trainable slice and propagates through frozen layers to reach earlier trainable
  ones, so it costs about what a full backward costs (it saves only the weight
  gradients of layers that are entirely frozen and lie before every trainable one).

Leaving the context bakes the trained values into the ordinary parameters.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize

from viewer.revise.channels import ChannelMap
from viewer.revise.selection import ChannelMask


class _Slices(nn.Module):
    """Parametrisation: the frozen tensor with slices ``index`` along ``dim`` made trainable."""

    def __init__(self, original: torch.Tensor, dim: int, index: torch.Tensor) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("index", index.clone(), persistent=False)
        self.rows = nn.Parameter(original.detach().index_select(dim, index).clone())

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return original.index_copy(self.dim, self.index, self.rows)


@dataclass(frozen=True)
class UpdatePlan:
    """Which parameters a revision trains: whole tensors, or slices (channel dim, indices)."""

    whole: tuple[str, ...] = ()
    slices: Mapping[str, tuple[int, torch.Tensor]] = field(default_factory=dict)

    def parameters_updated(self, module: nn.Module) -> int:
        """Number of scalar parameters the plan lets change."""
        params = dict(module.named_parameters())
        n = sum(params[name].numel() for name in self.whole)
        for name, (dim, index) in self.slices.items():
            p = params[name]
            n += p.numel() // p.shape[dim] * index.numel()
        return n

    def trainable_mask(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """Per parameter, a bool tensor of its entries the plan may change."""
        out = {}
        for name, p in module.named_parameters():
            m = torch.zeros_like(p, dtype=torch.bool)
            if name in self.whole:
                m[...] = True
            elif name in self.slices:
                dim, index = self.slices[name]
                m.index_fill_(dim, index, True)
            out[name] = m
        return out


def full_plan(module: nn.Module) -> UpdatePlan:
    """Every parameter trains (plain fine-tuning)."""
    return UpdatePlan(whole=tuple(name for name, _ in module.named_parameters()))


def masked_plan(module: nn.Module, cmap: ChannelMap, mask: ChannelMask, train_others: bool = False) -> UpdatePlan:
    """Train the channels ``mask`` selects (their weights, biases, norm parameters).

    ``train_others`` also trains every parameter that belongs to no channel layer (the
    output layer, embeddings); otherwise those stay frozen too.
    """
    whole: list[str] = []
    slices: dict[str, tuple[int, torch.Tensor]] = {}
    owned: set[str] = set()
    for layer in cmap.layers:
        selected = mask.selected[layer.name]
        index = torch.nonzero(selected).flatten()
        for pname, dim in layer.params:
            owned.add(pname)
            if bool(selected.all()):
                whole.append(pname)
            elif index.numel():
                slices[pname] = (dim, index)
    if train_others:
        whole += [name for name, _ in module.named_parameters() if name not in owned]
    return UpdatePlan(tuple(whole), slices)


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, attr = name.rpartition(".")
    return (module.get_submodule(path) if path else module), attr


@contextmanager
def trainable(module: nn.Module, plan: UpdatePlan) -> Iterator[list[nn.Parameter]]:
    """Within the context only what ``plan`` names trains; yields the tensors to optimise.

    The order of the yielded tensors is fixed by the plan and the module, so an
    optimiser state saved in one run can be loaded in the next (resuming).
    """
    flags = {name: p.requires_grad for name, p in module.named_parameters()}
    for p in module.parameters():
        p.requires_grad_(False)
    params = dict(module.named_parameters())
    tensors: list[nn.Parameter] = []
    registered: list[tuple[nn.Module, str]] = []
    try:
        for name in plan.whole:
            params[name].requires_grad_(True)
            tensors.append(params[name])
        for name, (dim, index) in plan.slices.items():
            owner, attr = _owner(module, name)
            piece = _Slices(params[name], dim, index)
            parametrize.register_parametrization(owner, attr, piece)
            registered.append((owner, attr))
            tensors.append(piece.rows)
        yield tensors
    finally:
        for owner, attr in registered:
            parametrize.remove_parametrizations(owner, attr, leave_parametrized=True)
        for name, p in module.named_parameters():
            p.requires_grad_(flags.get(name, True))


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the optimiser's per-parameter state (e.g. Adam's moments)."""
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value):
                total += value.numel() * value.element_size()
    return total
