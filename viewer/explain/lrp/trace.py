"""The one forward pass: every relevant torch operation is swapped for its LRP version.

:class:`Tracer` is a ``TorchFunctionMode``: while it is active, each call of a
torch function (``F.conv3d``, ``Tensor.__iadd__``, ``torch.cat``, ``softmax`` …)
comes through :meth:`Tracer.__torch_function__`.  Operations on the relevance path
(tensors that require grad; the model's parameters are frozen, only the input
requires grad) are replaced by the custom autograd functions of ``ops.py``.  This
sees what module hooks cannot: residual additions written ``out += x``, one
activation module called twice, concatenations and functional calls.  Shape
operations keep their ordinary backward, which moves relevance without changing it.
Anything else on the relevance path is recorded in ``unhandled``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from viewer.explain.lrp import attention
from viewer.explain.lrp.affine import AffineOp
from viewer.explain.lrp.rules import mark_nonneg, marked_nonneg
from viewer.explain.lrp.ops import (
    AffineFn, BiasFn, BilinearFn, Book, CatFn, GateFn, InplaceFn, LinearNormFn, PassFn, ScaleFn, SumFn,
)

Tensor = torch.Tensor

# operations whose ordinary gradient moves relevance without creating or losing any
SAFE = {
    "view", "view_as", "reshape", "reshape_as", "flatten", "unflatten", "permute", "transpose", "t", "mT",
    "contiguous", "__getitem__", "cat", "concat", "concatenate", "stack", "hstack", "vstack", "split",
    "split_with_sizes", "tensor_split", "chunk", "unbind", "squeeze", "unsqueeze", "expand", "expand_as",
    "repeat", "tile", "repeat_interleave", "pad", "clone", "to", "float", "double", "half", "bfloat16", "type",
    "type_as", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
    "max_pool1d", "max_pool2d", "max_pool3d", "_max_pool1d", "_max_pool2d", "_max_pool3d",
    "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d_with_indices", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "adaptive_max_pool1d_with_indices",
    "adaptive_max_pool2d_with_indices", "adaptive_max_pool3d_with_indices", "_adaptive_max_pool1d",
    "_adaptive_max_pool2d", "_adaptive_max_pool3d", "narrow", "select", "index_select", "gather", "flip",
    "roll", "movedim", "moveaxis", "swapaxes", "swapdims", "pixel_shuffle", "pixel_unshuffle",
    "channel_shuffle", "native_channel_shuffle", "unfold", "max", "amax", "identity", "__setitem__",
    "as_strided", "masked_select", "take_along_dim", "ravel", "clone_", "requires_grad_", "interpolate",
    "upsample", "rearrange", "flip_", "crop",
}


def _bind(args: tuple, kwargs: dict, names: tuple[str, ...], defaults: tuple) -> list:
    """Positional-or-keyword arguments of a torch function, in declaration order."""
    values = list(args[: len(names)])
    for i in range(len(values), len(names)):
        values.append(kwargs.get(names[i], defaults[i]))
    return values


def _live(t: Any) -> bool:
    return isinstance(t, Tensor) and t.requires_grad


class Tracer(TorchFunctionMode):
    """State of one explanation's forward pass.

    ``choose(kind, name, module)`` returns the rule for an affine op of kind
    "conv" or "dense" owned by module ``name``; ``stack`` is maintained by module
    hooks of the prepared model so that each op knows its module.
    """

    def __init__(self, choose: Callable, stabilizer: float, epsilon: float, stack: list) -> None:
        super().__init__()
        self.book = Book()
        self.choose = choose
        self.eps = stabilizer
        self.epsilon = epsilon
        self.stack = stack
        self.unhandled: dict[str, int] = {}
        self.final_of: dict[int, tuple[Tensor, Tensor, str]] = {}  # softmax/sigmoid output -> its input
        self.gates: set[int] = set()
        self._keep: list[Tensor] = []
        self.layers: list[tuple[str, str, str]] = []  # (module name, op kind, rule) in call order

    # -- bookkeeping -------------------------------------------------------------------
    def owner(self) -> tuple[str, torch.nn.Module | None]:
        return self.stack[-1] if self.stack else ("", None)

    def mark_gate(self, t: Tensor) -> None:
        self.gates.add(t.untyped_storage().data_ptr())
        self._keep.append(t)

    def is_gate(self, t: Tensor) -> bool:
        return t.untyped_storage().data_ptr() in self.gates

    def mark_final(self, x: Tensor, out: Tensor, kind: str) -> None:
        self.final_of[id(out)] = (x, out, kind)

    # -- dispatch ------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = HANDLERS.get(func)
        if handler is not None:
            out = handler(self, func, args, kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if any(isinstance(o, Tensor) and o.requires_grad and o.grad_fn is not None for o in outs):
            name = getattr(func, "__name__", str(func))
            if name not in SAFE and _any_live(args, kwargs):
                self.unhandled[name] = self.unhandled.get(name, 0) + 1
        return out


def _any_live(args, kwargs) -> bool:
    for a in list(args) + list(kwargs.values()):
        if _live(a) or (isinstance(a, (list, tuple)) and any(_live(t) for t in a)):
            return True
    return False


# -- handlers -------------------------------------------------------------------------------
def _affine(tr: Tracer, x: Tensor, w: Tensor, b: Tensor | None, op: AffineOp, kind: str):
    if not _live(x) or _live(w) or _live(b):
        return NotImplemented
    name, module = tr.owner()
    rule = tr.choose(kind, name, module)
    tr.layers.append((name, kind, rule.name))
    return AffineFn.apply(x, rule, op, w, b, tr.book)


def _same_padding(x: Tensor, w: Tensor, nd: int, dilation) -> tuple[Tensor, tuple[int, ...]]:
    dil = dilation if isinstance(dilation, (tuple, list)) else (dilation,) * nd
    totals = [d * (k - 1) for d, k in zip(dil, w.shape[2:])]
    if all(t % 2 == 0 for t in totals):
        return x, tuple(t // 2 for t in totals)
    pads: list[int] = []
    for t in reversed(totals):
        pads += [t // 2, t - t // 2]
    return F.pad(x, pads), (0,) * nd


def _conv(nd: int):
    def handler(tr, func, args, kwargs):
        x, w, b, stride, padding, dilation, groups = _bind(
            args, kwargs, ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
            (None, None, None, 1, 0, 1, 1))
        if isinstance(padding, str):
            if padding == "valid":
                padding = 0
            else:
                x, padding = _same_padding(x, w, nd, dilation)
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


def _elementwise(gate: bool = False, final: str | None = None, plain: Callable | None = None, nonneg: bool = False):
    """Activations (ReLU, GELU, SiLU, ...) and normalisations: relevance passes.

    ``nonneg``: the output is never negative (ReLU); the mark spares the next layer's
    rule a pass over its input to find that out (see rules._nonneg)."""
    def handler(tr, func, args, kwargs):
        if not args or not _live(args[0]):
            return NotImplemented
        fn0 = plain or func
        rest = tuple(False if isinstance(a, bool) else a for a in args[1:])
        kw = {k: (False if k == "inplace" else v) for k, v in kwargs.items()}
        out = PassFn.apply(args[0], lambda t: fn0(t, *rest, **kw), tr.book)
        if nonneg:
            mark_nonneg(out)
        if gate:
            tr.mark_gate(out)
        if final:
            tr.mark_final(args[0], out, final)
        return out
    return handler


def _linear_norm(filter_fn: Callable | None = None):
    """Pooling, sums and means, interpolation: the Norm (ε) rule."""
    def handler(tr, func, args, kwargs):
        if not args or not _live(args[0]) or (filter_fn is not None and not filter_fn(args, kwargs)):
            return NotImplemented
        rest = args[1:]
        return LinearNormFn.apply(args[0], lambda t: func(t, *rest, **kwargs), tr.eps, tr.book)
    return handler


def _interp_linear(args, kwargs) -> bool:
    mode = kwargs.get("mode", args[3] if len(args) > 3 else "nearest")
    return mode not in ("nearest", "nearest-exact")


def _add(sign: float, reverse: bool = False):
    def handler(tr, func, args, kwargs):
        if len(args) < 2:
            return NotImplemented
        a, b = (args[1], args[0]) if reverse else (args[0], args[1])
        alpha = kwargs.get("alpha", 1)
        s = sign * alpha
        la, lb = _live(a), _live(b)
        if la and lb:
            return SumFn.apply(a, b, s, tr.eps, tr.book)
        if la:
            c = b if isinstance(b, Tensor) else torch.as_tensor(b, dtype=a.dtype, device=a.device)
            return BiasFn.apply(a, (s * c).to(a.dtype), 1.0, tr.eps, tr.book)
        if lb:
            c = a if isinstance(a, Tensor) else torch.as_tensor(a, dtype=b.dtype, device=b.device)
            return BiasFn.apply(b, c.to(b.dtype), s, tr.eps, tr.book)
        return NotImplemented
    return handler


def _inplace(handler):
    """The in-place form of ``handler``: the rule runs on a copy of the first operand
    (its saved values must not change under it), and the result is written back into
    the operand, so aliases of it see what they would see without the explainer."""
    def wrapped(tr, func, args, kwargs):
        a = args[0] if args else None
        if not isinstance(a, Tensor) or not _live(a) or a.is_leaf or _saves_output(a):
            # the rule that made ``a`` keeps it for its backward: writing into it would
            # break that, so the result is a new tensor (correct for ``x = x.add_(c)``)
            return handler(tr, func, args, kwargs)
        out = handler(tr, func, (a.clone(),) + tuple(args[1:]), kwargs)
        if out is NotImplemented or not isinstance(out, Tensor) or out.shape != a.shape or out.dtype != a.dtype:
            return out
        result = InplaceFn.apply(a, out)
        return mark_nonneg(result) if marked_nonneg(out) else result
    return wrapped


# Backward nodes of the functions above that keep their input but not their output.
_KEEP_NO_OUTPUT = ("PassFnBackward", "ScaleFnBackward", "GateFnBackward", "CatFnBackward", "InplaceFnBackward",
                   "CloneBackward0")


def _saves_output(t: Tensor) -> bool:
    fn = t.grad_fn
    return fn is None or type(fn).__name__ not in _KEEP_NO_OUTPUT


def _mul(tr, func, args, kwargs):
    if len(args) < 2:
        return NotImplemented
    a, b = args[0], args[1]
    la, lb = _live(a), _live(b)
    if la and lb:
        if tr.is_gate(b):
            return GateFn.apply(a, b, torch.mul, tr.book)
        if tr.is_gate(a):
            return GateFn.apply(b, a, torch.mul, tr.book)
        return BilinearFn.apply(a, b, torch.mul, tr.eps, tr.book)
    if la:
        return ScaleFn.apply(a, lambda t: t * b, tr.book)
    if lb:
        return ScaleFn.apply(b, lambda t: a * t, tr.book)
    return NotImplemented


def _div(tr, func, args, kwargs):
    if len(args) < 2 or not _live(args[0]):
        return NotImplemented
    a, b = args[0], args[1]
    mode = kwargs.get("rounding_mode")
    if mode is not None:
        return NotImplemented
    if _live(b):  # a normalisation: the divisor is treated as a constant
        return GateFn.apply(a, b, torch.div, tr.book)
    return ScaleFn.apply(a, lambda t: t / b, tr.book)


def _bilinear(fn2: Callable):
    """matmul / bmm: uniform rule between two activations, ε-rule against a constant."""
    def handler(tr, func, args, kwargs):
        if len(args) < 2:
            return NotImplemented
        a, b = args[0], args[1]
        la, lb = _live(a), _live(b)
        if la and lb:
            return BilinearFn.apply(a, b, fn2, tr.eps, tr.book)
        if la:
            return LinearNormFn.apply(a, lambda t: fn2(t, b), tr.epsilon, tr.book)
        if lb:
            return LinearNormFn.apply(b, lambda t: fn2(a, t), tr.epsilon, tr.book)
        return NotImplemented
    return handler


def _einsum(tr, func, args, kwargs):
    eq, ops = args[0], args[1:]
    if len(ops) == 1 and isinstance(ops[0], (list, tuple)):
        ops = tuple(ops[0])
    if len(ops) != 2:
        return NotImplemented
    return _bilinear(lambda a, b: torch.einsum(eq, a, b))(tr, func, ops, {})


def _cat(tr, func, args, kwargs):
    tensors = args[0] if args else kwargs.get("tensors")
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not isinstance(tensors, (list, tuple)):
        return NotImplemented
    flags = tuple(_live(t) for t in tensors)
    if all(flags) or not any(flags):
        return NotImplemented
    dtype = next(t.dtype for t, f in zip(tensors, flags) if f)
    return CatFn.apply(dim, flags, tr.book, *[t.to(dtype) for t in tensors])


def _softmax(tr, func, args, kwargs):
    if not args or not _live(args[0]):
        return NotImplemented
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    if dim is None:
        dim = -1
    x = args[0]
    if kwargs.get("dtype") is not None:
        x = x.to(kwargs["dtype"])
    out = attention.softmax(x, dim, tr.book)
    tr.mark_final(args[0], out, "softmax")
    return out


def _sdpa(tr, func, args, kwargs):
    q, k, v, mask, dropout, causal, scale = _bind(
        args, kwargs, ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale"),
        (None, None, None, None, 0.0, False, None))
    if not (_live(q) or _live(k) or _live(v)) or kwargs.get("enable_gqa"):
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
    put([F.leaky_relu, F.gelu, F.silu, F.elu, F.selu, F.celu, F.mish,
         F.softplus, F.hardswish, F.hardtanh, F.prelu, torch.prelu, F.rrelu, F.tanhshrink, F.softsign,
         F.batch_norm, F.layer_norm, F.group_norm, F.instance_norm, g(F, "rms_norm", None), F.local_response_norm],
        _elementwise())
    put([torch.relu_, T.relu_, F.relu_], _inplace(_elementwise(plain=torch.relu, nonneg=True)))
    put([F.leaky_relu_], _inplace(_elementwise(plain=F.leaky_relu)))
    put([F.elu_], _inplace(_elementwise(plain=F.elu)))
    put([torch.tanh, T.tanh, F.tanh], _elementwise(gate=True))
    put([torch.sigmoid, T.sigmoid, F.sigmoid, F.hardsigmoid], _elementwise(gate=True, final="sigmoid"))
    put([torch.sigmoid_, T.sigmoid_], _inplace(_elementwise(gate=True, final="sigmoid", plain=torch.sigmoid)))
    put([F.log_softmax, torch.log_softmax, T.log_softmax], _elementwise(final="log_softmax"))
    put([F.softmax, torch.softmax, T.softmax], _softmax)
    put([F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
         F.adaptive_avg_pool3d, torch.mean, T.mean, torch.sum, T.sum, F.lp_pool2d], _linear_norm())
    put([F.interpolate, F.upsample], _linear_norm(_interp_linear))
    # operator forms (x += y) rebind the name to the result; method forms write back
    put([torch.add, T.add, T.__add__, T.__radd__, T.__iadd__], _add(1.0))
    put([T.add_], _inplace(_add(1.0)))
    put([torch.sub, T.sub, T.__sub__, T.__isub__, g(torch, "subtract", None)], _add(-1.0))
    put([T.sub_], _inplace(_add(-1.0)))
    put([T.__rsub__, g(torch, "rsub", None)], _add(-1.0, reverse=True))
    put([torch.mul, T.mul, T.__mul__, T.__rmul__, T.__imul__, g(torch, "multiply", None)], _mul)
    put([T.mul_], _inplace(_mul))
    put([torch.div, T.div, T.__truediv__, T.__itruediv__, g(torch, "true_divide", None)], _div)
    put([T.div_], _inplace(_div))
    put([torch.matmul, T.matmul, T.__matmul__, torch.bmm, T.bmm, torch.mm, T.mm], _bilinear(torch.matmul))
    put([torch.einsum], _einsum)
    put([torch.cat, g(torch, "concat", None), g(torch, "concatenate", None)], _cat)
    put([F.scaled_dot_product_attention], _sdpa)
    put([F.multi_head_attention_forward], _mha)
    return h


HANDLERS = _build()
