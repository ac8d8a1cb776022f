"""Which LRP function replaces which torch operation (the tracer's table).

Each handler gets the tracer and the call's ``func, args, kwargs`` and returns the
result of the operation, computed by an LRP function of ``ops.py``, ``norms.py``
or ``attention.py``, or ``NotImplemented`` to let the operation run as it is.

Choices made here, for every preset:

- activations (ReLU, GELU, SiLU, hard-swish, ...) pass relevance unchanged (the
  identity rule); LayerNorm/GroupNorm/InstanceNorm/RMSNorm use the AttnLRP rule
  of ``norms.py``, an unfolded BatchNorm the ε-rule of its per-channel affine map;
- a product with a *gate* (the output of a sigmoid, hard-sigmoid or tanh: squeeze-
  and-excitation, attention gates, GLU, hand-written SiLU) treats the gate as a
  constant factor, so all relevance goes to the gated signal, as it does through
  an activation; ``gates="uniform"`` gives each factor half instead (the rule
  AttnLRP uses for products of two activations, applied to every product);
- a division by a tensor that depends on the input (a hand-written normalisation)
  holds the divisor constant;
- in-place operations write their result back into their operand, as PyTorch
  does, also where the operand was made inside one of our functions.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
import torch.nn.functional as F

from viewer.explain.lrp import attention, norms, pooling, routing
from viewer.explain.lrp.affine import AffineOp
from viewer.explain.lrp.ops import (
    AffineFn, BiasFn, BilinearFn, CatFn, GateFn, InplaceFn, InplacePassFn, LinearNormFn, PassFn, ScaleFn, SumFn,
    affine_backward, protect,
)
from viewer.explain.lrp.rules import mark_nonneg, marked_nonneg

Tensor = torch.Tensor


def live(t: Any) -> bool:
    return isinstance(t, Tensor) and t.requires_grad


def _bind(args: tuple, kwargs: dict, names: tuple[str, ...], defaults: tuple) -> list:
    """Positional/keyword arguments of a call, in declaration order."""
    values = list(args[: len(names)])
    for i in range(len(values), len(names)):
        values.append(kwargs.get(names[i], defaults[i]))
    return values


# -- layers with weights ----------------------------------------------------------------------
def _affine(tr, x: Tensor, w: Tensor, b: Tensor | None, op: AffineOp, kind: str):
    if not live(x) or live(w) or live(b):
        return NotImplemented
    name, module = tr.owner()
    rule = tr.choose(kind, name, module)
    tr.layers.append((name, kind, rule.name))
    return AffineFn.apply(x, rule, op, w, b, tr.book, tr.site(kind, rule.name))


def _same_padding(tr, x: Tensor, w: Tensor, nd: int, dilation) -> tuple[Tensor, tuple[int, ...]]:
    """``padding="same"``: the convolution's own padding where it is symmetric, else an
    explicit padding whose share of relevance the ledger records (``routing.padded``)."""
    dil = dilation if isinstance(dilation, (tuple, list)) else (dilation,) * nd
    totals = [d * (k - 1) for d, k in zip(dil, w.shape[2:])]
    if all(t % 2 == 0 for t in totals):
        return x, tuple(t // 2 for t in totals)
    pads: list[int] = []
    for t in reversed(totals):
        pads += [t // 2, t - t // 2]
    return routing.padded(x, tuple(pads), 0.0, tr.book, tr.site("pad", "absorb")), (0,) * nd


def _conv(nd: int):
    def handler(tr, func, args, kwargs):
        x, w, b, stride, padding, dilation, groups = _bind(
            args, kwargs, ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
            (None, None, None, 1, 0, 1, 1))
        if isinstance(padding, str):
            if padding == "valid":
                padding = 0
            else:
                x, padding = _same_padding(tr, x, w, nd, dilation)
        return _affine(tr, x, w, b, AffineOp.conv(nd, stride, padding, dilation, groups), "conv")
    return handler


def _conv_transpose(nd: int):
    def handler(tr, func, args, kwargs):
        x, w, b, stride, padding, output_padding, groups, dilation = _bind(
            args, kwargs, ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"),
            (None, None, None, 1, 0, 0, 1, 1))
        op = AffineOp.conv_transpose(nd, stride, padding, output_padding, groups, dilation)
        return _affine(tr, x, w, b, op, "conv")
    return handler


def _linear(tr, func, args, kwargs):
    x, w, b = _bind(args, kwargs, ("input", "weight", "bias"), (None, None, None))
    return _affine(tr, x, w, b, AffineOp("linear"), "dense")


# -- in-place ---------------------------------------------------------------------------------
def _inplace(handler):
    """The in-place form of ``handler``: the rule runs on a copy of the first operand
    (its saved values must not change under it), and the result is written back into
    the operand, so aliases of it see what they would see without the explainer."""
    def wrapped(tr, func, args, kwargs):
        a = args[0] if args else None
        if not isinstance(a, Tensor) or not live(a) or a.is_leaf:
            return handler(tr, func, args, kwargs)
        spare = a.clone()
        out = handler(tr, func, (spare,) + tuple(args[1:]), kwargs)
        if out is NotImplemented or not isinstance(out, Tensor) or out.shape != a.shape or out.dtype != a.dtype:
            return out
        protect(a, spare)
        result = InplaceFn.apply(a, out)
        return mark_nonneg(result) if marked_nonneg(out) else result
    return wrapped


_INPLACE_AT: dict[Callable, int | None] = {}


def _inplace_position(func: Callable) -> int | None:
    """Index of ``func``'s ``inplace`` parameter (F.relu, F.hardtanh, F.silu, ...)."""
    if func not in _INPLACE_AT:
        try:
            names = list(inspect.signature(func).parameters)
            _INPLACE_AT[func] = names.index("inplace") if "inplace" in names else None
        except (TypeError, ValueError):
            _INPLACE_AT[func] = None
    return _INPLACE_AT[func]


