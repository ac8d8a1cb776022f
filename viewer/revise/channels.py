"""Channels as units of a model: which parameters belong to each output channel.

A *channel layer* is a convolution (1D/2D/3D, plain or transposed) or a dense layer; its
output channel ``c`` owns row ``c`` of the weight (column ``c`` for transposed
convolutions), entry ``c`` of the bias and entry ``c`` of the affine parameters of the
normalisation layer that directly normalises that output. Which norm belongs to which
layer is read from the data flow of one forward pass (the norm's input *is* the
layer's output), not from module order, so ``self.bn(self.conv(x))`` written inside a
``forward`` is found as well as an ``nn.Sequential`` stack.

The same pass records each layer's input and output shapes, from which the
multiply-accumulates (MACs) of a channel and of its consumer follow (:mod:`.prune`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from viewer.explain.target import primary_output
from viewer.revise.errors import ReviseError

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
AFFINE = CONVS + TRANSPOSED + (nn.Linear,)
NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm)


@dataclass(frozen=True)
class ChannelLayer:
    """One layer whose output channels can be selected, frozen, updated or pruned.

    ``params`` lists ``(parameter name, channel dimension)`` for every parameter with
    one slice per output channel (the layer's own and its norm's); ``macs`` is the
    layer's multiply-accumulates for one input, ``consumer`` the next channel layer
    that reads this one's channels (or None), used to count what pruning saves.
    """

    name: str
    channels: int
    params: tuple[tuple[str, int], ...]
    norm: str | None
    macs: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    consumer: str | None = None


@dataclass(frozen=True)
class ChannelMap:
    """The channel layers of a model (in execution order), the layer that produces its
    output, and every convolution/dense layer that ran with its MACs per input."""

    layers: tuple[ChannelLayer, ...]
    output_layer: str | None
    all_affine: tuple[str, ...]
    macs: Mapping[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> ChannelLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    @property
    def total_channels(self) -> int:
        return sum(layer.channels for layer in self.layers)


def _macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """Multiply-accumulates of one call for one batch element."""
    batch = max(int(out.shape[0]), 1)
    if isinstance(module, nn.Linear):
        return int(out.numel() // batch * module.in_features)
    kernel = int(torch.tensor(module.kernel_size).prod())
    if isinstance(module, CONVS):
        return int(out.numel() // batch * (module.in_channels // module.groups) * kernel)
    # transposed: every input element meets out_channels/groups × kernel weights
    return int(inp.numel() // batch * (module.out_channels // module.groups) * kernel)


def _channel_dim(module: nn.Module) -> int:
    return 1 if isinstance(module, TRANSPOSED) else 0


def _out_channels(module: nn.Module) -> int:
    return int(module.out_features if isinstance(module, nn.Linear) else module.out_channels)


@torch.no_grad()
def channel_map(module: nn.Module, example: torch.Tensor, layers: list[str] | None = None) -> ChannelMap:
    """The channel layers of ``module``, learnt from one forward pass on ``example[:1]``.

    ``layers=None`` takes every convolution and dense layer except the one that
    produces the model's output (its channels are the classes, not features). A
    layer called more than once (weight sharing) is kept with its first call.
    Raises :class:`ReviseError` for an unknown or non-channel layer name, listing the
    valid ones.
    """
    names = {m: n for n, m in module.named_modules()}
    produced: dict[int, str] = {}
    keep: list[torch.Tensor] = []  # outputs stay alive so their ids are not reused
    order: list[str] = []
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], int]] = {}
    norms: dict[str, str] = {}

    def hook(mod: nn.Module, args: tuple, out: torch.Tensor) -> None:
        name = names.get(mod)
        if name is None or not isinstance(out, torch.Tensor) or not args or not isinstance(args[0], torch.Tensor):
            return
        if isinstance(mod, AFFINE) and name not in shapes:
            produced[id(out)] = name
            keep.append(out)
            order.append(name)
            shapes[name] = (tuple(args[0].shape[1:]), tuple(out.shape[1:]), _macs(mod, args[0], out))
        elif isinstance(mod, NORMS) and id(args[0]) in produced and getattr(mod, "weight", None) is not None:
            owner = produced[id(args[0])]
            if mod.weight.shape[0] == _out_channels(module.get_submodule(owner)):
                norms.setdefault(owner, name)

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, AFFINE + NORMS)]
    was_training = module.training
    module.eval()
    try:
        out = module(example[:1])
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    out, _ = primary_output(out)
    output_layer = produced.get(id(out))
    if layers is None:
        chosen = [n for n in order if n != output_layer]
    else:
        unknown = [n for n in layers if n not in shapes]
        if unknown:
            raise ReviseError(
                f"Layer(s) {', '.join(unknown)} are not convolution or dense layers that run in this model; "
                f"valid layers: {', '.join(order) or 'none'}."
            )
        chosen = [n for n in order if n in layers]
    if not chosen:
        raise ReviseError("The model has no convolution or dense layer besides its output layer; "
                          "there are no channels to select.")
    result = []
    for i, name in enumerate(chosen):
        mod = module.get_submodule(name)
        dim = _channel_dim(mod)
        params = [(f"{name}.weight", dim)]
        if getattr(mod, "bias", None) is not None:
            params.append((f"{name}.bias", 0))
        norm = norms.get(name)
        if norm is not None:
            nmod = module.get_submodule(norm)
            params += [(f"{norm}.{p}", 0) for p in ("weight", "bias") if getattr(nmod, p, None) is not None]
        in_shape, out_shape, macs = shapes[name]
        result.append(ChannelLayer(name, _out_channels(mod), tuple(params), norm, macs, in_shape, out_shape,
                                   _consumer(name, order, shapes, module)))
    return ChannelMap(tuple(result), output_layer, tuple(order), {n: shapes[n][2] for n in order})


def _consumer(name: str, order: list[str], shapes: dict, module: nn.Module) -> str | None:
    """The next layer (in execution order) that reads this layer's channels.

    A convolution whose input has this many channels, or a dense layer whose input
    features are a whole multiple of them (a channel-major flatten). An estimate from
    shapes, used only to count the MACs that removing a channel would save.
    """
    channels = _out_channels(module.get_submodule(name))
    for other in order[order.index(name) + 1:]:
        mod = module.get_submodule(other)
        in_shape = shapes[other][0]
        if isinstance(mod, nn.Linear):
            return other if len(in_shape) == 1 and in_shape[0] % channels == 0 else None
        return other if in_shape and in_shape[0] == channels else None
    return None
