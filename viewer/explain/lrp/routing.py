"""Operations that only move values: every output element is a copy of one element of
the live operand or a constant (``torch.where``, ``masked_fill``, ``index_fill``,
``scatter``, ``index_copy``, ``index_put``; ``index_add``/``scatter_add`` into zeros).

Their gradient hands each output's relevance to the element it copies, which is the
rule; relevance that lands on the constants (a masked position filled with 0.5, the
untouched part of a scatter's base) is the constant's share, booked by the ledger as
for padding (:func:`padded`) instead of disappearing from the books.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.autograd import Function

from viewer.explain.lrp.ledger import Book, Site
from viewer.explain.lrp.ops import own

Tensor = torch.Tensor


class RoutedFn(Function):
    """``fn(x)`` for a routing ``fn`` (its gradient does not depend on x's values);
    ``adjoint(r)``, when given, is that gradient in closed form (padding: a crop)."""

    @staticmethod
    def forward(ctx, x, fn: Callable, book: Book, site: Site, adjoint: Callable | None = None):
        ctx.fn, ctx.book, ctx.site, ctx.adjoint = fn, book, site, adjoint
        ctx.like = (x.shape, x.dtype, x.device)
        return own(fn(x), x)

    @staticmethod
    def backward(ctx, r):
        if ctx.adjoint is not None:
            r_in = ctx.adjoint(r)
        else:
            shape, dtype, device = ctx.like
            with torch.enable_grad():
                probe = torch.zeros(shape, dtype=dtype, device=device, requires_grad=True)
                (r_in,) = torch.autograd.grad(ctx.fn(probe), probe, r.to(dtype))
        ctx.book.absorb_dropped(ctx.site, r, r_in)
        return r_in, None, None, None, None


def padded(x: Tensor, pad: tuple[int, ...], value: float, book: Book, site: Site) -> Tensor:
    """Constant padding (``F.pad``, ``nn.ConstantPad*d``): only rules that share relevance
    by position rather than by contribution give the padded constants any (Flat, WSquare,
    ZBox: an input layer behind an explicit padding, as in MONAI's EfficientNet stem)."""
    crop = [-p for p in pad]  # the adjoint: crop what was padded, pad what was cropped
    return RoutedFn.apply(x, lambda t: F.pad(t, pad, mode="constant", value=value), book, site,
                          lambda r: F.pad(r, crop))


def _live(t) -> bool:
    return isinstance(t, Tensor) and t.requires_grad


def routed(accumulate: bool = False):
    """Handler for a routing op with exactly one live tensor argument. ``accumulate``:
    the op adds into its first argument (``index_add``, ``scatter_add``), which routes
    only when that base is a constant zero and the live tensor is the one added."""
    def handler(tr, func, args, kwargs):
        places = [("a", i) for i, a in enumerate(args) if _live(a)] + [("k", k) for k, v in kwargs.items() if _live(v)]
        if len(places) != 1 or kwargs.get("reduce") is not None:
            return NotImplemented
        where, key = places[0]
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.endswith("__"):
            # in place: only on the live tensor itself (``handlers._inplace`` writes the
            # result back); into a constant base the ordinary in-place gradient runs
            if (where, key) != ("a", 0) or not hasattr(Tensor, name[:-1]):
                return NotImplemented
            func = getattr(Tensor, name[:-1])
        if accumulate or kwargs.get("accumulate") or (name.startswith("index_put") and len(args) > 3 and args[3]):
            base = args[0] if args else None
            alpha = kwargs.get("alpha", 1)
            if (where, key) == ("a", 0) or alpha != 1 or not isinstance(base, Tensor) or bool(base.any()):
                return NotImplemented
        live = args[key] if where == "a" else kwargs[key]

        def fn(t):
            if where == "a":
                return func(*args[:key], t, *args[key + 1:], **kwargs)
            return func(*args, **{**kwargs, key: t})
        return RoutedFn.apply(live, fn, tr.book, tr.site("constant", "absorb"))
    return handler