# -- parameter-free elementwise maps ----------------------------------------------------------
def _elementwise(gate: bool = False, final: str | None = None, nonneg: bool = False, in_place: bool = False):
    """Activations (ReLU, GELU, SiLU, ...): relevance passes (the identity rule).

    ``nonneg``: the output is never negative (ReLU); the mark spares the next layer's
    rule a pass over its input to find that out (see rules._nonneg).  A call with
    ``inplace=True`` (or an in-place function: ``in_place``) writes into its operand,
    also when its result is discarded."""
    def handler(tr, func, args, kwargs):
        if not args or not live(args[0]):
            return NotImplemented
        a = args[0]
        pos = _inplace_position(func)
        inplace = in_place or kwargs.get("inplace") is True or (pos is not None and len(args) > pos and args[pos] is True)
        if inplace and not a.is_leaf:
            protect(a, None)
            out = InplacePassFn.apply(a, lambda t: func(t, *args[1:], **kwargs))
        else:
            rest = tuple(False if i + 1 == pos else v for i, v in enumerate(args[1:]))
            kw = {k: (False if k == "inplace" else v) for k, v in kwargs.items()}
            plain = _OUT_OF_PLACE.get(func, func)
            out = PassFn.apply(a, lambda t: plain(t, *rest, **kw))
            if final:
                tr.mark_final(a, out, final)
        if nonneg:
            mark_nonneg(out)
        if gate:
            tr.mark_gate(out)
        return out
    return handler


_OUT_OF_PLACE = {torch.relu_: torch.relu, F.relu_: torch.relu, torch.Tensor.relu_: torch.relu, F.leaky_relu_: F.leaky_relu,
                 F.elu_: F.elu, torch.Tensor.sigmoid_: torch.sigmoid,
                 torch.sigmoid_: torch.sigmoid}


def _max_pool(nd: int):
    """Max pooling of a layer's activations: joined to that layer's rule in the backward
    (pooling.py); elsewhere (and when the indices are asked for) it runs as it is,
    its gradient handing each window's relevance to the winner."""
    names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")

    def handler(tr, func, args, kwargs):
        x, kernel, stride, padding, dilation, ceil_mode, indices = _bind(
            args, kwargs, names, (None, None, None, 0, 1, False, False))
        if not live(x) or indices or x.dim() != nd + 2:
            return NotImplemented
        below, chain = pooling.below_of(x, AffineFn._backward_cls, (PassFn._backward_cls, InplacePassFn._backward_cls))
        if below is None or not below.takes_pooled:
            return NotImplemented
        below.joined = True
        tr.joined.append((below, chain))
        spec = pooling.PoolSpec.of(nd, kernel, stride, padding, dilation, ceil_mode)
        out = pooling.MaxPoolFn.apply(x, spec, below, affine_backward)
        if marked_nonneg(x):
            mark_nonneg(out)
        return out
    return handler


