"""The one forward pass: every relevant torch operation is swapped for its LRP version.

:class:`Tracer` is a ``TorchFunctionMode``: while it is active, each call of a
torch function (``F.conv3d``, ``Tensor.add_``, ``torch.cat``, ``softmax`` …)
comes through :meth:`Tracer.__torch_function__`.  Operations on the relevance path
(tensors that require grad; the model's parameters are frozen, only the input
requires grad) are replaced by the custom autograd functions of ``ops.py``,
``norms.py`` and ``attention.py`` (the table is in ``handlers.py``).  This sees
what module hooks cannot: residual additions written ``out += x``, one activation
module called twice, concatenations and functional calls.  Shape operations keep
their ordinary backward, which moves relevance without changing it.  Anything else
on the relevance path is recorded in ``unhandled``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.overrides import TorchFunctionMode

from viewer.explain.lrp.handlers import HANDLERS, live
from viewer.explain.lrp.ledger import Book, Site

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
    "upsample", "rearrange", "flip_", "crop", "squeeze_", "unsqueeze_", "t_", "transpose_", "swapaxes_",
    "swapdims_", "maximum", "minimum", "fmax", "fmin", "min", "amin", "topk", "sort", "msort", "median",
    "nanmedian", "kthvalue", "cummax", "cummin", "where", "masked_scatter", "index_copy", "scatter",
}

GATE_RULES = ("constant", "uniform")


class Tracer(TorchFunctionMode):
    """State of one explanation's forward pass.

    ``choose(kind, name, module)`` returns the rule for an affine op of kind
    "conv" or "dense" owned by module ``name``; ``stack`` is maintained by module
    hooks of the prepared model so that each op knows its module.  ``stabilizer``
    is the ε of the parameter-free rules (sums, pooling, products, normalisations);
    ``gates`` says how a product with a sigmoid-like gate is explained:
    "constant" (the gate is a fixed factor, all relevance to the gated signal) or
    "uniform" (half to each factor, AttnLRP's rule for products).
    """

    def __init__(self, choose: Callable, stabilizer: float, epsilon: float, stack: list,
                 gates: str = "constant") -> None:
        super().__init__()
        if gates not in GATE_RULES:
            raise ValueError(f"gates must be one of {GATE_RULES}, not {gates!r}.")
        self.book = Book()
        self.choose = choose
        self.eps = stabilizer
        self.epsilon = epsilon
        self.stack = stack
        self.gate_rule = gates
        self.unhandled: dict[str, int] = {}
        self.final_of: dict[int, tuple[Tensor, Tensor, str]] = {}  # softmax/sigmoid output -> its input
        self.gates: set[int] = set()
        self._keep: list[Tensor] = []
        self.layers: list[tuple[str, str, str]] = []  # (module name, op kind, rule) in call order
        self.joined: list = []  # max poolings joined to the layer below (pooling.py)
        self._sites = 0

    # -- bookkeeping -------------------------------------------------------------------
    def owner(self) -> tuple[str, torch.nn.Module | None]:
        return self.stack[-1] if self.stack else ("", None)

    def site(self, kind: str, rule: str) -> Site:
        """A new ledger entry for an operation of ``kind`` in the current module."""
        self._sites += 1
        return Site(self._sites, self.owner()[0], kind, rule)

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
        if live(a) or (isinstance(a, (list, tuple)) and any(live(t) for t in a)):
            return True
    return False
