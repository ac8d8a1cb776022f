"""Conditional relevance: the part of a target's relevance that flows through chosen
channels of a layer (Concept Relevance Propagation, Achtibat et al. 2023).

One LRP forward pass is traced with the chosen layers' outputs recorded
(:func:`viewer.explain.lrp.engine.trace`). Relevance at a layer comes from one
backward pass from the output; the relevance through a channel is that layer's
relevance with every other channel set to zero, propagated on down from the layer's
output, so the part of the pass above the layer is shared by all channels and each
channel costs only the part below it. Every LRP rule is linear in the relevance it
receives (the forward values it divides by are fixed), so the maps of all channels
of a layer add up to the plain LRP map, less what went round the layer through
parallel paths (shortcut connections, like zennit-crp's ``exclude_parallel``).

Masked passes reuse the one recorded graph. For small inputs they run together:
the forward pass runs on k copies of the input and k masks go down in one backward
pass (:func:`auto_batch`); for large ones, in turn.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from viewer.explain.graph.errors import GraphError
from viewer.explain.graph.layers import channel_dim_of, check_layer_names
from viewer.explain.lrp.engine import trace
from viewer.explain.progress import Progress
from viewer.explain.result import Relevance
from viewer.explain.target import Target

Channels = Sequence["int | Sequence[int]"]


FORWARD_SHARE = 0.1  # of a progress bar: the traced forward pass, before the masked passes


def span(progress: Progress, start: float, end: float) -> Progress:
    """A progress that reports into ``[start, end]`` of ``progress`` and shares its cancel flag."""
    parent = progress.callback
    callback = None if parent is None else (lambda f: parent(start + (end - start) * f))
    return Progress(callback, progress.cancel)


def channel_sums(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum over everything but the channel dimension (all batch rows of one case), as
    float64: summed pairwise in the tensor's own precision (at least float32), which
    spares a float64 copy of the whole tensor."""
    flat = t.detach().movedim(dim, 0).reshape(t.shape[dim], -1)
    if flat.dtype in (torch.float16, torch.bfloat16):
        return flat.sum(1, dtype=torch.float32).double()
    return flat.sum(1).double()


def channel_part(t: torch.Tensor, dim: int, channels: "int | Sequence[int]") -> torch.Tensor:
    """``t`` with every channel along ``dim`` but ``channels`` set to zero."""
    idx = torch.as_tensor([channels] if isinstance(channels, int) else list(channels), dtype=torch.long,
                          device=t.device)
    out = torch.zeros_like(t, memory_format=torch.contiguous_format)
    return out.index_copy_(dim, idx, t.detach().index_select(dim, idx))


BATCH_BUDGET = 2 ** 16  # input elements (all copies together) up to which masked passes are batched
MAX_BATCH = 32


