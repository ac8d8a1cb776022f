"""The linear maps that LRP rules act on: convolution, transposed convolution, dense.

A rule needs two things from a layer: the forward map with modified weights
(``forward(x, W, b)``) and the transposed map (``vjp(g, W, x)``, the input part of
the layer's gradient).  Keeping both here lets every rule be written once for all
layer types, and lets the backward reuse autograd's own convolution kernels instead
of re-running the layer forward as hook-based implementations do.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _tuple(value, n: int) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value) if len(value) == n else tuple(int(value[0]) for _ in range(n))
    return (int(value),) * n


@dataclass(frozen=True)
class AffineOp:
    """One call of a linear layer, minus its weights.

    ``kind`` is ``"linear"``, ``"conv"`` or ``"conv_transpose"``; ``nd`` the number
    of spatial dimensions for convolutions.
    """

    kind: str
    nd: int = 0
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    output_padding: tuple[int, ...] = ()
    groups: int = 1

    @staticmethod
    def conv(nd: int, stride=1, padding=0, dilation=1, groups=1) -> "AffineOp":
        return AffineOp("conv", nd, _tuple(stride, nd), _tuple(padding, nd), _tuple(dilation, nd), (0,) * nd, int(groups))

    @staticmethod
    def conv_transpose(nd: int, stride=1, padding=0, output_padding=0, groups=1, dilation=1) -> "AffineOp":
        return AffineOp(
            "conv_transpose", nd, _tuple(stride, nd), _tuple(padding, nd), _tuple(dilation, nd),
            _tuple(output_padding, nd), int(groups),
        )

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "linear":
            return F.linear(x, weight, bias)
        if self.kind == "conv":
            fn = (F.conv1d, F.conv2d, F.conv3d)[self.nd - 1]
            return fn(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[self.nd - 1]
        return fn(x, weight, bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation)

    def vjp(self, g: torch.Tensor, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Transpose of the map applied to ``g`` (shaped like the output); result shaped like x."""
        if self.kind == "linear":
            return g.matmul(weight.to(g.dtype))
        grad_input, _, _ = torch.ops.aten.convolution_backward(
            g, x.to(g.dtype), weight.to(g.dtype), None, list(self.stride), list(self.padding), list(self.dilation),
            self.kind == "conv_transpose", list(self.output_padding), self.groups, [True, False, False],
        )
        return grad_input


def stabilize(z: torch.Tensor, eps: float) -> torch.Tensor:
    """Push ``z`` away from zero by ``eps`` in the direction of its sign (+0 counts as
    positive; three in-place passes, this runs once per layer in the backward)."""
    return z.abs().add_(eps).copysign_(z)


def divide(r: torch.Tensor, z: torch.Tensor, eps: float) -> torch.Tensor:
    """``r / stabilize(z, eps)`` in one new buffer (fresh CPU allocations cost page
    faults, so the backward reuses buffers where it can)."""
    if r.shape != z.shape or r.dtype != z.dtype:
        return r / stabilize(z, eps)
    out = z.abs().add_(eps).copysign_(z)
    return torch.div(r, out, out=out)


def constant_like(value, x: torch.Tensor) -> torch.Tensor:
    """A bound (float or broadcastable tensor, e.g. per channel) broadcast to x's shape."""
    t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if t.ndim == 1 and t.numel() == x.shape[1] and x.ndim > 2:
        t = t.reshape(1, -1, *([1] * (x.ndim - 2)))
    return t.expand_as(x)


# -- weights derived from a layer's weights (W + γW⁺, W⁺, ...), computed once per weight --
_DERIVED: dict[int, tuple[weakref.ref, int, dict]] = {}


def derived(w: torch.Tensor, key: tuple, make) -> torch.Tensor:
    """``make()`` for weight ``w``, cached while ``w`` lives and is not modified.

    Rules need modified copies of a layer's weights in the forward *and* the
    backward of every call; the engine's prepared model copy keeps its weights, so
    building them once saves a pass over all weights twice per layer and call.  The
    entry is keyed by the tensor's identity and version (an in-place update makes a
    new entry) and dropped when the weight is freed.
    """
    wid = id(w)
    hit = _DERIVED.get(wid)
    if hit is None or hit[0]() is not w or hit[1] != w._version:
        try:
            ref = weakref.ref(w, lambda _r, wid=wid: _DERIVED.pop(wid, None))
        except TypeError:  # not weak-referenceable: no caching
            return make()
        hit = (ref, w._version, {})
        _DERIVED[wid] = hit
    table = hit[2]
    if key not in table:
        if len(table) >= 16:  # e.g. ZBox offsets for many input shapes
            table.clear()
        table[key] = make()
    return table[key]
