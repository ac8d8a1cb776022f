"""LRP rules for input layers: relevance shared by the input's position in the
receptive field (WSquare, Flat) or by its distance from the bounds of the input
domain (ZBox), not only by its contribution to the output.

Because they give relevance to positions whatever their value, an input padded
with constants hands some of it to the padding (``routing.padded`` books it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from viewer.explain.lrp.affine import constant_like, derived, divide
from viewer.explain.lrp.rules import Rule, _wneg, _wpos, bias_share, dot, report


@dataclass(frozen=True)
class WSquare(Rule):
    """Shares by squared weights, ignoring the input values (for unbounded first layers)."""

    stabilizer: float = 1e-6
    name = "wsquare"
    pooled = True

    def shares(self, w, b, dtype):
        """The weights (and bias) that decide each input's share of the output's relevance."""
        return (w * w).to(dtype), None if b is None else (b * b).to(dtype)

    def forward(self, op, x, w, b):
        return op.forward(x, w, b), (x,)

    def backward(self, op, saved, w, b, r, shares=None):
        (x,) = saved
        ws, bs = self.shares(w, b, r.dtype)
        z = op.forward(torch.ones_like(x, dtype=r.dtype), ws, bs)
        g = divide(r, z, self.stabilizer)
        if shares is not None:
            report(shares, bias_share(op, g, bs), dot(g, z))
        return op.vjp(g, ws, x)


@dataclass(frozen=True)
class Flat(WSquare):
    """Uniform over the receptive field: ignores both inputs and weights."""

    name = "flat"

    def shares(self, w, b, dtype):
        return torch.ones_like(w, dtype=dtype), None


@dataclass(frozen=True)
class ZBox(Rule):
    """For the input layer of a model whose input lies in a box [low, high]."""

    low: object = None
    high: object = None
    stabilizer: float = 1e-6
    name = "zbox"
    pooled = True

    def _scalar_bounds(self):
        """Both bounds plain numbers: then the bound terms are constant maps."""
        def num(v):
            if isinstance(v, (int, float)):
                return float(v)
            if isinstance(v, torch.Tensor) and v.ndim == 0:
                return float(v)
            return None
        lo, hi = num(self.low), num(self.high)
        return None if lo is None or hi is None else (lo, hi)

    def forward(self, op, x, w, b):
        y = op.forward(x, w, b)
        if y.dtype in (torch.float16, torch.bfloat16):  # z = y - offset cancels: keep float32
            y = y.float()
        bounds = self._scalar_bounds()
        if bounds is None:
            return y, (x, self._exact(op, x, w, constant_like(self.low, x), constant_like(self.high, x), y.dtype))
        # l·W⁺ + h·W⁻ applied to constant inputs does not depend on x: computed once per
        # weight and input shape, so ZBox costs one map like the gradient
        lo, hi = bounds
        key = ("zbox", op, lo, hi, tuple(x.shape), x.dtype, y.dtype, x.device)
        offset, noise = derived(w, key, lambda: self._offset(op, x, w, lo, hi))
        yb = y if b is None else y - (b if op.kind == "linear" else b.reshape(-1, *([1] * (y.ndim - 2))))
        z = yb - offset  # the bias is not part of ZBox's denominator
        if noise is not None and bool((z.abs() <= noise).any()):
            # z = Σ (x−l)·w⁺ + (x−h)·w⁻ is a sum of non-negative terms for x in the box,
            # and 0 where x sits at the bound each weight looks at (background at the
            # lower bound, seen through a 1×1 stem); y − offset leaves y's rounding noise
            # there, larger than ε, which would absorb or pass on relevance at random
            z = self._exact(op, x, w, lo, hi, z.dtype)
        return y, (x, z)

    @staticmethod
    def _offset(op, x, w, lo, hi):
        """l·W⁺ + h·W⁻ on constant inputs, and (below float64) the rounding noise of
        ``y - offset`` where the two nearly cancel: 1e-5 of Σ|l·w⁺| + |h·w⁻|."""
        ones = torch.ones_like(x)
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        offset = op.forward(ones, wp * lo + wn * hi, None)
        if x.dtype == torch.float64:
            return offset, None
        return offset, op.forward(ones, wp * (1e-5 * abs(lo)) - wn * (1e-5 * abs(hi)), None)

    @staticmethod
    def _exact(op, x, w, lo, hi, dtype):
        """The denominator as the sum of its two non-negative parts (no cancellation)."""
        return op.forward(x - lo, _wpos(w), None).to(dtype).add_(op.forward(x - hi, _wneg(w), None))

    def backward(self, op, saved, w, b, r, shares=None):
        x, z = saved
        g = divide(r, z, self.stabilizer)
        if shares is not None:  # the bias is outside ZBox's denominator: it takes nothing
            report(shares, g.new_zeros((), dtype=torch.float64), dot(g, z))
        # x·Wᵀg - l·W⁺ᵀg - h·W⁻ᵀg with Wᵀg = W⁺ᵀg + W⁻ᵀg: two transposed maps
        a, c = op.vjp_pair(g, _wpos(w), _wneg(w), x)
        bounds = self._scalar_bounds()
        lo, hi = bounds if bounds is not None else (constant_like(self.low, x), constant_like(self.high, x))
        return a.mul_(x - lo).add_(c.mul_(x - hi))