def _norm(kind: str):
    """LayerNorm, GroupNorm, InstanceNorm, RMSNorm: the AttnLRP rule (norms.py)."""
    parse = norms.PARSERS[kind]

    def handler(tr, func, args, kwargs):
        if not args or not live(args[0]) or any(live(a) for a in list(args[1:]) + list(kwargs.values())):
            return NotImplemented
        grouping, factors, shift, fn = parse(*args, **kwargs)
        if kind == "batch_norm" and not grouping.dims:  # running statistics: a per-channel affine map
            which = getattr(tr.choose, "batchnorm", None)
            if which is not None and which(*tr.owner()) == "pass":
                return PassFn.apply(args[0], fn)
        return norms.NormFn.apply(args[0], fn, grouping, factors, shift, tr.eps, tr.book, tr.site("norm", "attn-lrp"))
    return handler


def _linear_norm(filter_fn: Callable | None = None):
    """Pooling, sums and means, interpolation: the ε-rule of a parameter-free map."""
    def handler(tr, func, args, kwargs):
        if not args or not live(args[0]) or (filter_fn is not None and not filter_fn(args, kwargs)):
            return NotImplemented
        rest = args[1:]
        return LinearNormFn.apply(args[0], lambda t: func(t, *rest, **kwargs), tr.eps, tr.book, tr.site("pool", "epsilon"))
    return handler


def _interp_linear(args, kwargs) -> bool:
    mode = kwargs.get("mode", args[3] if len(args) > 3 else "nearest")
    return mode not in ("nearest", "nearest-exact")


def _fixed_grid(args, kwargs) -> bool:
    """``grid_sample`` at a grid that does not depend on the input: a linear map."""
    return not live(args[1] if len(args) > 1 else kwargs.get("grid"))


# -- sums and products ------------------------------------------------------------------------
def _add(sign: float, reverse: bool = False):
    def handler(tr, func, args, kwargs):
        if len(args) < 2:
            return NotImplemented
        a, b = (args[1], args[0]) if reverse else (args[0], args[1])
        s = sign * kwargs.get("alpha", 1)
        la, lb = live(a), live(b)
        if la and lb:
            return SumFn.apply(a, b, s, tr.eps, tr.book, tr.site("sum", "epsilon"))
        if la:
            c = b if isinstance(b, Tensor) else torch.as_tensor(b, dtype=a.dtype, device=a.device)
            return BiasFn.apply(a, (s * c).to(a.dtype), 1.0, tr.eps, tr.book, tr.site("bias", "epsilon"))
        if lb:
            c = a if isinstance(a, Tensor) else torch.as_tensor(a, dtype=b.dtype, device=b.device)
            return BiasFn.apply(b, c.to(b.dtype), s, tr.eps, tr.book, tr.site("bias", "epsilon"))
        return NotImplemented
    return handler


def _mul(tr, func, args, kwargs):
    if len(args) < 2:
        return NotImplemented
    a, b = args[0], args[1]
    la, lb = live(a), live(b)
    if la and lb:
        if tr.gate_rule == "constant":
            if tr.is_gate(b):
                return GateFn.apply(a, b, torch.mul)
            if tr.is_gate(a):
                return GateFn.apply(b, a, torch.mul)
        return BilinearFn.apply(a, b, torch.mul, "mul", tr.eps, tr.book, tr.site("product", "uniform"))
    if la:
        return ScaleFn.apply(a, lambda t: t * b)
    if lb:
        return ScaleFn.apply(b, lambda t: a * t)
    return NotImplemented


def _div(tr, func, args, kwargs):
    if len(args) < 2 or not live(args[0]) or kwargs.get("rounding_mode") is not None:
        return NotImplemented
    a, b = args[0], args[1]
    if live(b):  # a normalisation: the divisor is treated as a constant
        return GateFn.apply(a, b, torch.div)
    return ScaleFn.apply(a, lambda t: t / b)


def _neg(tr, func, args, kwargs):
    if not args or not live(args[0]):
        return NotImplemented
    return ScaleFn.apply(args[0], torch.neg)


def _extremum(tr, func, args, kwargs):
    """``torch.maximum(h, c)`` and kin with a constant ``c``: an activation (ReLU when
    ``c`` is zero), so relevance passes to ``h``; between two live tensors the
    ordinary gradient hands each output's relevance to the operand it came from."""
    if len(args) != 2 or kwargs or live(args[0]) == live(args[1]):
        return NotImplemented
    if live(args[0]):
        other = args[1]
        return PassFn.apply(args[0], lambda t: func(t, other))
    other = args[0]
    return PassFn.apply(args[1], lambda t: func(other, t))


def _glu(tr, func, args, kwargs):
    x, dim = _bind(args, kwargs, ("input", "dim"), (None, -1))
    if not live(x):
        return NotImplemented
    a, g = x.chunk(2, dim)
    gate = PassFn.apply(g, torch.sigmoid)
    tr.mark_gate(gate)
    return _mul(tr, torch.mul, (a, gate), {})


