"""The linear maps that LRP rules act on: convolution, transposed convolution, dense.

A rule needs two things from a layer: the forward map with modified weights
(``forward(x, W, b)``) and the transposed map (``vjp(g, W, x)``, the input part of
the layer's gradient).  Keeping both here lets every rule be written once for all
layer types, and lets the backward reuse autograd's own convolution kernels instead
of re-running the layer forward as hook-based implementations do.
"""

from __future__ import annotations

import functools
import itertools
import math
import weakref
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from viewer.explain.lrp import sparse


def _tuple(value, n: int) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value) if len(value) == n else tuple(int(value[0]) for _ in range(n))
    return (int(value),) * n


@dataclass(frozen=True)
class AffineOp:
    """One call of a linear layer, minus its weights.

    ``kind`` is ``"linear"``, ``"conv"`` or ``"conv_transpose"``; ``nd`` the number
    of spatial dimensions for convolutions.
    """

    kind: str
    nd: int = 0
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    output_padding: tuple[int, ...] = ()
    groups: int = 1
    # in a backward pass: the (batch, output position) pairs, flattened, outside which the
    # relevance is zero, when they are few (``sparse.support``); the transposed map then
    # works from those positions only
    support: torch.Tensor | None = field(default=None, compare=False, repr=False)

    @staticmethod
    def conv(nd: int, stride=1, padding=0, dilation=1, groups=1) -> "AffineOp":
        return AffineOp("conv", nd, _tuple(stride, nd), _tuple(padding, nd), _tuple(dilation, nd), (0,) * nd, int(groups))

    @staticmethod
    def conv_transpose(nd: int, stride=1, padding=0, output_padding=0, groups=1, dilation=1) -> "AffineOp":
        return AffineOp(
            "conv_transpose", nd, _tuple(stride, nd), _tuple(padding, nd), _tuple(dilation, nd),
            _tuple(output_padding, nd), int(groups),
        )

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "linear":
            return F.linear(x, weight, bias)
        if self.kind == "conv":
            if self._onednn(x, weight):
                return torch.mkldnn_convolution(
                    x, weight, bias, list(self.padding), list(self.stride), list(self.dilation), self.groups
                )
            fn = (F.conv1d, F.conv2d, F.conv3d)[self.nd - 1]
            return fn(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)
        fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[self.nd - 1]
        return fn(x, weight, bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation)

    def vjp(self, g: torch.Tensor, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Transpose of the map applied to ``g`` (shaped like the output); result shaped like x."""
        if self.kind == "linear":
            return g.matmul(weight.to(g.dtype))
        if self.support is not None:
            return sparse.transposed(self, g, weight.to(g.dtype), x, self.support)
        if self._few_inputs(g, (weight,), x):
            return self._vjp_depthwise(g, (weight,), x)[0]
        pad = [d * (k - 1) - p for d, k, p in zip(self.dilation, weight.shape[2:], self.padding)]
        if (self.kind == "conv" and self.groups == 1 and all(s == 1 for s in self.stride) and min(pad) >= 0
                and weight.shape[1] >= 8):  # into fewer channels oneDNN's own backward is faster
            g = g.contiguous()
            if self._onednn(g, weight):
                # stride 1: the transposed map is a convolution with the flipped,
                # transposed kernel, which oneDNN runs as fast as the forward
                spatial = tuple(range(2, 2 + self.nd))
                wt = derived(weight, ("flipT",), lambda: weight.flip(spatial).transpose(0, 1).contiguous())
                out = torch.mkldnn_convolution(g, wt, None, pad, [1] * self.nd, list(self.dilation), 1)
                if out.shape == x.shape:
                    return out
        return self._vjp(g, weight, x)

    def quotient(self, r, z: torch.Tensor, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``r / z`` laid out as :meth:`vjp` will read it: channels-last where the
        transposed map runs depthwise (the copy into that layout would cost a pass over
        a full-resolution tensor, for every conditional pass of a graph). ``r`` may be
        relevance at a max pooling's input (``pooling.Pooled``): divided at the winners."""
        few = z.dim() in (4, 5) and self._few_inputs(z, (weight,), x)
        fmt = (torch.channels_last_3d if z.dim() == 5 else torch.channels_last) if few else None
        if not isinstance(r, torch.Tensor):
            return r.divide(z, fmt=fmt)
        if fmt is not None and r.shape == z.shape and r.dtype == z.dtype:
            return torch.div(r, z, out=torch.empty_like(r, memory_format=fmt))
        return r / z

    def _onednn(self, x: torch.Tensor, weight: torch.Tensor) -> bool:
        """A 3D convolution on the CPU that oneDNN can run.

        PyTorch sends many small 3D convolutions to its vol2col + GEMM path instead
        (128→32 channels, 3³ kernel at 12³ voxels: 21.7 ms against oneDNN's 3.5 ms on
        2 cores; at 6³: 1.9 against 0.5 ms), which is most of DenseNet121's layers
        at 96³. Where PyTorch already picks oneDNN, calling it directly costs the same.
        """
        return (
            self.nd == 3
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and weight.dtype == torch.float32
            and x.is_contiguous()
            and _ONEDNN
        )

    def vjp_pair(
        self, g: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(vjp(g, w1, x), vjp(g, w2, x))``, in one pass over ``g`` where that is faster."""
        if self.support is not None:
            return self.vjp(g, w1, x), self.vjp(g, w2, x)
        if self._few_inputs(g, (w1, w2), x):
            a, b = self._vjp_depthwise(g, (w1, w2), x)
            return a, b
        c = w1.shape[1]
        if self.kind == "conv" and self.groups == 1 and c <= 4 and w2.shape == w1.shape and x.device.type == "cpu":
            # an input layer: both maps as one transposed convolution into 2c channels
            # (ResNet's 7×7 stride-2 stem, 3 channels, 2 cores: 8 ms against 2 × 8 ms)
            both = derived(w1, ("pair", id(w2), w2._version), lambda: torch.cat([w1, w2], 1))
            shape = (x.shape[0], 2 * c, *x.shape[2:])
            out = self._vjp(g, both, x.new_empty(shape, dtype=g.dtype))
            return out[:, :c], out[:, c:]
        return self.vjp(g, w1, x), self.vjp(g, w2, x)

    def _few_inputs(self, g: torch.Tensor, weights: tuple[torch.Tensor, ...], x: torch.Tensor) -> bool:
        """A convolution from one or two input channels (an input layer) on the CPU
        whose transposed map runs faster as depthwise convolutions (:meth:`_vjp_depthwise`).

        oneDNN's transposed map (backward-data) is slow for so few channels and large
        kernels: 1→64 channels, 7³ kernel, stride 2, 96³ voxels on 2 cores 575 ms
        against 140 ms depthwise (forward 60 ms); 1→8 channels 3³ at 48³ 9.2 (4.6 as a
        flipped convolution) against 1.7 ms. Depthwise does about the work of the
        forward per input channel, plus zero taps where the stride does not divide the
        kernel (``overhead``), so it loses with three channels, with 3³ kernels at
        stride 2 (2.4× the taps: 18 against 11 ms) and, in 3D, with 3³ kernels into
        64 channels (28 against 21 ms); in 2D only kernels of 5 and more pay (ResNet's
        RGB stem: 11 against 8 ms; one channel 7×7 stride 2 at 224²: 3 against 8 ms).
        """
        if not (self.kind == "conv" and self.nd in (2, 3) and self.groups == 1
                and all(d == 1 for d in self.dilation) and g.device.type == "cpu"
                and g.dtype in (torch.float32, torch.bfloat16) and weights[0].shape[0] >= 8):
            return False
        cin, kernel = weights[0].shape[1], weights[0].shape[2:]
        overhead = math.prod(-(-k // s) * s / k for k, s in zip(kernel, self.stride))
        if overhead > 1.5:
            return False
        if self.nd == 3:
            return cin <= 2 and (max(kernel) >= 5 or weights[0].shape[0] <= 32)
        return cin == 1 and max(kernel) >= 5

    def _vjp_depthwise(
        self, g: torch.Tensor, weights: tuple[torch.Tensor, ...], x: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """Wᵀg = Σ_c W[c, i] ⋆ g_c for each weight and input channel i, as depthwise
        convolutions over g's channels followed by a channel sum.

        With stride s the transposed map splits by output position modulo s (the
        polyphase form): positions with residue r receive only the taps r, r+s, r+2s,
        …, a stride-1 correlation of g with that flipped sub-kernel. One depthwise
        call per residue, input channel and weight, each with channel multiplier 1
        (a multiplier above one leaves oneDNN's fast depthwise path: 3.5 s instead of
        2 × 0.6 s at 96³). The plan and the sub-kernels are made once per shape and
        weight (an attribution graph runs this map once per node).
        """
        c_out = g.shape[1]
        fn = F.conv3d if self.nd == 3 else F.conv2d
        plans = _polyphase_plan(self.stride, self.padding, tuple(weights[0].shape[2:]), tuple(g.shape[2:]),
                                tuple(x.shape[2:]))
        gl = g.contiguous(memory_format=torch.channels_last_3d if self.nd == 3 else torch.channels_last)
        outs = []
        for w in weights:
            subs = derived(w, ("polyphase", self.stride, g.dtype), lambda w=w: self._sub_kernels(w.to(g.dtype)))
            if len(plans) == 1 and plans[0] is not None and len(subs[0]) == 1:
                pads, src, _ = plans[0]  # stride 1, one input channel: the channel sum is the map
                y = fn(gl, subs[0][0], None, 1, pads, 1, c_out)[(slice(None), slice(None)) + src]
                if y.shape[2:] == x.shape[2:]:
                    outs.append(_channel_sum(y).unsqueeze(1))
                    del y  # before the next weight's map: each is as large as g
                    continue
                del y
            gx = g.new_zeros(x.shape[0], w.shape[1], *x.shape[2:])
            for plan, per_input in zip(plans, subs):
                if plan is None:  # a residue that fills no output position
                    continue
                pads, src, dst = plan
                for i, sub in enumerate(per_input):
                    y = fn(gl, sub, None, 1, pads, 1, c_out)[(slice(None), slice(None)) + src]
                    gx[(slice(None), i) + dst] = _channel_sum(y)
                    del y
            outs.append(gx)
        return tuple(outs)

    def _sub_kernels(self, w: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per stride residue, per input channel: the flipped sub-kernel of ``w``'s taps
        with that residue (padded with zero taps so that every residue has as many)."""
        nd, ksize = self.nd, w.shape[2:]
        mmax = [-(-k // s) for k, s in zip(ksize, self.stride)]
        extra = [0] * (2 * nd)
        for d in range(nd):
            extra[2 * (nd - 1 - d) + 1] = self.stride[d] * mmax[d] - ksize[d]
        wp = F.pad(w, extra)
        spatial = tuple(range(2, 2 + nd))
        out = []
        for res in itertools.product(*[range(s) for s in self.stride]):
            sub = wp[(slice(None), slice(None)) + tuple(slice(r, None, s) for r, s in zip(res, self.stride))]
            sub = sub.flip(spatial)
            out.append([sub[:, i : i + 1].contiguous() for i in range(w.shape[1])])
        return out

    def _vjp(self, g: torch.Tensor, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        grad_input, _, _ = torch.ops.aten.convolution_backward(
            g, x.to(g.dtype), weight.to(g.dtype), None, list(self.stride), list(self.padding), list(self.dilation),
            self.kind == "conv_transpose", list(self.output_padding), self.groups, [True, False, False],
        )
        return grad_input


@functools.lru_cache(maxsize=64)
def _polyphase_plan(stride, padding, ksize, gsize, xsize) -> tuple:
    """For each stride residue of the transposed map's output (in the order of
    ``itertools.product``): the padding of its stride-1 correlation, the slice of
    that correlation's output to keep, and the output positions it fills; residues
    that fill no position get ``None`` (their sub-kernels are skipped)."""
    nd = len(stride)
    mmax = [-(-k // s) for k, s in zip(ksize, stride)]  # taps per residue, at most
    plans = []
    for res in itertools.product(*[range(s) for s in stride]):
        pads, src, dst = [], [], []
        for d in range(nd):
            s, r, p, m = stride[d], res[d], padding[d], mmax[d]
            i0 = (r - p) % s
            q0 = (i0 + p - r) // s
            n = len(range(i0, xsize[d], s))
            nq = min(n, gsize[d] + m - 1 - q0)
            if nq <= 0:
                break
            left = m - 1 - q0
            right = q0 + nq - 1 - (m - 1) - gsize[d] + m
            q = max(left, right, 0)
            start = q0 - (m - 1) + q
            pads.append(q)
            src.append(slice(start, start + nq))
            dst.append(slice(i0, i0 + s * nq, s))
        else:
            plans.append((pads, tuple(src), tuple(dst)))
            continue
        plans.append(None)
    return tuple(plans)


def _channel_sum(y: torch.Tensor) -> torch.Tensor:
    """``y.sum(1)``; for a channels-last ``y`` as a matrix-vector product, which reads
    it once in order (a reduction over the short innermost dimension is slower: 0.48
    against 0.63 ms for 8 channels at 48×56×48)."""
    c = y.shape[1]
    flat = y.movedim(1, -1)
    if flat.is_contiguous() and y.dtype in (torch.float32, torch.float64):
        return torch.mv(flat.reshape(-1, c), y.new_ones(c)).view(y.shape[:1] + y.shape[2:])
    return y.sum(1)


_ONEDNN = hasattr(torch, "mkldnn_convolution") and torch.backends.mkldnn.is_available()


def _eps_like(z: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.tensor(eps, dtype=z.dtype, device=z.device)


def stabilize(z: torch.Tensor, eps: float) -> torch.Tensor:
    """Push ``z`` away from zero by ``eps`` in the direction of its sign (+0 counts as
    positive): ``z + copysign(eps, z)``, bit for bit ``copysign(|z| + eps, z)``, in
    two passes (this runs once per layer in the backward)."""
    return torch.copysign(_eps_like(z, eps), z).add_(z)


def divide(r, z: torch.Tensor, eps: float) -> torch.Tensor:
    """``r / stabilize(z, eps)`` in one new buffer (fresh CPU allocations cost page
    faults, so the backward reuses buffers where it can); ``r`` may be ``pooling.Pooled``."""
    if not isinstance(r, torch.Tensor):
        return r.divide(z, eps)
    if r.shape != z.shape or r.dtype != z.dtype:
        return r / stabilize(z, eps)
    out = stabilize(z, eps)
    return torch.div(r, out, out=out)


def constant_like(value, x: torch.Tensor) -> torch.Tensor:
    """A bound (float or broadcastable tensor, e.g. per channel) broadcast to x's shape."""
    t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if t.ndim == 1 and t.numel() == x.shape[1] and x.ndim > 2:
        t = t.reshape(1, -1, *([1] * (x.ndim - 2)))
    return t.expand_as(x)


# -- weights derived from a layer's weights (W + γW⁺, W⁺, ...), computed once per weight --
_DERIVED: dict[int, tuple[weakref.ref, int, dict]] = {}


def derived(w: torch.Tensor, key: tuple, make) -> torch.Tensor:
    """``make()`` for weight ``w``, cached while ``w`` lives and is not modified.

    Rules need modified copies of a layer's weights in the forward *and* the
    backward of every call; the engine's prepared model copy keeps its weights, so
    building them once saves a pass over all weights twice per layer and call.  The
    entry is keyed by the tensor's identity and version (an in-place update makes a
    new entry) and dropped when the weight is freed.
    """
    wid = id(w)
    hit = _DERIVED.get(wid)
    if hit is None or hit[0]() is not w or hit[1] != w._version:
        try:
            ref = weakref.ref(w, lambda _r, wid=wid: _DERIVED.pop(wid, None))
        except TypeError:  # not weak-referenceable: no caching
            return make()
        hit = (ref, w._version, {})
        _DERIVED[wid] = hit
    table = hit[2]
    if key not in table:
        if len(table) >= 16:  # e.g. ZBox offsets for many input shapes
            table.clear()
        table[key] = make()
    return table[key]
