"""Custom autograd functions whose backward is an LRP rule.

The engine replaces each relevant operation of the forward pass by one of these.
Their forward returns exactly what the original operation returns; their backward
receives the relevance of the output as its "gradient" and returns the relevance of
the inputs.  One ``torch.autograd.grad`` call from the seeded output therefore
yields the input relevance.  Every backward that can absorb relevance reports what
it received, what it passed on and the closed form of its bias and stabiliser
shares to a :class:`~viewer.explain.lrp.ledger.Book`.

Three conventions keep in-place code and half precision working:

- an output is never a view or one of the inputs (:func:`own`): PyTorch forbids
  in-place changes of such outputs of custom functions (MONAI's ``out += residual``
  after an InstanceNorm, whose output is a view made inside ``F.instance_norm``);
- an output the backward needs is held by :class:`Kept` (a detached alias with its
  version), not saved: the tracer can hand the function an unchanged copy before
  the model overwrites the output in place (:func:`protect`);
- under autocast the heavy maps run in half precision but outputs keep the dtype of
  the inputs, so the relevance pass runs in float32 (:func:`result`, :func:`upcast`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import torch
from torch.autograd import Function

from viewer.explain.lrp import sparse
from viewer.explain.lrp.affine import AffineOp, derived, divide
from viewer.explain.lrp.ledger import Book, Site
from viewer.explain.lrp.pooling import Pooled, take_stash
from viewer.explain.lrp.rules import Rule, dot, mark_nonneg, marked_nonneg

Tensor = torch.Tensor


# -- conventions ---------------------------------------------------------------------------------
def own(out: Tensor, *inputs: Tensor) -> Tensor:
    """``out`` as a tensor of its own (not a view, not an input), sharing its data."""
    if out._base is not None or any(out is t for t in inputs):
        return out.detach()
    return out


def result(out: Tensor, like: Tensor) -> Tensor:
    """The output in the input's dtype (autocast computes some maps in half precision)."""
    if out.dtype != like.dtype and out.is_floating_point() and like.is_floating_point():
        return out.to(like.dtype)
    return out


def upcast(t, dtype: torch.dtype):
    """A saved half-precision tensor in the dtype of the relevance."""
    if isinstance(t, Tensor) and t.is_floating_point() and t.dtype != dtype and t.dtype.itemsize < dtype.itemsize:
        return t.to(dtype)
    return t


def low_precision(x: Tensor) -> torch.dtype | None:
    """The autocast dtype when autocast is on for x's device and x is wider."""
    kind = x.device.type
    if not torch.is_autocast_enabled(kind):
        return None
    dtype = torch.get_autocast_dtype(kind)
    return dtype if x.dtype.itemsize > dtype.itemsize else None


class Kept:
    """An output the backward needs, held as a detached alias (no reference cycle
    through the output's ``grad_fn``) together with its version."""

    __slots__ = ("t", "version")

    def __init__(self, t: Tensor) -> None:
        self.t = t.detach()
        self.version = t._version

    def get(self) -> Tensor:
        if self.t._version != self.version:
            raise RuntimeError("LRP: an operation's output was changed in place by an operation the explainer "
                               "does not know; rewrite it out of place (e.g. `h = h.clamp(0)`).")
        return self.t


def protect(a: Tensor, spare: Tensor | None) -> None:
    """Before ``a`` is overwritten in place: if the function that produced it (or its
    base) keeps it for its backward, give that function an unchanged copy (``spare``
    when it holds ``a``'s values, else a clone)."""
    base = a if a._base is None else a._base
    node = base.grad_fn
    kept = getattr(node, "kept", None) if node is not None else None
    if not isinstance(kept, Kept) or kept.t.untyped_storage().data_ptr() != a.untyped_storage().data_ptr():
        return
    usable = spare is not None and base is a and spare.shape == a.shape and spare.dtype == a.dtype
    node.kept = Kept(spare if usable else kept.t.clone())


def _save(ctx, out: Tensor, *tensors: Tensor) -> None:
    """Save ``tensors`` for the backward, the output among them by :class:`Kept`."""
    ctx.layout = [t is out for t in tensors]
    ctx.save_for_backward(*[t for t in tensors if t is not out])
    ctx.kept = Kept(out) if any(ctx.layout) else None


def _saved(ctx, dtype: torch.dtype) -> list[Tensor]:
    plain = iter(ctx.saved_tensors)
    return [upcast(ctx.kept.get() if is_out else next(plain), dtype) for is_out in ctx.layout]


def _reduce_to(t: Tensor, shape: torch.Size) -> Tensor:
    return t if t.shape == shape else t.sum_to_size(shape)