def _bilinear(fn2: Callable, kind: str):
    """matmul / bmm / einsum: uniform rule between two activations, ε-rule against a constant."""
    def handler(tr, func, args, kwargs):
        if len(args) < 2:
            return NotImplemented
        a, b = args[0], args[1]
        la, lb = live(a), live(b)
        if la and lb:
            return BilinearFn.apply(a, b, fn2, kind, tr.eps, tr.book, tr.site("product", "uniform"))
        if la:
            return LinearNormFn.apply(a, lambda t: fn2(t, b), tr.epsilon, tr.book, tr.site("pool", "epsilon"))
        if lb:
            return LinearNormFn.apply(b, lambda t: fn2(a, t), tr.epsilon, tr.book, tr.site("pool", "epsilon"))
        return NotImplemented
    return handler


def _einsum(tr, func, args, kwargs):
    eq, ops = args[0], args[1:]
    if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
        ops = tuple(ops[0])
    if len(ops) != 2:
        return NotImplemented
    return _bilinear(lambda a, b: torch.einsum(eq, a, b), "einsum")(tr, func, ops, {})


def _pad(tr, func, args, kwargs):
    """Constant padding; the other modes (reflect, replicate, circular) copy input
    values, whose ordinary gradient hands the copies' relevance back to them."""
    x, pad, mode, value = _bind(args, kwargs, ("input", "pad", "mode", "value"), (None, None, "constant", None))
    if func is getattr(torch, "constant_pad_nd", None):
        mode, value = "constant", args[2] if len(args) > 2 else kwargs.get("value", 0.0)
    if not live(x) or mode != "constant" or not isinstance(pad, (tuple, list)):
        return NotImplemented
    return routing.padded(x, tuple(int(p) for p in pad), 0.0 if value is None else float(value), tr.book,
                          tr.site("pad", "absorb"))


def _cat(tr, func, args, kwargs):
    tensors = args[0] if args else kwargs.get("tensors")
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not isinstance(tensors, (list, tuple)):
        return NotImplemented
    flags = tuple(live(t) for t in tensors)
    if all(flags) or not any(flags):
        return NotImplemented
    dtype = next(t.dtype for t, f in zip(tensors, flags) if f)
    return CatFn.apply(dim, flags, tr.book, tr.site("constant", "absorb"), *[t.to(dtype) for t in tensors])


# -- attention --------------------------------------------------------------------------------
def _softmax(tr, func, args, kwargs):
    if not args or not live(args[0]):
        return NotImplemented
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    x = args[0]
    if kwargs.get("dtype") is not None:
        x = x.to(kwargs["dtype"])
    out = attention.softmax(tr, x, -1 if dim is None else dim)
    tr.mark_final(args[0], out, "softmax")
    return out


def _sdpa(tr, func, args, kwargs):
    q, k, v, mask, dropout, causal, scale = _bind(
        args, kwargs, ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale"),
        (None, None, None, None, 0.0, False, None))
    if not (live(q) or live(k) or live(v)) or kwargs.get("enable_gqa"):
        return NotImplemented
    return attention.scaled_dot_product(tr, q, k, v, mask, causal, scale)[0]


def _mha(tr, func, args, kwargs):
    def dense(x, w, b):
        out = _affine(tr, x, w, b, AffineOp("linear"), "dense")
        return F.linear(x, w, b) if out is NotImplemented else out
    return attention.multi_head(tr, dense, args, kwargs)


