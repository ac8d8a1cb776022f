"""Max pooling, and max pooling joined to the layer below it in the backward.

Max pooling hands each window's relevance to the window's winner (its gradient).
The relevance at the pooling's input is therefore zero except at the winners, one
value per window. A rule below that divides that relevance by one denominator (ε,
ZBox, flat, w², and z⁺ and γ on non-negative inputs; ``Rule.takes_pooled``) needs the
division at the winners only. When
the pooling's input comes straight from such a layer (through activations, which
pass relevance unchanged), the pooling's backward runs that layer's rule itself, on
:class:`Pooled` relevance: the division reads the layer's output at the winners
(one value per window instead of one per voxel) and only the quotient is written at
full resolution, in the layout the layer's transposed map reads. The relevance at
the pooling's input is never formed, nor kept: the pooling saves its winners'
indices, not its input (VGG16: 12–17 % less peak memory; on the 3D demo model the
full-resolution division was 1.5–2 ms of a 9 ms masked pass of an attribution graph).

The layer's own backward then only hands on what the pooling left with it
(:func:`take_stash`). Where relevance also reaches the activations by another path
(a second consumer) the layer runs its rule on that part and adds the pooling's
part: every z-rule is linear in the relevance it receives, so the sum is what the
unjoined backward gives. Where relevance is read at one of the tensors in between
(a tapped module output), the tracer keeps them apart (:func:`keep_apart`).

When the relevance reaches only a few winners (``sparse.support``: a feature's
relevance in an attribution graph, below a global max pooling) the layer's
transposed map reads the quotient at those winners only; the quotient is then written
there into a zero buffer the pooling keeps and set back to zero after the rule
(:meth:`Pooled.few`), instead of filling and scattering a full-resolution tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd import Function

from viewer.explain.lrp.affine import _tuple, stabilize

Tensor = torch.Tensor


@dataclass(frozen=True)
class PoolSpec:
    nd: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool

    @staticmethod
    def of(nd: int, kernel, stride, padding, dilation, ceil_mode) -> "PoolSpec":
        """From the arguments of ``F.max_pool2d/3d`` (a missing stride is the kernel)."""
        if stride is None or (isinstance(stride, (list, tuple)) and not stride):
            stride = kernel
        return PoolSpec(nd, _tuple(kernel, nd), _tuple(stride, nd), _tuple(padding, nd), _tuple(dilation, nd),
                        bool(ceil_mode))

    def pool(self, x: Tensor) -> tuple[Tensor, Tensor]:
        fn = F.max_pool2d if self.nd == 2 else F.max_pool3d
        return fn(x, self.kernel, self.stride, self.padding, self.dilation, ceil_mode=self.ceil_mode,
                  return_indices=True)

    def scatter(self, values: Tensor, idx: Tensor, like: Tensor) -> Tensor:
        """Each value to its winner, summed where windows share one (the gradient)."""
        back = torch.ops.aten.max_pool2d_with_indices_backward if self.nd == 2 else \
            torch.ops.aten.max_pool3d_with_indices_backward
        return back(values, like, list(self.kernel), list(self.stride), list(self.padding), list(self.dilation),
                    self.ceil_mode, idx)


class Pooled:
    """Relevance at a max pooling's input, held as the pooled relevance and the
    winners' indices; what a rule of the layer below needs is formed from these.

    ``cache`` belongs to the pooling and outlives one backward pass (an attribution
    graph runs many): the layer's denominators at the winners and the winners'
    indices in other memory layouts are formed once."""

    def __init__(self, small: Tensor, idx: Tensor, spec: PoolSpec, shape: torch.Size, cache: dict) -> None:
        self.small, self.idx, self.spec, self.shape = small, idx, spec, shape
        self.dtype, self.device = small.dtype, small.device
        self._cache = cache
        # see few(): the windows to write, then where they were written
        self._written: tuple[Tensor, tuple[Tensor, Tensor] | None] | None = None
        self._windows: Tensor | None = None  # see _hit()

    def at_winners(self, t: Tensor, eps: float | None = None) -> Tensor:
        """``t`` (shaped like the pooling's input) at each window's winner, stabilised by
        ``eps`` when given; remembered while ``t`` is unchanged (the forward's outputs)."""
        key = ("at", eps, tuple(t.shape), t.dtype)
        hit = self._cache.get(key)
        if hit is not None and hit[0].data_ptr() == t.data_ptr() and hit[0]._version == t._version:
            return hit[1]
        flat = t.reshape(*t.shape[:2], -1)
        d = flat.gather(2, self.idx.reshape(*self.idx.shape[:2], -1)).view(self.small.shape)
        if eps is not None:
            d = stabilize(d, eps)
        self._cache[key] = (t, d)  # holding t keeps its memory from being reused by another tensor
        return d

    def positions(self) -> Tensor:
        """The winners that receive relevance (not zero, or NaN), as flattened (batch,
        position) indices into the pooling's input, each once."""
        b, c = self.idx.shape[:2]
        plane = math.prod(self.shape[2:])
        offsets = torch.arange(b, device=self.idx.device).view(b, 1, *([1] * (self.idx.dim() - 2))) * plane
        return (self.idx + offsets)[self._hit()].unique()

    def _hit(self) -> Tensor:
        """The windows whose relevance is not zero (or NaN), found once."""
        if self._windows is None:
            self._windows = self.small.ne(0)
        return self._windows

    def few(self) -> None:
        """Mark the relevance as held at the few winners :meth:`positions` gives (the
        layer below reads its quotient there only): :meth:`dense` then writes those
        winners into a zero buffer the pooling keeps, instead of zero-filling and
        scattering a full-resolution tensor, and :meth:`done` sets them back to zero."""
        self._written = (self._hit(), None)

    def done(self) -> None:
        """Zero again what :meth:`dense` wrote into the kept buffer."""
        if self._written is not None and self._written[1] is not None:
            buf, where = self._written[1]
            buf.index_fill_(0, where, 0)
        self._written = None

    def dense(self, values: Tensor | None = None, fmt: torch.memory_format | None = None) -> Tensor:
        """``values`` (default: the relevance) scattered to the winners at full resolution."""
        values = self.small if values is None else values
        fmt = fmt or torch.contiguous_format
        if self._written is not None and self._written[1] is None:
            return self._into_kept(values, fmt)
        idx = self.idx
        if fmt is not torch.contiguous_format:
            idx = self._cache.get(("idx", fmt))
            if idx is None:
                idx = self._cache[("idx", fmt)] = self.idx.contiguous(memory_format=fmt)
        like = torch.empty(self.shape, dtype=values.dtype, device=values.device, memory_format=fmt)
        return self.spec.scatter(values.contiguous(memory_format=fmt), idx, like)

    def _into_kept(self, values: Tensor, fmt: torch.memory_format) -> Tensor:
        keep = self._written[0]
        key = ("kept", fmt, values.dtype)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = torch.empty(self.shape, dtype=values.dtype, device=values.device,
                                                 memory_format=fmt).zero_()
        flat = self._storage_index(out)[keep]  # where each written winner lies in the buffer's memory
        storage = out.as_strided((out.numel(),), (1,))
        storage.index_put_((flat,), values[keep], accumulate=True)  # windows may share a winner
        self._written = (keep, (storage, flat))
        return out

    def _storage_index(self, like: Tensor) -> Tensor:
        """For each window, the offset of its winner in the memory of a tensor shaped
        like the pooling's input, laid out as ``like`` (contiguous or channels-last)."""
        last = not like.is_contiguous()
        key = ("storage", last)
        hit = self._cache.get(key)
        if hit is None:
            b, c = self.idx.shape[:2]
            plane = math.prod(self.shape[2:])
            rows = torch.arange(b, device=self.idx.device).view(b, 1, *([1] * (self.idx.dim() - 2)))
            chans = torch.arange(c, device=self.idx.device).view(1, c, *([1] * (self.idx.dim() - 2)))
            hit = (rows * plane + self.idx) * c + chans if last else (rows * c + chans) * plane + self.idx
            self._cache[key] = hit
        return hit

    def divide(self, den: Tensor, eps: float | None = None, fmt: torch.memory_format | None = None) -> Tensor:
        """The relevance divided by ``den`` (stabilised by ``eps`` when given), at full
        resolution in layout ``fmt``: one division per window. The values at the
        winners stay in ``quotient`` (per-channel sums of the quotient, for the ledger)."""
        self.quotient = self.small / self.at_winners(den, eps)
        return self.dense(self.quotient, fmt)


class MaxPoolFn(Function):
    """2D/3D max pooling; with ``below`` (the backward node of an affine layer whose
    output reaches the pooling through activations only) the backward runs that
    layer's rule on :class:`Pooled` relevance and leaves the result with the layer."""

    @staticmethod
    def forward(ctx, x, spec: PoolSpec, below, run_below):
        y, idx = spec.pool(x)
        ctx.save_for_backward(idx)
        ctx.spec, ctx.shape, ctx.below, ctx.run_below = spec, x.shape, below, run_below
        ctx.cache = {}
        return y

    @staticmethod
    def backward(ctx, r):
        (idx,) = ctx.saved_tensors
        pooled = Pooled(r, idx, ctx.spec, ctx.shape, ctx.cache)
        below = ctx.below
        if below is None or not getattr(below, "joined", False):
            return pooled.dense(), None, None, None
        part = ctx.run_below(below, pooled)
        stash = getattr(below, "stash", None)
        epoch = below.book.epoch
        if stash is not None and stash[0] == epoch:  # a second pooling of the same layer in this pass
            part = part + stash[1]
        # what goes on through the activations: zeros that cost no memory, recognised
        # by the layer (any other relevance arriving there is added to them)
        hand = torch.zeros((), dtype=r.dtype, device=r.device).expand(ctx.shape)
        below.stash = (epoch, part, hand)
        return hand, None, None, None


def take_stash(ctx, r: Tensor) -> tuple[Tensor | None, bool]:
    """What a joined pooling left with this layer in the current pass, and whether
    ``r`` is nothing but the pooling's stand-in (then the layer has no work of its own)."""
    stash = getattr(ctx, "stash", None)
    if stash is None:
        return None, False
    ctx.stash = None
    epoch, part, hand = stash
    if epoch != ctx.book.epoch:
        return None, False
    return part, r is hand


def below_of(x: Tensor, affine_cls: type, through: tuple[type, ...]):
    """The backward node of the affine layer that produced ``x`` through activations
    (PassFn nodes), with the nodes on the way; (None, ()) if there is none."""
    node, chain = x.grad_fn, []
    while node is not None and isinstance(node, through):
        chain.append(node)
        node = node.next_functions[0][0]
    if node is not None and isinstance(node, affine_cls):
        return node, tuple(chain) + (node,)
    return None, ()


def keep_apart(joined: list, tapped: list[Tensor]) -> None:
    """Undo the joining where relevance is to be read at a tensor in between."""
    read = {t.grad_fn for t in tapped if isinstance(t, Tensor) and t.grad_fn is not None}
    for below, chain in joined:
        if any(node in read for node in chain):
            below.joined = False
