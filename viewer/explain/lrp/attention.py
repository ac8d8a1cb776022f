"""Attention under LRP (AttnLRP, Achtibat et al. 2024).

Softmax is linearised at its input with the shift term acting as a bias, and the
products of two activations (q·kᵀ, attention·v) use the uniform rule: each factor
receives half of the ε-rule relevance.  ``scaled_dot_product_attention`` is
spelled out into these pieces so fused attention kernels are explained the same
way as hand-written attention.
"""

from __future__ import annotations

import math

import torch
from torch.autograd import Function

from viewer.explain.lrp.ledger import Book, Site
from viewer.explain.lrp.ops import BiasFn, BilinearFn, LinearNormFn, ScaleFn, _save, _saved, own

Tensor = torch.Tensor


class SoftmaxFn(Function):
    """Softmax inside the network (attention), by its AttnLRP rule: the Taylor
    expansion at x with the shift term s - J x as a bias, R_in = x ⊙ (R − s ΣR),
    which is gradient × input of the softmax for R = s·g.  The shift term's share,
    Σ R (1 − x + <s, x>) per row, is its closed form in the ledger."""

    @staticmethod
    def forward(ctx, x, dim: int, book: Book, site: Site):
        s = own(torch.softmax(x, dim, dtype=x.dtype))
        _save(ctx, s, x, s)
        ctx.dim, ctx.book, ctx.site = dim, book, site
        return s

    @staticmethod
    def backward(ctx, r):
        x, s = _saved(ctx, r.dtype)
        x = torch.where(torch.isinf(x), 0.0, x)  # masked (-inf) logits take and give nothing
        total = r.sum(ctx.dim, keepdim=True)
        r_in = x * (r - s * total)
        rx = (r * x).sum(dtype=torch.float64)
        sx = (s * x).sum(ctx.dim, keepdim=True)
        shift = total.sum(dtype=torch.float64) - rx + (total * sx).sum(dtype=torch.float64)
        ctx.book.absorb(ctx.site, r, r_in, bias=shift, den=total.sum(dtype=torch.float64))
        return r_in, None, None, None


def softmax(tr, x: Tensor, dim: int) -> Tensor:
    return SoftmaxFn.apply(x, dim, tr.book, tr.site("softmax", "attn-lrp"))


def _product(tr, a: Tensor, b: Tensor) -> Tensor:
    if a.requires_grad and b.requires_grad:
        return BilinearFn.apply(a, b, torch.matmul, "matmul", tr.eps, tr.book, tr.site("product", "uniform"))
    site = tr.site("pool", "epsilon")
    if a.requires_grad:
        return LinearNormFn.apply(a, lambda t: torch.matmul(t, b), tr.eps, tr.book, site)
    return LinearNormFn.apply(b, lambda t: torch.matmul(a, t), tr.eps, tr.book, site)


def scaled_dot_product(tr, q: Tensor, k: Tensor, v: Tensor, mask, causal: bool, scale) -> Tensor:
    """softmax(q kᵀ · scale + mask) v, with the LRP rules of each piece."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = _product(tr, q, k.transpose(-2, -1))
    scores = ScaleFn.apply(scores, lambda t: t * scale)
    n, m = q.shape[-2], k.shape[-2]
    bias = None
    if causal:
        keep = torch.ones(n, m, dtype=torch.bool, device=q.device).tril()
        bias = torch.zeros(n, m, dtype=scores.dtype, device=q.device).masked_fill(~keep, float("-inf"))
    if mask is not None:
        extra = mask if mask.dtype != torch.bool else torch.zeros(
            mask.shape, dtype=scores.dtype, device=q.device).masked_fill(~mask, float("-inf"))
        bias = extra if bias is None else bias + extra
    if bias is not None:
        # -inf entries carry no relevance; a finite floor keeps the stabiliser finite
        scores = scores.masked_fill(torch.isinf(bias.expand_as(scores)), torch.finfo(scores.dtype).min / 4)
        finite = torch.where(torch.isinf(bias), torch.zeros_like(bias), bias).to(scores.dtype)
        scores = BiasFn.apply(scores, finite.expand_as(scores), 1.0, tr.eps, tr.book, tr.site("bias", "epsilon"))
    attn = softmax(tr, scores, -1)
    return _product(tr, attn, v), attn


def multi_head(tr, affine, args: tuple, kwargs: dict):
    """``F.multi_head_attention_forward`` (``nn.MultiheadAttention``) spelled out:
    input projections and output projection are dense layers under the preset's
    dense rule; the attention core as in :func:`scaled_dot_product`.  Rare options
    (bias_k/bias_v, zero attention, static keys, unbatched inputs) are left to the
    gradient and reported as unhandled."""
    names = ("query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight", "in_proj_bias",
             "bias_k", "bias_v", "add_zero_attn", "dropout_p", "out_proj_weight", "out_proj_bias", "training",
             "key_padding_mask", "need_weights", "attn_mask", "use_separate_proj_weight", "q_proj_weight",
             "k_proj_weight", "v_proj_weight", "static_k", "static_v", "average_attn_weights", "is_causal")
    defaults = (None,) * 13 + (True, None, True, None, False, None, None, None, None, None, True, False)
    a = dict(zip(names, list(args[: len(names)]) + [kwargs.get(n, d) for n, d in zip(names[len(args):], defaults[len(args):])]))
    q, k, v = a["query"], a["key"], a["value"]
    if (q.dim() != 3 or a["bias_k"] is not None or a["bias_v"] is not None or a["add_zero_attn"]
            or a["static_k"] is not None or a["static_v"] is not None):
        return NotImplemented
    L, N, E = q.shape
    S = k.shape[0]
    H = int(a["num_heads"])
    hd = E // H
    if a["use_separate_proj_weight"]:
        ws = (a["q_proj_weight"], a["k_proj_weight"], a["v_proj_weight"])
    else:
        ws = a["in_proj_weight"].chunk(3)
    bs = (None, None, None) if a["in_proj_bias"] is None else a["in_proj_bias"].chunk(3)
    heads = []
    for t, w, b, n in ((q, ws[0], bs[0], L), (k, ws[1], bs[1], S), (v, ws[2], bs[2], S)):
        p = affine(t, w, b)
        heads.append(p.reshape(n, N * H, hd).transpose(0, 1).reshape(N, H, n, hd))
    mask = None
    if a["attn_mask"] is not None:
        m = a["attn_mask"]
        m = torch.zeros(m.shape, dtype=q.dtype, device=q.device).masked_fill(m, float("-inf")) if m.dtype == torch.bool else m
        mask = m.reshape(N, H, L, S) if m.dim() == 3 else m
    if a["key_padding_mask"] is not None:
        kp = a["key_padding_mask"]
        kp = torch.zeros(kp.shape, dtype=q.dtype, device=q.device).masked_fill(kp, float("-inf")) if kp.dtype == torch.bool else kp
        kp = kp.reshape(N, 1, 1, S)
        mask = kp if mask is None else mask + kp
    causal = bool(a["is_causal"]) and mask is None
    out, attn = scaled_dot_product(tr, heads[0], heads[1], heads[2], mask, causal, None)
    out = out.permute(2, 0, 1, 3).reshape(L * N, E)
    out = affine(out, a["out_proj_weight"], a["out_proj_bias"]).reshape(L, N, E)
    weights = None
    if a["need_weights"]:
        weights = attn.detach().mean(1) if a["average_attn_weights"] else attn.detach()
    return out, weights