def _build() -> dict:
    T = torch.Tensor
    h: dict = {}

    def put(objs, handler):
        for o in objs:
            if o is not None:
                h[o] = handler

    g = getattr
    put([torch.conv1d, F.conv1d], _conv(1))
    put([torch.conv2d, F.conv2d], _conv(2))
    put([torch.conv3d, F.conv3d], _conv(3))
    put([torch.conv_transpose1d, F.conv_transpose1d], _conv_transpose(1))
    put([torch.conv_transpose2d, F.conv_transpose2d], _conv_transpose(2))
    put([torch.conv_transpose3d, F.conv_transpose3d], _conv_transpose(3))
    put([F.linear], _linear)
    put([F.relu, torch.relu, T.relu, F.relu6], _elementwise(nonneg=True))
    put([F.leaky_relu, F.gelu, F.silu, F.elu, F.selu, F.celu, F.mish, F.softplus, F.hardswish, F.hardtanh,
         F.prelu, torch.prelu, F.rrelu, F.tanhshrink, F.softsign, F.local_response_norm,
         F.normalize], _elementwise())
    put([F.layer_norm], _norm("layer_norm"))
    put([g(F, "rms_norm", None)], _norm("rms_norm"))
    put([F.group_norm], _norm("group_norm"))
    put([F.instance_norm], _norm("instance_norm"))
    put([F.batch_norm], _norm("batch_norm"))
    put([torch.relu_, T.relu_, F.relu_], _elementwise(nonneg=True, in_place=True))
    put([F.leaky_relu_, F.elu_], _elementwise(in_place=True))
    # the same maps spelled otherwise: clamping (ReLU as `h.clamp(min=0)`, ReLU6), thresholds,
    # |h|, log-sigmoid, NaN replacement, and `as_tensor` of a tensor (itself)
    put([torch.clamp, T.clamp, torch.clip, T.clip, torch.clamp_min, T.clamp_min, torch.clamp_max, T.clamp_max,
         F.threshold, torch.threshold, torch.abs, T.abs, T.__abs__, F.logsigmoid, torch.nan_to_num, T.nan_to_num,
         torch.as_tensor, g(torch, "asarray", None)], _elementwise())
    put([torch.clamp_, T.clamp_, T.clip_, T.clamp_min_, T.clamp_max_, F.threshold_, T.abs_, T.nan_to_num_],
        _elementwise(in_place=True))
    put([torch.maximum, T.maximum, torch.minimum, T.minimum, torch.fmax, T.fmax, torch.fmin, T.fmin], _extremum)
    put([torch.tanh, T.tanh, F.tanh], _elementwise(gate=True))
    put([torch.sigmoid, T.sigmoid, F.sigmoid, F.hardsigmoid], _elementwise(gate=True, final="sigmoid"))
    put([torch.sigmoid_, T.sigmoid_], _elementwise(gate=True, in_place=True))
    put([F.glu], _glu)
    put([F.log_softmax, torch.log_softmax, T.log_softmax], _elementwise(final="log_softmax"))
    put([F.softmax, torch.softmax, T.softmax], _softmax)
    put([F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
         F.adaptive_avg_pool3d, torch.mean, T.mean, torch.sum, T.sum, F.lp_pool2d, torch.cumsum, T.cumsum],
        _linear_norm())
    put([F.interpolate, F.upsample], _linear_norm(_interp_linear))
    put([F.max_pool2d], _max_pool(2))
    put([F.max_pool3d], _max_pool(3))
    # `x += y` dispatches to add_; the method forms write back into x
    put([torch.add, T.add, T.__add__, T.__radd__, T.__iadd__], _add(1.0))
    put([T.add_], _inplace(_add(1.0)))
    put([torch.sub, T.sub, T.__sub__, T.__isub__, g(torch, "subtract", None)], _add(-1.0))
    put([T.sub_], _inplace(_add(-1.0)))
    put([T.__rsub__, g(torch, "rsub", None)], _add(-1.0, reverse=True))
    put([torch.neg, T.neg, T.__neg__, g(torch, "negative", None), g(T, "negative", None)], _neg)
    put([T.neg_], _inplace(_neg))
    put([torch.mul, T.mul, T.__mul__, T.__rmul__, T.__imul__, g(torch, "multiply", None)], _mul)
    put([T.mul_], _inplace(_mul))
    put([torch.div, T.div, T.__truediv__, T.__itruediv__, g(torch, "true_divide", None)], _div)
    put([T.div_], _inplace(_div))
    put([torch.matmul, T.matmul, T.__matmul__, torch.bmm, T.bmm, torch.mm, T.mm], _bilinear(torch.matmul, "matmul"))
    put([torch.einsum], _einsum)
    put([F.pad, g(torch, "constant_pad_nd", None)], _pad)
    put([F.grid_sample], _linear_norm(_fixed_grid))
    # values moved, not changed: masks, selections, scatters (relevance on constants is booked)
    put([torch.where, T.where, torch.masked_fill, T.masked_fill, torch.index_fill, T.index_fill, torch.scatter,
         T.scatter, torch.index_copy, T.index_copy, torch.index_put, T.index_put, torch.masked_scatter,
         T.masked_scatter], routing.routed())
    put([torch.index_add, T.index_add, torch.scatter_add, T.scatter_add], routing.routed(accumulate=True))
    put([T.masked_fill_, T.index_fill_, T.scatter_, T.index_copy_, T.index_put_, T.masked_scatter_],
        _inplace(routing.routed()))
    put([torch.cat, g(torch, "concat", None), g(torch, "concatenate", None)], _cat)
    put([F.scaled_dot_product_attention], _sdpa)
    put([F.multi_head_attention_forward], _mha)
    return h


HANDLERS = _build()
