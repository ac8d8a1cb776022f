"""Normalisation layers under LRP, as AttnLRP (Achtibat et al. 2024) treats them.

LayerNorm, GroupNorm, InstanceNorm and RMSNorm compute
``y = (x - μ(x)) / σ(x) · w + b`` (RMSNorm: no ``μ``, no ``b``).  The division by
σ is held constant (the identity rule on the division), the centring ``x - μ(x)``
is a linear map and ``w``, ``b`` a scale and a bias, so the whole layer is the
linear map ``A x + b`` with ``A = diag(w/σ)(I - averaging)``, and the ε-rule gives

    R_in = x ⊙ Aᵀ (R / (y ± ε)),    Aᵀ u = (w/σ)·u - mean over the group of (w/σ)·u.

The bias takes its share (Σ g·b), nothing else is lost.  Passing the relevance of
the whole layer to its input unchanged (the "identity" reading) is not the same
thing: the relevance of ``y`` then lands on ``x`` where ``y`` and ``x`` differ
arbitrarily, and the next ε-rule divides by ``x`` (on ViT-B the input share came
out as -2,664 times the explained logit).

An eval-mode BatchNorm that could not be folded into a convolution is a per-channel
affine map (running statistics are constants) and gets the ε-rule of that map, except
under the ZPlus presets, which pass its relevance unchanged (``presets.Preset``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch.autograd import Function

from viewer.explain.lrp.affine import divide
from viewer.explain.lrp.ledger import Book, Site
from viewer.explain.lrp.ops import _save, _saved, own, result
from viewer.explain.lrp.rules import dot

Tensor = torch.Tensor


@dataclass(frozen=True)
class Grouping:
    """Over which elements a normalisation takes its statistics: ``dims`` of the
    tensor, after splitting dim 1 into (``groups``, channels per group) when
    ``groups`` > 0 (GroupNorm).  ``centre``: whether the mean is subtracted
    (not for RMSNorm; nothing is reduced when the statistics are constants)."""

    dims: tuple[int, ...] = ()
    groups: int = 0
    centre: bool = True

    def _view(self, t: Tensor) -> Tensor:
        return t.reshape(t.shape[0], self.groups, -1, *t.shape[2:]) if self.groups else t

    def stats(self, x: Tensor, eps: float) -> Tensor:
        """1/σ broadcastable to x (σ the standard deviation, or the RMS)."""
        xv = self._view(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x)
        if self.centre:
            var = xv.var(self.dims, unbiased=False, keepdim=True)
        else:
            var = xv.pow(2).mean(self.dims, keepdim=True)
        inv = var.add_(eps).rsqrt_()
        if self.groups:
            inv = inv.expand(*xv.shape[:3], *inv.shape[3:]).reshape(x.shape[0], x.shape[1], *inv.shape[3:])
        return inv

    def centred(self, u: Tensor) -> Tensor:
        """u minus its mean over each group (the transpose of the centring map)."""
        if not self.centre or not self.dims:
            return u
        uv = self._view(u)
        return uv.sub(uv.mean(self.dims, keepdim=True)).reshape(u.shape)


class NormFn(Function):
    """``y = fn(x)``, a normalisation, with the rule above; the product of ``factors``
    is w/σ and ``shift`` is the bias (each broadcastable to x, or None)."""

    @staticmethod
    def forward(ctx, x, fn: Callable, grouping: Grouping, factors: tuple, shift, eps: float, book: Book, site: Site):
        out = own(result(fn(x), x), x)
        ctx.n = len(factors)
        ctx.has_shift = shift is not None
        # with constant statistics (an unfolded BatchNorm) the output is formed again in
        # the backward (one elementwise pass) instead of kept: a ReLU applied to it in
        # place (DenseNet's pre-activation layers) would need a copy. Norms that reduce
        # keep it: recomputing costs their reductions, and the next layer keeps it anyway
        ctx.again = not grouping.dims
        shift_ = [shift] if shift is not None else []
        if ctx.again:
            _save(ctx, None, x, *factors, *shift_)
        else:
            _save(ctx, out, x, out, *factors, *shift_)
        ctx.fn, ctx.grouping, ctx.eps, ctx.book, ctx.site = fn, grouping, eps, book, site
        return out

    @staticmethod
    def backward(ctx, r):
        if ctx.again:
            x, *rest = _saved(ctx, r.dtype)
            with torch.no_grad():
                y = ctx.fn(x).to(r.dtype)
        else:
            x, y, *rest = _saved(ctx, r.dtype)
        factors, shift = rest[: ctx.n], (rest[ctx.n] if ctx.has_shift else None)
        g = divide(r, y, ctx.eps)
        den = dot(g, y)
        bias = den.new_zeros(()) if shift is None else dot(g.sum_to_size(shift.shape), shift)
        for f in factors:
            g = g.mul_(f)
        r_in = ctx.grouping.centred(g).mul_(x)
        ctx.book.absorb(ctx.site, r, r_in, bias=bias, den=den)
        return r_in, None, None, None, None, None, None, None


def _channel(t: Tensor | None, x: Tensor) -> Tensor | None:
    """A per-channel vector shaped to broadcast against (N, C, *spatial)."""
    return None if t is None else t.reshape(1, -1, *([1] * (x.dim() - 2)))


def _factors(*ts: Tensor | None) -> tuple[Tensor, ...]:
    return tuple(t for t in ts if t is not None)


def _last(normalized_shape) -> tuple[int, ...]:
    n = len(tuple(normalized_shape)) if isinstance(normalized_shape, (tuple, list, torch.Size)) else 1
    return tuple(range(-n, 0))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    grouping = Grouping(_last(normalized_shape))
    factors = _factors(grouping.stats(x, eps), weight)
    return grouping, factors, bias, lambda t: F.layer_norm(t, normalized_shape, weight, bias, eps)


def rms_norm(x, normalized_shape, weight=None, eps=None):
    grouping = Grouping(_last(normalized_shape), centre=False)
    e = torch.finfo(x.dtype).eps if eps is None else eps
    factors = _factors(grouping.stats(x, e), weight)
    return grouping, factors, None, lambda t: F.rms_norm(t, normalized_shape, weight, eps)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    grouping = Grouping(tuple(range(2, x.dim() + 1)), groups=int(num_groups))
    inv = grouping.stats(x, eps)
    factors = (inv if weight is None else inv * _channel(weight, x),)
    return grouping, factors, _channel(bias, x), lambda t: F.group_norm(t, num_groups, weight, bias, eps)


def _constant_stats(x, mean, var, weight, bias, eps):
    """Running statistics: a per-channel affine map whose constant part is a bias."""
    scale = _channel(var.add(eps).rsqrt(), x)
    if weight is not None:
        scale = scale * _channel(weight, x)
    shift = -_channel(mean, x) * scale
    if bias is not None:
        shift = shift + _channel(bias, x)
    return Grouping(centre=False), (scale,), shift


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    def fn(t):
        return F.instance_norm(t, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)

    if use_input_stats or running_mean is None:
        grouping = Grouping(tuple(range(2, x.dim())))
        inv = grouping.stats(x, eps)
        return grouping, (inv if weight is None else inv * _channel(weight, x),), _channel(bias, x), fn
    return (*_constant_stats(x, running_mean, running_var, weight, bias, eps), fn)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """A BatchNorm that could not be folded into the layer before it (pre-activation
    networks such as DenseNet), where the preset gives it this rule (``Preset.batchnorm``;
    the ZPlus presets pass its relevance unchanged).  Passing it unchanged under ε or γ
    hands the input the relevance of (x - μ)/σ·w + b, and the ε-rule of the layer below
    then divides by x (DenseNet121 under the ε preset: input relevance 10²⁹ times the logit)."""
    def fn(t):
        return F.batch_norm(t, running_mean, running_var, weight, bias, False, momentum, eps)

    if training or running_mean is None or running_var is None:
        def fn_batch(t):
            return F.batch_norm(t, None, None, weight, bias, True, 0.0, eps)
        grouping = Grouping((0, *range(2, x.dim())))
        inv = grouping.stats(x, eps)
        return grouping, (inv if weight is None else inv * _channel(weight, x),), _channel(bias, x), fn_batch
    return (*_constant_stats(x, running_mean, running_var, weight, bias, eps), fn)


PARSERS = {"layer_norm": layer_norm, "rms_norm": rms_norm, "group_norm": group_norm, "instance_norm": instance_norm,
           "batch_norm": batch_norm}
