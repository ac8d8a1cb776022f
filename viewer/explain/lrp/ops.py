"""Custom autograd functions whose backward is an LRP rule.

The engine replaces each relevant operation of the forward pass by one of these.
Their forward returns exactly what the original operation returns; their backward
receives the relevance of the output as its "gradient" and returns the relevance of
the inputs.  One ``torch.autograd.grad`` call from the seeded output therefore
yields the input relevance.  Every backward reports what it received and what it
passed on to a :class:`Book`, which sums what biases and stabilisers absorbed.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.autograd import Function

from viewer.explain.lrp.affine import AffineOp, divide, stabilize
from viewer.explain.lrp.rules import Rule

Tensor = torch.Tensor


class Book:
    """Ledger of relevance absorbed on the way down (received minus passed on).

    Besides the total it keeps one figure per batch row while every tensor it sees is
    batch-major (leading dimension == ``batch``), so a batch of cases can report each
    case's absorbed relevance; any other layout (e.g. attention heads folded into the
    batch dimension) switches the per-row figures off rather than guessing.
    """

    def __init__(self) -> None:
        self.parts: list[Tensor] = []
        self.rows: list[Tensor] | None = []
        self.batch = 0

    def reset(self, batch: int = 0) -> None:
        self.parts = []
        self.rows = [] if batch > 1 else None
        self.batch = batch

    def _row_sums(self, t: Tensor) -> Tensor | None:
        if self.rows is None or t.dim() == 0 or t.shape[0] != self.batch:
            self.rows = None
            return None
        return t.reshape(self.batch, -1).sum(1, dtype=torch.float64)

    def absorb(self, received: Tensor, *passed: Tensor | None) -> None:
        # sums in the tensors' own dtype (pairwise, accurate) avoid a float64 copy per layer
        total = received.sum().double()
        rows = self._row_sums(received)
        for p in passed:
            if p is not None:
                total = total - p.sum().double()
                if rows is not None:
                    r = self._row_sums(p)
                    rows = None if r is None else rows - r
        self.parts.append(total)
        if rows is not None and self.rows is not None:
            self.rows.append(rows)

    def absorb_constant(self, part: Tensor) -> None:
        self.parts.append(part.sum().double())
        rows = self._row_sums(part)
        if rows is not None and self.rows is not None:
            self.rows.append(rows)

    def total(self) -> float:
        return float(torch.stack(self.parts).sum()) if self.parts else 0.0

    def per_row(self) -> list[float] | None:
        """Absorbed relevance per batch row, or None when it cannot be split."""
        if self.rows is None:
            return None
        if not self.rows:
            return [0.0] * self.batch
        return [float(v) for v in torch.stack(self.rows).sum(0)]


def _reduce_to(t: Tensor, shape: torch.Size) -> Tensor:
    return t if t.shape == shape else t.sum_to_size(shape)


class AffineFn(Function):
    """A convolution / transposed convolution / dense layer under an LRP rule."""

    @staticmethod
    def forward(ctx, x, rule: Rule, op: AffineOp, w, b, book: Book):
        y, saved = rule.forward(op, x, w, b)
        ctx.rule, ctx.op, ctx.w, ctx.b, ctx.book = rule, op, w, b, book
        # tensors go through save_for_backward (the output may be among them: storing
        # it on ctx would make a reference cycle); flags stay on ctx
        ctx.layout = [isinstance(s, Tensor) for s in saved]
        ctx.plain = [None if isinstance(s, Tensor) else s for s in saved]
        ctx.save_for_backward(*[s for s in saved if isinstance(s, Tensor)])
        return y

    @staticmethod
    def backward(ctx, r):
        tensors = iter(ctx.saved_tensors)
        saved = tuple(next(tensors) if is_t else p for is_t, p in zip(ctx.layout, ctx.plain))
        r_in = ctx.rule.backward(ctx.op, saved, ctx.w, ctx.b, r)
        ctx.book.absorb(r, r_in)
        return r_in.to(r.dtype) if r_in.dtype != r.dtype else r_in, None, None, None, None, None


class PassFn(Function):
    """Elementwise activations and normalisations: relevance passes unchanged."""

    @staticmethod
    def forward(ctx, x, fn: Callable, book: Book):
        return fn(x)

    @staticmethod
    def backward(ctx, r):
        return r, None, None


class LinearNormFn(Function):
    """Parameter-free linear map (pooling, sums, interpolation, products with a
    constant): R_in = x · Jᵀ(R / (y ± ε)).  The transposed map is obtained by
    differentiating ``fn`` once more in the backward; these ops are cheap."""

    @staticmethod
    def forward(ctx, x, fn: Callable, eps: float, book: Book):
        y = fn(x)
        ctx.save_for_backward(x, y)
        ctx.fn, ctx.eps, ctx.book = fn, eps, book
        return y

    @staticmethod
    def backward(ctx, r):
        x, y = ctx.saved_tensors
        g = divide(r, y, ctx.eps)
        with torch.enable_grad():
            xx = x.detach().requires_grad_(True)
            (gx,) = torch.autograd.grad(ctx.fn(xx), xx, g)
        r_in = gx.mul_(x) if gx.shape == x.shape and gx.is_contiguous() else x * gx
        ctx.book.absorb(r, r_in)
        return r_in, None, None, None


class SumFn(Function):
    """``a + s·b`` of two activations (residual connections): each operand gets
    relevance in proportion to its contribution (zennit's Norm rule for sums)."""

    @staticmethod
    def forward(ctx, a, b, sign: float, eps: float, book: Book):
        y = a + sign * b
        ctx.save_for_backward(a, b, y)
        ctx.sign, ctx.eps, ctx.book = sign, eps, book
        return y

    @staticmethod
    def backward(ctx, r):
        a, b, y = ctx.saved_tensors
        g = divide(r, y, ctx.eps)
        ra = _reduce_to(a * g, a.shape)
        rb = _reduce_to(ctx.sign * b * g, b.shape)
        ctx.book.absorb(r, ra, rb)
        return ra, rb, None, None, None


class BiasFn(Function):
    """``x + c`` with a constant c (bias, positional embedding, mask): c takes its share."""

    @staticmethod
    def forward(ctx, x, c, sign: float, eps: float, book: Book):
        y = sign * x + c
        ctx.save_for_backward(x, y)
        ctx.sign, ctx.eps, ctx.book = sign, eps, book
        return y

    @staticmethod
    def backward(ctx, r):
        x, y = ctx.saved_tensors
        g = divide(r, y, ctx.eps).mul_(x)
        r_in = _reduce_to(g if ctx.sign == 1.0 else g.mul_(ctx.sign), x.shape)
        ctx.book.absorb(r, r_in)
        return r_in, None, None, None, None


class InplaceFn(Function):
    """Writes an op's result into the op's first operand, as PyTorch's in-place
    methods (``x.add_(c)``, ``x += y``, ``torch.relu_(x)``) do, so every reference to
    that tensor sees the new values; relevance goes on to the result's own graph."""

    @staticmethod
    def forward(ctx, a, out):
        a.copy_(out)
        ctx.mark_dirty(a)
        return a

    @staticmethod
    def backward(ctx, r):
        return None, r


class ScaleFn(Function):
    """``x · c`` or ``x / c`` with a constant c, and gating ``x · gate``: the gate or
    constant is a fixed factor, so relevance passes to x unchanged."""

    @staticmethod
    def forward(ctx, x, fn: Callable, book: Book):
        y = fn(x)
        ctx.shape = x.shape
        return y

    @staticmethod
    def backward(ctx, r):
        return _reduce_to(r, ctx.shape), None, None


class GateFn(Function):
    """``x · gate`` where both carry relevance paths: all relevance goes to x."""

    @staticmethod
    def forward(ctx, x, gate, fn: Callable, book: Book):
        ctx.xshape = x.shape
        ctx.gshape = gate.shape
        return fn(x, gate)

    @staticmethod
    def backward(ctx, r):
        return _reduce_to(r, ctx.xshape), r.new_zeros(ctx.gshape), None, None


class BilinearFn(Function):
    """Product of two activations (matmul, einsum, elementwise): the uniform rule
    of AttnLRP, half of the ε-rule relevance to each factor."""

    @staticmethod
    def forward(ctx, a, b, fn: Callable, eps: float, book: Book):
        y = fn(a, b)
        ctx.save_for_backward(a, b, y)
        ctx.fn, ctx.eps, ctx.book = fn, eps, book
        return y

    @staticmethod
    def backward(ctx, r):
        a, b, y = ctx.saved_tensors
        g = r / stabilize(y, ctx.eps)
        with torch.enable_grad():
            aa = a.detach().requires_grad_(True)
            bb = b.detach().requires_grad_(True)
            ga, gb = torch.autograd.grad(ctx.fn(aa, bb), (aa, bb), g)
        ra, rb = 0.5 * a * ga, 0.5 * b * gb
        ctx.book.absorb(r, ra, rb)
        return ra, rb, None, None, None


class SoftmaxFn(Function):
    """Softmax inside the network (attention): linearised at x, the shift-invariance
    term acts as a bias (AttnLRP): R_in = x ⊙ (R − s ⊙ Σ R)."""

    @staticmethod
    def forward(ctx, x, dim: int, book: Book):
        s = torch.softmax(x, dim)
        ctx.save_for_backward(x, s)
        ctx.dim, ctx.book = dim, book
        return s

    @staticmethod
    def backward(ctx, r):
        x, s = ctx.saved_tensors
        r_in = x * (r - s * r.sum(ctx.dim, keepdim=True))
        r_in = torch.nan_to_num(r_in, nan=0.0, posinf=0.0, neginf=0.0)  # masked (-inf) logits
        ctx.book.absorb(r, r_in)
        return r_in, None, None


class CatFn(Function):
    """Concatenation where some parts are constants (e.g. a class token): the
    relevance landing on constants is absorbed."""

    @staticmethod
    def forward(ctx, dim: int, flags: tuple, book: Book, *tensors):
        ctx.dim, ctx.flags, ctx.book = dim, flags, book
        ctx.sizes = [t.shape[dim] for t in tensors]
        return torch.cat(tensors, dim)

    @staticmethod
    def backward(ctx, r):
        parts = torch.split(r, ctx.sizes, ctx.dim)
        out = []
        for part, live in zip(parts, ctx.flags):
            if live:
                out.append(part)
            else:
                ctx.book.absorb_constant(part)
                out.append(None)
        return (None, None, None, *out)
