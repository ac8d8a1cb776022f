"""Preparing the model copy: BatchNorm folding and module bookkeeping.

In eval mode a BatchNorm directly after a convolution or dense layer is an affine
map per channel, so it can be merged into that layer's weights and bias: the
layer's rule then sees the function the network really computes.  Which pairs can
be merged is learnt from the data flow of one recorded forward pass (not from module
order), so models that call ``self.bn1(self.conv1(x))`` inside ``forward`` are
folded as well as ``nn.Sequential`` stacks.  A BatchNorm that cannot be merged
(pre-activation networks such as DenseNet) keeps its own rule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

Tensor = torch.Tensor
LINEAR = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_LINEAR_FUNCS = {F.conv1d, F.conv2d, F.conv3d, F.linear, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d,
                 torch.conv1d, torch.conv2d, torch.conv3d, torch.conv_transpose1d, torch.conv_transpose2d,
                 torch.conv_transpose3d}


class _DataFlow(TorchFunctionMode):
    """Records which module produced each linear-layer output and who consumes it."""

    def __init__(self, stack: list) -> None:
        super().__init__()
        self.stack = stack
        self.produced: dict[int, str] = {}  # id(output) -> module name of the linear layer
        self.uses: dict[int, int] = {}
        self.pairs: list[tuple[str, str]] = []  # (linear module, batchnorm module)
        self.calls: dict[str, int] = {}
        self.keep: list[Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = self.stack[-1][0] if self.stack else ""
        if isinstance(out, Tensor):
            for a in list(args) + list(kwargs.values()):
                items = a if isinstance(a, (list, tuple)) else (a,)
                for t in items:
                    if isinstance(t, Tensor) and id(t) in self.produced:
                        self.uses[id(t)] = self.uses.get(id(t), 0) + 1
                        if func is F.batch_norm and t is args[0]:
                            self.pairs.append((self.produced[id(t)], name))
            if func in _LINEAR_FUNCS:
                self.calls[name] = self.calls.get(name, 0) + 1
                self.produced[id(out)] = name
                self.uses[id(out)] = 0
                self.keep.append(out)
                self._last = out
            elif func is F.batch_norm:
                self.calls[name] = self.calls.get(name, 0) + 1
        return out


def install_stack_hooks(model: nn.Module, stack: list) -> None:
    """Keep ``stack`` equal to the chain of modules currently executing."""
    for name, module in model.named_modules():
        def pre(mod, args, _name=name):
            stack.append((_name, mod))

        def post(mod, args, out):
            if stack:
                stack.pop()

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post, always_call=True)


def _fold(linear: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> bool:
    if bn.running_mean is None or bn.running_var is None:
        return False
    transposed = isinstance(linear, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d))
    if transposed and linear.groups != 1:
        return False
    w = linear.weight.detach()
    out_channels = w.shape[1] if transposed else w.shape[0]
    if out_channels != bn.num_features:
        return False
    scale = bn.running_var.detach().add(bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight.detach()
    shift = -bn.running_mean.detach() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach()
    shape = [1] * w.ndim
    shape[1 if transposed else 0] = -1
    bias = linear.bias.detach() if linear.bias is not None else torch.zeros_like(shift)
    linear.weight = nn.Parameter(w * scale.reshape(shape), requires_grad=False)
    linear.bias = nn.Parameter(bias * scale + shift, requires_grad=False)
    return True


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def fold_batchnorms(model: nn.Module, x: Tensor, stack: list) -> list[str]:
    """Merge each eval-mode BatchNorm into the conv/dense layer that feeds only it.

    Runs the model once on ``x`` to see the data flow; returns the folded BatchNorm
    names.  ``model`` must be the engine's private copy (it is modified).
    """
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return []
    flow = _DataFlow(stack)
    with torch.no_grad(), flow:
        model(x)
    stack.clear()
    modules = dict(model.named_modules())
    folded = []
    for lin_name, bn_name in flow.pairs:
        lin, bn = modules.get(lin_name), modules.get(bn_name)
        if not isinstance(lin, LINEAR) or not isinstance(bn, nn.modules.batchnorm._BatchNorm):
            continue
        if bn.training or flow.calls.get(lin_name) != 1 or flow.calls.get(bn_name) != 1:
            continue
        if sum(1 for ln, _ in flow.pairs if ln == lin_name) != 1:
            continue
        uses = [flow.uses[i] for i, n in flow.produced.items() if n == lin_name]
        if uses != [1]:
            continue
        if _fold(lin, bn):
            _replace(model, bn_name, nn.Identity())
            folded.append(bn_name)
    return folded