def _broadcast_bias(g: Tensor, c: Tensor) -> Tensor:
    """Σ g·c for a constant c that broadcasts against g (reduce g first: no temporary)."""
    if c.shape == g.shape:
        return dot(g, c)
    if c.dim() <= g.dim():
        return dot(g.sum_to_size(c.shape), c)
    return (g * c).sum(dtype=torch.float64)


# -- layers with weights ------------------------------------------------------------------------
class AffineFn(Function):
    """A convolution / transposed convolution / dense layer under an LRP rule."""

    @staticmethod
    def forward(ctx, x, rule: Rule, op: AffineOp, w, b, book: Book, site: Site):
        low = low_precision(x)
        xs = x
        if low is not None:
            xs = x.to(low)
            if marked_nonneg(x):
                mark_nonneg(xs)
        y, saved = rule.forward(op, xs, w, b)
        out = own(result(y, x), x)
        ctx.rule, ctx.op, ctx.w, ctx.b, ctx.book, ctx.site = rule, op, w, b, book, site
        ctx.low = low
        ctx.takes_pooled = rule.takes_pooled(saved)  # see pooling.py
        tensors = [s for s in saved if isinstance(s, Tensor)]
        ctx.is_tensor = [isinstance(s, Tensor) for s in saved]
        ctx.plain = [None if isinstance(s, Tensor) else s for s in saved]
        _save(ctx, out if y is out else None, *tensors)
        return out

    @staticmethod
    def backward(ctx, r):
        part, only = take_stash(ctx, r)
        if only:  # all of this layer's relevance came by a max pooling that ran the rule already
            return part, None, None, None, None, None, None
        r_in = affine_backward(ctx, r)
        if part is not None:
            r_in = r_in + part
        return r_in, None, None, None, None, None, None


def affine_backward(ctx, r: "Tensor | Pooled") -> Tensor:
    """The rule of an affine layer (the context of its :class:`AffineFn` node) on the
    relevance ``r`` at its output, or on :class:`Pooled` relevance (a max pooling
    joined to this layer runs it so), with the ledger's entry."""
    pooled = isinstance(r, Pooled)
    tensors = iter(_saved(ctx, r.dtype))
    saved = tuple(next(tensors) if is_t else p for is_t, p in zip(ctx.is_tensor, ctx.plain))
    shares: list | None = [] if ctx.book.active else None
    w, b = ctx.w, ctx.b
    if ctx.low is not None:  # the weights as the half-precision forward used them
        w = derived(w, ("rounded", ctx.low, r.dtype), lambda: ctx.w.to(ctx.low).to(r.dtype))
        b = None if b is None else b.to(ctx.low).to(r.dtype)
    live = _live_channels(ctx.op, r, ctx.book.live) if ctx.book.sparse and not pooled else None
    if live is None and ctx.book.sparse and ctx.op.groups == 1:
        ctx.book.sparse = False  # relevance is dense from here down: stop looking
    r_used = r
    if live is not None:
        # relevance in a few output channels only (a conditional pass just below its
        # mask): the rule runs on those channels' slices of the output, weights and bias
        cdim, wdim = _channel_dims(ctx.op, r)
        saved = tuple(t.index_select(cdim, live) if i > 0 and isinstance(t, Tensor) and t.shape == r.shape else t
                      for i, t in enumerate(saved))
        w, b = w.index_select(wdim, live), None if b is None else b.index_select(0, live)
        r_used = r.index_select(cdim, live)
    op = ctx.op
    if ctx.book.spatial and sparse.applies(op, r_used):
        # relevance at a few positions only (below a global max pooling, or a conditional
        # pass of a localised feature): the transposed map runs from those positions
        support = sparse.support(op, r_used, w)
        if support is None:
            ctx.book.spatial = False  # relevance spreads going down: stop looking in this pass
        else:
            op = replace(op, support=support)
            if pooled:
                r.few()  # the quotient is read at those winners only
    try:
        r_in = ctx.rule.backward(op, saved, w, b, r_used, shares)
    finally:
        if pooled:
            r.done()
    if shares is not None:
        bias, den, stab = shares[0] if shares else (None, None, None)
        ctx.book.absorb(ctx.site, r.small if pooled else r, r_in, bias=bias, den=den, stab=stab)
    return result(r_in, r.small if pooled else r)


SPARSE_SHARE = 0.5  # at most this share of a layer's output channels carrying relevance: sliced


def _channel_dims(op: AffineOp, r: Tensor) -> tuple[int, int]:
    """The output's channel dimension and the weight's output-channel dimension."""
    if op.kind == "linear":
        return r.dim() - 1, 0
    return 1, (1 if op.kind == "conv_transpose" else 0)