def auto_batch(x: torch.Tensor, masks: int) -> int:
    """How many masked passes to run together: one backward over copies of the input.

    Every pass walks the whole recorded graph below its layer, op by op; for small
    inputs that walk's fixed cost dominates, and k copies cost little more than one
    (2D demo model, 48×56: six masked passes batched took half the time of six in
    turn). Large inputs would pay k forward passes and k times the memory: they run
    one pass at a time. Only single-row inputs are batched.
    """
    if x.shape[0] != 1 or masks <= 1:
        return 1
    return max(1, min(masks, MAX_BATCH, BATCH_BUDGET // max(1, x.numel())))


class ConditionalPass:
    """One traced forward pass of ``module`` on ``x`` that answers masked backward passes.

    ``layers`` are module names; :meth:`relevance` gives the target's relevance at each
    of them (one backward pass for all), :meth:`down_many` propagates relevance tensors
    from a layer's output to a lower layer or to the input and reports what biases
    and stabilisers absorbed on the way. With ``batch`` > 1 (single-row inputs) the
    forward runs on that many copies of ``x`` and up to ``batch`` tensors go down in one
    backward pass; the relevance tensors and results are always shaped like one copy.
    """

    def __init__(
        self,
        module: nn.Module,
        x: torch.Tensor,
        layers: Sequence[str],
        target: Any = None,
        preset: str = "epsilon-plus",
        overrides: Mapping | None = None,
        channel_dim: int | Mapping[str, int] | None = None,
        progress: Progress | None = None,
        require: bool = True,
        batch: int = 1,
        **params: Any,
    ) -> None:
        check_layer_names(module, list(layers))
        self.progress = progress or Progress()
        self.x = x
        self.batch = max(1, int(batch)) if x.shape[0] == 1 else 1
        self._args = (module, preset, overrides, list(layers), params)
        self._trace()
        if self.batch > 1 and any(t.ndim == 0 or t.shape[0] != self.batch for t in self.traced.taps.values()):
            self.batch = 1  # a layer folds the batch into another dimension: copies cannot be told apart
            self._trace()
        out = self.traced.output
        self.logits = out.detach()[: x.shape[0]]
        self.target = Target.resolve(target, self.logits.float())
        self.seed = self.target.seed(self.logits).to(out.dtype) * self.logits
        self.explained = float(self.seed.sum(dtype=torch.float64))
        self.tensors: dict[str, torch.Tensor] = {}
        self.dims: dict[str, int] = {}
        self.problems: dict[str, str] = {}
        for name in layers:
            problem = self._check(name, channel_dim)
            if problem is not None:
                self.problems[name] = problem
        if require and self.problems:
            raise GraphError(next(iter(self.problems.values())))
        self._relevance: dict[str, torch.Tensor] = {}
        self._unreached: set[str] = set()

    def _trace(self) -> None:
        module, preset, overrides, layers, params = self._args
        xin = self.x if self.batch == 1 else self.x.expand(self.batch, *self.x.shape[1:]).contiguous()
        self.traced = trace(module, xin, preset, span(self.progress, 0.0, FORWARD_SHARE), overrides,
                            taps=layers, **params)

    # -- layers --------------------------------------------------------------------------------
    def _check(self, name: str, channel_dim: int | Mapping[str, int] | None) -> str | None:
        t = self.traced.taps.get(name)
        calls = self.traced.tap_calls.get(name, 0)
        if t is None or calls == 0:
            return (f"Layer {name!r} did not run in the forward pass (or returned no tensor); "
                    "choose a layer the model calls.")
        if calls > 1:
            return (f"Layer {name!r} runs {calls} times in one forward pass; its channels are not one feature. "
                    "Choose a layer that runs once.")
        if t is self.traced.output or not t.requires_grad:
            where = "is the explained output itself" if t is self.traced.output else "does not depend on the input"
            return (f"Layer {name!r} {where}; choose a layer between the input and the output.")
        wanted = channel_dim.get(name) if isinstance(channel_dim, Mapping) else channel_dim
        dim = channel_dim_of(t, self.x.ndim, wanted)
        if dim is None:
            return (f"Layer {name!r} has no channels: its output has shape {(self.x.shape[0], *t.shape[1:])}. "
                    "Choose a layer whose output is (B, C, ...) or (B, tokens, features).")
        self.tensors[name] = t
        self.dims[name] = dim
        return None

    @property
    def order(self) -> list[str]:
        """The usable layers, nearest to the output first."""
        return [n for n in reversed(self.traced.tap_order) if n in self.tensors]

    def channels(self, layer: str) -> int:
        return int(self.tensors[layer].shape[self.dims[layer]])

    # -- passes --------------------------------------------------------------------------------
    def relevance(self, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """The target's relevance at the output of each layer (detached, one copy), one
        backward pass. A layer that receives no relevance at all lies after the explained
        output or off its path: :class:`GraphError`.
        """
        names = list(layers) if layers is not None else list(self.tensors)
        missing = sorted(set(names) - self.on_path(names))
        if missing:
            raise GraphError(f"Layer {missing[0]!r} does not lead to the explained output (it comes after the "
                             "output or feeds something else); choose a layer between the input and the output.")
        return {n: self._relevance[n] for n in names}

    def on_path(self, layers: Sequence[str]) -> set[str]:
        """Those of ``layers`` that relevance reaches (computing it for them)."""
        todo = [n for n in layers if n not in self._relevance and n not in self._unreached]
        if todo:
            self.progress.check()
            seed = self.seed.expand(self.batch, *self.seed.shape[1:]) if self.batch > 1 else self.seed
            # nobody reads this pass's ledger, except to learn whether copies can be told apart
            self.traced.book.reset(batch=self.batch if self.batch > 1 else self.x.shape[0], active=self.batch > 1)
            self.traced.read_at([self.tensors[n] for n in todo])
            grads = torch.autograd.grad(self.traced.output, [self.tensors[n] for n in todo], seed,
                                        retain_graph=True, allow_unused=True)
            if self.batch > 1 and self.traced.book.per_row() is None:
                # the ledger cannot tell this model's copies apart (e.g. attention heads
                # folded into the batch): trace again and run one pass at a time
                self.batch = 1
                self._trace()
                self.tensors = {n: self.traced.taps[n] for n in self.tensors}
                return self.on_path(layers)
            for n, g in zip(todo, grads):
                if g is None:
                    self._unreached.add(n)
                else:
                    self._relevance[n] = g.detach()[: self.x.shape[0]]
        return {n for n in layers if n in self._relevance}

    def down(self, layer: str, relevance: torch.Tensor, to: str | None = None) -> tuple[torch.Tensor, float]:
        """:meth:`down_many` for one tensor."""
        return self.down_many(layer, [relevance], to)[0]

    def down_channels(self, layer: str, groups: Sequence["int | Sequence[int]"], to: str | None = None,
                      ledger: bool = True) -> list[tuple[torch.Tensor, float]]:
        """:meth:`down_many` for the target's relevance at ``layer`` through each channel
        group of ``groups`` (every other channel of the layer set to zero). The layer
        below is told which channels carry relevance, so it need not look."""
        r, dim = self.relevance([layer])[layer], self.dims[layer]
        parts = [channel_part(r, dim, g) for g in groups]
        live = [[g] if isinstance(g, int) else list(g) for g in groups]
        return self.down_many(layer, parts, to, ledger, live=live)

    def down_many(self, layer: str, relevances: Sequence[torch.Tensor], to: str | None = None,
                  ledger: bool = True, live: Sequence[Sequence[int]] | None = None,
                  ) -> list[tuple[torch.Tensor, float]]:
        """Propagate each of ``relevances`` (shaped like one copy of ``layer``'s output) down
        to layer ``to``'s output or, with ``to=None``, to the input; ``batch`` at a time.
        Returns the relevance arriving there and the part absorbed on the way, per tensor
        (NaN with ``ledger=False``, which spares the ledger's per-copy sums). ``live``:
        per tensor, the channels (along the layer's channel dimension) outside which it
        is zero; without it the tensors count as dense (flows from a layer above: a
        dense layer spreads a channel's relevance over all channels) and no layer looks
        for channels without relevance."""
        src = self.tensors[layer]
        dst = self.traced.input if to is None else self.tensors[to]
        self.traced.read_at([dst])
        book = self.traced.book
        out: list[tuple[torch.Tensor, float]] = []
        for start in range(0, len(relevances), self.batch):
            self.progress.check()
            chunk = [r.to(src.dtype) for r in relevances[start:start + self.batch]]
            if self.batch > 1:
                grad = torch.cat(chunk + [torch.zeros_like(chunk[0])] * (self.batch - len(chunk)))
            else:
                grad = chunk[0]
            split = self.batch > 1 and ledger
            book.reset(batch=self.batch if split else (0 if self.batch > 1 else self.x.shape[0]), active=ledger)
            book.sparse = live is not None  # relevance in a few channels: the layers below run on those
            if live is not None:
                channels = sorted({c for group in live[start:start + self.batch] for c in group})
                book.live = (grad, self.dims[layer] - src.ndim, torch.as_tensor(channels, device=grad.device))
            try:
                (g,) = torch.autograd.grad(src, dst, grad, retain_graph=True, allow_unused=True)
            finally:
                book.sparse, book.live = False, None
            if g is None and to is not None:
                raise GraphError(f"No relevance flows from layer {layer!r} to layer {to!r}: {to!r} is not below "
                                 f"{layer!r} on a path to the input. Order layers from the output towards the input.")
            if g is None:
                g = torch.zeros_like(dst)
            rows = book.per_row() if split else None
            for i in range(len(chunk)):
                if self.batch > 1:
                    out.append((g[i:i + 1].detach(), float(rows[i]) if rows is not None else float("nan")))
                else:
                    out.append((g.detach(), book.total() if ledger else float("nan")))
        return out


@dataclass(frozen=True)
class ConceptRelevance:
    """The input relevance of a target through each requested channel (group) of a layer.

    ``maps[i]`` is shaped like the input; ``relevance[i]`` is what reached the channel
    at the layer, ``input_sum[i] + absorbed[i]`` equals it up to rounding (less
    what leaves the layer through shortcut paths). ``total`` is the relevance of the
    whole layer, ``explained`` the target's value.
    """

    layer: str
    channels: tuple
    maps: torch.Tensor
    relevance: tuple[float, ...]
    input_sum: tuple[float, ...]
    absorbed: tuple[float, ...]
    total: float
    explained: float
    output: torch.Tensor
    target: Target
    preset: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def as_relevance(self, i: int) -> Relevance:
        """Map ``i`` as the project's usual result, for displays and exports that take one."""
        return Relevance(
            relevance=self.maps[i], output=self.output, target=self.target, method="crp", preset=self.preset,
            params=dict(self.params), explained=self.relevance[i], input_sum=self.input_sum[i],
            absorbed=self.absorbed[i], meta={"layer": self.layer, "channels": self.channels[i]},
        )


def concept_relevance(
    module: nn.Module,
    x: torch.Tensor,
    layer: str,
    channels: Channels,
    target: Any = None,
    preset: str = "epsilon-plus",
    *,
    overrides: Mapping | None = None,
    channel_dim: int | None = None,
    progress: Progress | None = None,
    batch: int | None = None,
    **params: Any,
) -> ConceptRelevance:
    """For each channel (or group of channels) of ``layer``, the input relevance map of
    ``target`` that flows through that channel only.

    One forward pass and one backward pass to the layer, then one pass from the layer
    down per channel. ``channels`` items are channel indices or lists of indices (a
    concept spanning several channels). ``target``, ``preset``, ``overrides`` and
    ``**params`` are as for :func:`viewer.explain.lrp`; ``channel_dim`` overrides the
    automatic channel dimension (see :mod:`viewer.explain.graph.layers`); ``batch`` is
    how many channels go down in one backward pass (None: :func:`auto_batch`).
    """
    count = len(channels) if isinstance(channels, Sequence) else 1
    cp = ConditionalPass(module, x, [layer], target, preset, overrides, channel_dim, progress,
                         batch=auto_batch(x, count) if batch is None else batch, **params)
    labels, groups = _groups(channels, cp.channels(layer), layer)
    r_layer = cp.relevance([layer])[layer]
    dim = cp.dims[layer]
    per_channel = channel_sums(r_layer, dim)
    steps = span(cp.progress, FORWARD_SHARE, 1.0)
    maps, rel, sums, absorbed = [], [], [], []
    for start in range(0, len(groups), cp.batch):
        steps.step(start, len(groups))
        part = groups[start:start + cp.batch]
        for group, (heat, ab) in zip(part, cp.down_channels(layer, part)):
            maps.append(heat.to(x.dtype))
            rel.append(float(per_channel[list(group)].sum()))
            sums.append(float(heat.sum(dtype=torch.float64)))
            absorbed.append(ab)
    steps.step(1, 1)
    return ConceptRelevance(
        layer=layer, channels=tuple(labels),
        maps=torch.stack(maps) if maps else x.new_zeros((0, *x.shape)), relevance=tuple(rel), input_sum=tuple(sums),
        absorbed=tuple(absorbed), total=float(per_channel.sum()), explained=cp.explained,
        output=cp.logits.to(x.dtype), target=cp.target, preset=cp.traced.preset.name, params=dict(cp.traced.params),
    )


def _groups(channels: Channels, n: int, layer: str) -> tuple[list, list[tuple[int, ...]]]:
    """``(labels, groups)``: each item as given (an index or a tuple of indices) and as a
    tuple of valid indices; a clear error for anything else."""
    if _is_index(channels):
        channels = [channels]  # type: ignore[list-item]
    labels, groups = [], []
    for item in channels:
        if _is_index(item):
            group = (operator.index(item),)
            labels.append(group[0])
        else:
            try:
                group = tuple(operator.index(c) for c in item if not isinstance(c, bool))
                ok = len(group) == len(item) and len(group) > 0
            except TypeError:
                ok = False
            if not ok:
                raise GraphError(f"Channels are integers or lists of integers; got {item!r}.")
            labels.append(group)
        bad = [c for c in group if not 0 <= c < n]
        if bad:
            raise GraphError(f"Layer {layer!r} has {n} channels (0–{n - 1}); channel {bad[0]} does not exist.")
        groups.append(group)
    return labels, groups


def _is_index(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True