def _live_channels(op: AffineOp, r: Tensor, known: tuple | None = None) -> Tensor | None:
    """Indices of the output channels where ``r`` is not all zero, when they are few
    enough for a sliced backward to pay (one pass over ``r``, unless ``known`` names
    ``r`` with its channels: ``Book.live``); else None."""
    if op.groups != 1 or r.dim() < 2:
        return None
    cdim, _ = _channel_dims(op, r)
    channels = r.shape[cdim]
    if channels < 4:
        return None
    if known is not None and known[0] is r and known[1] % r.dim() == cdim:
        live = known[2]
    else:
        dims = tuple(i for i in range(r.dim()) if i != cdim)
        # the largest |r| per channel, a NaN staying live: a vectorised reduction where
        # ``ne(0).any`` is a slow boolean one (0.06 against 0.47 ms at 32×24×28×24 voxels)
        live = r.abs().amax(dims).ne(0) if len(dims) > 0 else r.ne(0)
        live = live.nonzero().flatten()
    if live.numel() > SPARSE_SHARE * channels:
        return None
    return live if live.numel() else live.new_zeros(1)  # no relevance at all: one (zero) channel


# -- parameter-free maps -------------------------------------------------------------------------
class PassFn(Function):
    """Elementwise activations (identity rule): relevance passes unchanged."""

    @staticmethod
    def forward(ctx, x, fn: Callable):
        return own(result(fn(x), x), x)

    @staticmethod
    def backward(ctx, r):
        return r, None


class InplacePassFn(Function):
    """An activation applied in place (``F.relu(h, inplace=True)``, ``torch.relu_``):
    ``fn_`` overwrites ``a``, relevance passes unchanged (call :func:`protect` first)."""

    @staticmethod
    def forward(ctx, a, fn_: Callable):
        fn_(a)
        ctx.mark_dirty(a)
        return a

    @staticmethod
    def backward(ctx, r):
        return r, None


class LinearNormFn(Function):
    """Parameter-free linear map (pooling, sums, interpolation, products with a
    constant): R_in = x · Jᵀ(R / (y ± ε)).  The transposed map is obtained by
    differentiating ``fn`` once more in the backward; these ops are cheap."""

    @staticmethod
    def forward(ctx, x, fn: Callable, eps: float, book: Book, site: Site):
        y = fn(x)
        out = own(result(y, x), x)
        _save(ctx, out, x, out)
        ctx.fn, ctx.eps, ctx.book, ctx.site = fn, eps, book, site
        return out

    @staticmethod
    def backward(ctx, r):
        x, y = _saved(ctx, r.dtype)
        g = divide(r, y, ctx.eps)
        den = dot(g, y)
        with torch.enable_grad():
            xx = x.detach().requires_grad_(True)
            (gx,) = torch.autograd.grad(ctx.fn(xx).to(g.dtype), xx, g)
        r_in = gx.mul_(x) if gx.shape == x.shape and gx.is_contiguous() and gx.dtype == x.dtype else x * gx
        ctx.book.absorb(ctx.site, r, r_in, bias=den.new_zeros(()), den=den)
        return r_in, None, None, None, None


class SumFn(Function):
    """``a + s·b`` of two activations (residual connections): each operand gets
    relevance in proportion to its contribution (the ε-rule for sums).

    The sum is not kept but formed again in the backward from the saved operands
    (one cheap pass): a ReLU applied to it in place would otherwise need a copy."""

    @staticmethod
    def forward(ctx, a, b, sign: float, eps: float, book: Book, site: Site):
        out = own(torch.add(a, b, alpha=sign), a, b)
        ctx.save_for_backward(a, b)
        ctx.sign, ctx.eps, ctx.book, ctx.site = sign, eps, book, site
        return out

    @staticmethod
    def backward(ctx, r):
        a, b = (upcast(t, r.dtype) for t in ctx.saved_tensors)
        y = torch.add(a, b, alpha=ctx.sign)
        g = divide(r, y, ctx.eps)
        den = dot(g, y) if ctx.book.active else None
        if y.shape == a.shape and y.dtype == a.dtype:
            ra = torch.mul(a, g, out=y)  # y's buffer is free now
        else:
            ra = _reduce_to(a * g, a.shape)
        rb = g.mul_(b) if g.shape == b.shape and g.dtype == b.dtype else _reduce_to(b * g, b.shape)
        if ctx.sign != 1.0:
            rb = rb.mul_(ctx.sign)
        if den is not None:
            ctx.book.absorb(ctx.site, r, ra, rb, bias=den.new_zeros(()), den=den)
        return ra, rb, None, None, None, None


class BiasFn(Function):
    """``s·x + c`` with a constant c (bias, positional embedding, mask): c takes its share."""

    @staticmethod
    def forward(ctx, x, c, sign: float, eps: float, book: Book, site: Site):
        out = own(sign * x + c, x)
        _save(ctx, out, x, out, c)
        ctx.sign, ctx.eps, ctx.book, ctx.site = sign, eps, book, site
        return out

    @staticmethod
    def backward(ctx, r):
        x, y, c = _saved(ctx, r.dtype)
        g = divide(r, y, ctx.eps)
        den = dot(g, y)
        bias = _broadcast_bias(g, c)
        g = g.mul_(x)
        r_in = _reduce_to(g if ctx.sign == 1.0 else g.mul_(ctx.sign), x.shape)
        ctx.book.absorb(ctx.site, r, r_in, bias=bias, den=den)
        return r_in, None, None, None, None, None


class InplaceFn(Function):
    """Writes an op's result into the op's first operand, as PyTorch's in-place
    methods (``x.add_(c)``, ``x += y``, ``torch.relu_(x)``) do, so every reference to
    that tensor sees the new values; relevance goes on to the result's own graph."""

    @staticmethod
    def forward(ctx, a, out):
        ctx.view = a._base is not None
        a.copy_(out)
        ctx.mark_dirty(a)
        return a

    @staticmethod
    def backward(ctx, r):
        # the overwritten values get nothing; for a view an explicit zero, because
        # autograd drops the whole base's relevance when the view's is None
        return (torch.zeros_like(r) if ctx.view else None), r


class ScaleFn(Function):
    """``x · c``, ``x / c`` or ``-x`` with a constant c: a linear map of one input per
    output, so the ε-rule passes relevance to x unchanged."""

    @staticmethod
    def forward(ctx, x, fn: Callable):
        ctx.shape = x.shape
        return own(result(fn(x), x), x)

    @staticmethod
    def backward(ctx, r):
        return _reduce_to(r, ctx.shape), None


class GateFn(Function):
    """``x · gate`` (or ``x / divisor``) where both carry relevance paths: the gate is
    taken as a constant factor, so all relevance goes to x (see ``trace.py``)."""

    @staticmethod
    def forward(ctx, x, gate, fn: Callable):
        ctx.xshape = x.shape
        ctx.gshape = gate.shape
        return own(result(fn(x, gate), x), x, gate)

    @staticmethod
    def backward(ctx, r):
        return _reduce_to(r, ctx.xshape), r.new_zeros(ctx.gshape), None


def _matmul_grads(a: Tensor, b: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    if a.dim() == 1 or b.dim() == 1:
        raise NotImplementedError
    ga = _reduce_to(g.matmul(b.transpose(-1, -2)), a.shape)
    gb = _reduce_to(a.transpose(-1, -2).matmul(g), b.shape)
    return ga, gb


class BilinearFn(Function):
    """Product of two activations (matmul, einsum, elementwise): the uniform rule
    of AttnLRP, half of the ε-rule relevance to each factor."""

    @staticmethod
    def forward(ctx, a, b, fn: Callable, kind: str, eps: float, book: Book, site: Site):
        low = low_precision(a)
        aa, bb = (a, b) if low is None else (a.to(low), b.to(low))
        out = own(result(fn(aa, bb), a), a, b)
        _save(ctx, out, aa, bb, out)
        ctx.fn, ctx.kind, ctx.eps, ctx.book, ctx.site = fn, kind, eps, book, site
        return out

    @staticmethod
    def backward(ctx, r):
        a, b, y = _saved(ctx, r.dtype)
        g = divide(r, y, ctx.eps)
        den = dot(g, y)
        ga = gb = None
        if ctx.kind == "mul":
            ga, gb = _reduce_to(g * b, a.shape), _reduce_to(g * a, b.shape)
        elif ctx.kind == "matmul" and a.dim() > 1 and b.dim() > 1:
            ga, gb = _matmul_grads(a, b, g)
        else:
            with torch.enable_grad():
                aa = a.detach().requires_grad_(True)
                bb = b.detach().requires_grad_(True)
                ga, gb = torch.autograd.grad(ctx.fn(aa, bb).to(g.dtype), (aa, bb), g)
        ra, rb = ga.mul_(a).mul_(0.5), gb.mul_(b).mul_(0.5)
        ctx.book.absorb(ctx.site, r, ra, rb, bias=den.new_zeros(()), den=den)
        return ra, rb, None, None, None, None, None


class CatFn(Function):
    """Concatenation where some parts are constants (e.g. a class token): the
    relevance landing on constants is absorbed."""

    @staticmethod
    def forward(ctx, dim: int, flags: tuple, book: Book, site: Site, *tensors):
        ctx.dim, ctx.flags, ctx.book, ctx.site = dim, flags, book, site
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
                ctx.book.absorb_constant(ctx.site, part)
                out.append(None)
        return (None, None, None, None, *out)

