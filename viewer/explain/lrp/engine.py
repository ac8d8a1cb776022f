"""``lrp()``: one forward pass of a private model copy under the tracer, then one
backward per target that carries relevance instead of gradients.

The user's model is never touched: a deep copy is prepared once (parameters frozen,
eval mode, BatchNorm folded, module-stack hooks installed) and cached by the
model's identity, the versions of its parameters and buffers and its modules' plain
settings, so repeated calls are fast and any change to the model (new weights, a
training step, a replaced layer, a changed ``eps``) prepares a fresh copy.
"""

from __future__ import annotations

import copy
import fnmatch
import threading
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from viewer.explain.lrp import pooling
from viewer.explain.lrp.canonize import fold_batchnorms, install_stack_hooks
from viewer.explain.lrp.presets import Preset, get_preset
from viewer.explain.lrp.rules import Rule, make_rule
from viewer.explain.lrp.trace import Tracer
from viewer.explain.progress import Progress
from viewer.explain.result import Relevance
from viewer.explain.target import Target, primary_output

DEFAULTS = {"epsilon": 1e-6, "stabilizer": 1e-6, "gamma": 0.25, "alpha": 2.0, "beta": 1.0, "low": None, "high": None,
            "gates": "constant"}


@dataclass
class _Prepared:
    model: nn.Module
    stack: list
    folded: list[str]
    lock: threading.Lock = field(default_factory=threading.Lock)  # one trace at a time per copy


_CACHE: dict[int, tuple[weakref.ref, tuple, _Prepared]] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 2


_SETTINGS = (bool, int, float, str, type(None))


def _settings(module: nn.Module) -> tuple:
    """A module's plain settings (``eps``, ``momentum``, ``inplace``, ``stride`` …): they
    change what the module computes as much as its weights do."""
    out = []
    for k, v in vars(module).items():
        if k.startswith("_") or k == "training":
            continue
        if isinstance(v, _SETTINGS) or (isinstance(v, tuple) and all(isinstance(i, _SETTINGS) for i in v)):
            out.append((k, v))
    return tuple(out)


def _fingerprint(model: nn.Module) -> tuple:
    state = [(n, t.data_ptr(), t._version, t.dtype, t.device, tuple(t.shape))
             for n, t in list(model.named_parameters()) + list(model.named_buffers())]
    return (tuple(state), tuple((type(m).__name__, _settings(m)) for m in model.modules()))


def _prepare(model: nn.Module, x: torch.Tensor) -> _Prepared:
    key = id(model)
    fp = _fingerprint(model)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0]() is model and hit[1] == fp:
            return hit[2]
    try:
        twin = copy.deepcopy(model)
    except Exception as exc:  # noqa: BLE001 - any failure means the same thing to the user
        raise ValueError(f"LRP needs a copy of the model but it cannot be copied ({exc}).") from exc
    for m in twin.modules():  # the user's hooks must not see our tensors
        m._forward_hooks.clear()
        m._backward_hooks.clear()
        if hasattr(m, "_forward_hooks_with_kwargs"):
            m._forward_hooks_with_kwargs.clear()
    twin.eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    stack: list = []
    install_stack_hooks(twin, stack)
    folded = fold_batchnorms(twin, x, stack)
    prepared = _Prepared(twin, stack, folded)
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = (weakref.ref(model), fp, prepared)
    return prepared


def _rule_of(spec: Any, params: Mapping[str, Any]) -> Rule:
    if isinstance(spec, Rule):
        return spec
    if isinstance(spec, str):
        return make_rule(spec, dict(params))
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], str):
        return make_rule(spec[0], {**params, **dict(spec[1])})
    raise ValueError(f"An LRP override must be a rule name, (name, {{params}}) or a Rule; got {spec!r}.")


class _Chooser:
    """Rule for each affine op: overrides first (by name glob, then by type), then the
    preset's first-layer rule for the first matching layer, then conv/dense rules."""

    def __init__(self, preset: Preset, params: Mapping[str, Any], overrides: Mapping | None) -> None:
        self.preset = preset
        self.params = params
        self.conv = make_rule(preset.conv, dict(params))
        self.dense = make_rule(preset.dense, dict(params))
        self.first = make_rule(preset.first, dict(params)) if preset.first else None
        self.first_done = False
        self.by_name: list[tuple[str, Rule]] = []
        self.by_type: list[tuple[type, Rule]] = []
        for key, spec in (overrides or {}).items():
            rule = _rule_of(spec, params)
            if isinstance(key, str):
                self.by_name.append((key, rule))
            elif isinstance(key, type):
                self.by_type.append((key, rule))
            else:
                raise ValueError(f"Override keys are module names (glob allowed) or module types; got {key!r}.")

    def _override(self, name: str, module: nn.Module | None) -> Rule | None:
        for pattern, rule in self.by_name:
            if fnmatch.fnmatchcase(name, pattern):
                return rule
        for cls, rule in self.by_type:
            if module is not None and isinstance(module, cls):
                return rule
        return None

    def __call__(self, kind: str, name: str, module: nn.Module | None) -> Rule:
        first = not self.first_done
        self.first_done = True
        rule = self._override(name, module)
        if rule is not None:
            return rule
        if first and self.first is not None and (self.preset.first_kinds == "any" or kind == "conv"):
            return self.first
        return self.conv if kind == "conv" else self.dense

    def batchnorm(self, name: str, module: nn.Module | None) -> str:
        """"pass" or "norm" for an unfolded eval-mode BatchNorm (see ``Preset``); an
        override of its module to the ``pass`` rule or to ``norm``/``epsilon`` decides."""
        rule = self._override(name, module)
        if rule is None:
            return self.preset.batchnorm
        return "pass" if rule.name == "pass" else "norm"


def _resolve_params(preset: Preset, params: Mapping[str, Any], x: torch.Tensor) -> dict[str, Any]:
    known = set(DEFAULTS)
    unknown = set(params) - known
    if unknown:
        raise ValueError(f"Unknown LRP parameter(s) {sorted(unknown)}; known: {sorted(known)}.")
    out = {**DEFAULTS, **dict(preset.fixed), **{k: v for k, v in params.items() if v is not None}}
    if out["low"] is None:
        out["low"] = float(x.min())
    if out["high"] is None:
        out["high"] = float(x.max())
    return out


@dataclass
class Traced:
    """One forward pass under the LRP tracer, kept open for several backward passes.

    ``lrp()`` runs one backward per target from it; conditional relevance and
    attribution graphs (``viewer.explain.graph``) run many, masked at the outputs of
    the modules named in ``taps``. ``output`` is the explained output (the logits
    when the model ends in a softmax) and carries the relevance graph, ``input`` is
    the leaf that receives relevance, ``taps`` maps each tapped module name to its
    output in this pass (the first tensor of a tuple output; the last call when a
    module runs more than once, ``tap_calls`` says how often it ran) and ``tap_order``
    lists them in the order their forward finished. Reset ``book`` before each
    backward and keep the graph with ``retain_graph=True`` until the last.
    """

    output: torch.Tensor
    input: torch.Tensor
    raw: Any
    book: Any
    preset: Preset
    params: dict[str, Any]
    meta: dict[str, Any]
    autocast: Any = None
    taps: dict[str, torch.Tensor] = field(default_factory=dict)
    tap_calls: dict[str, int] = field(default_factory=dict)
    tap_order: list[str] = field(default_factory=list)
    joined: list = field(default_factory=list)

    def read_at(self, tensors: Sequence[torch.Tensor]) -> None:
        """Call before a backward pass that asks for relevance at ``tensors`` (taps):
        a max pooling joined to the layer below it skips the tensors in between
        (``pooling.py``), so it is kept apart where one of them is read."""
        pooling.keep_apart(self.joined, list(tensors))


def trace(
    model: nn.Module,
    x: torch.Tensor,
    preset: str = "epsilon-plus",
    progress: Progress | None = None,
    overrides: Mapping | None = None,
    precision: str = "float32",
    taps: Sequence[str] = (),
    **params: Any,
) -> Traced:
    """The forward half of :func:`lrp`: one pass of the prepared model copy under the
    tracer, with the outputs of the modules named in ``taps`` recorded (see
    :class:`Traced`). Parameters as for :func:`lrp`."""
    progress = progress or Progress()
    progress.check()
    chosen = get_preset(preset)
    values = _resolve_params(chosen, params, x)
    prepared = _prepare(model, x)
    progress.step(1, 4)

    chooser = _Chooser(chosen, values, overrides)
    tracer = Tracer(chooser, values["stabilizer"], values["epsilon"], prepared.stack, gates=values["gates"])
    xx = x.detach().clone().requires_grad_(True)
    autocast = None
    if precision in ("bfloat16", "float16"):
        autocast = torch.autocast(device_type=x.device.type, dtype=getattr(torch, precision))
    elif precision != "float32":
        raise ValueError(f"precision must be 'float32', 'bfloat16' or 'float16', not {precision!r}.")
    tapped: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}
    order: list[str] = []
    with prepared.lock, torch.enable_grad():
        handles = _install_taps(prepared.model, taps, tapped, calls, order)
        prepared.stack.clear()
        try:
            if autocast is not None:
                with autocast, tracer:
                    raw = prepared.model(xx)
            else:
                with tracer:
                    raw = prepared.model(xx)
        finally:
            prepared.stack.clear()
            for h in handles:
                h.remove()
    meta: dict[str, Any] = {}
    out, note = primary_output(raw)
    if out is None:
        raise ValueError("LRP needs a model that returns a tensor, or a tuple or dict whose first entry is one; "
                         f"got {type(raw).__name__}.")
    if note:
        meta["output_note"] = note
    if id(out) in tracer.final_of:
        inner, _, kind = tracer.final_of[id(out)]
        out = inner
        meta["output_note"] = f"the model ends in {kind}; its input (the logits) was explained"
    progress.step(2, 4)
    if not out.requires_grad:
        raise ValueError("The model output does not depend on the input through differentiable operations; "
                         "LRP cannot explain it.")
    if tracer.unhandled:
        meta["unhandled_ops"] = dict(tracer.unhandled)
        warnings.warn(f"LRP: operations without an LRP rule on the relevance path: {tracer.unhandled}; "
                      "their gradient was used, so the map is approximate.", stacklevel=3)
    meta["folded_batchnorms"] = list(prepared.folded)
    meta["layers"] = list(tracer.layers)
    return Traced(out, xx, raw, tracer.book, chosen, values, meta, autocast, tapped, calls, order, tracer.joined)


def _install_taps(model: nn.Module, names: Sequence[str], tapped: dict, calls: dict, order: list) -> list:
    """Forward hooks that record the output of each named module (removed by the caller)."""
    if not names:
        return []
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"The model has no module named {missing[0]!r}.")

    def hook(name):
        def record(module, args, output):
            if isinstance(output, (tuple, list)):
                output = next((o for o in output if isinstance(o, torch.Tensor)), None)
            if isinstance(output, torch.Tensor):
                tapped[name] = output
                calls[name] = calls.get(name, 0) + 1
                if name in order:
                    order.remove(name)
                order.append(name)
        return record

    return [modules[n].register_forward_hook(hook(n)) for n in dict.fromkeys(names)]


def lrp(
    model: nn.Module,
    x: torch.Tensor,
    target: Target | int | Sequence | None = None,
    preset: str = "epsilon-plus",
    progress: Progress | None = None,
    overrides: Mapping | None = None,
    precision: str = "float32",
    **params: Any,
) -> Relevance | list[Relevance]:
    """Explain ``model(x)`` for ``target`` with Layer-wise Relevance Propagation.

    Parameters
    ----------
    model, x
        Any ``nn.Module`` (on any device) and its input ``(B, C, *spatial)``.
    target
        None (predicted class / predicted foreground), a class index, ``(a, b)``
        for "a rather than b", a :class:`Target` (e.g. ``Target.region``), or a list
        of these: then a list of results from one forward pass.
    preset
        One of ``PRESETS`` (``epsilon``, ``epsilon-plus``, ``epsilon-gamma-box``,
        ``epsilon-alpha2-beta1``, ``epsilon-plus-flat``, ``attn-lrp``);
        :func:`~viewer.explain.lrp.presets.recommended_preset` picks one for a model.
    overrides
        ``{module-name-glob or module type: rule}`` where a rule is a name
        (``"flat"``), ``(name, {params})`` or a rule object; wins over the preset.
    precision
        "float32" (default), or "bfloat16"/"float16": convolutions, dense layers and
        products run in half precision under autocast, while every layer's output,
        the relevance pass and the ledger stay float32 (maps match float32 ones to
        Pearson 0.999 on ViT-B/16); ``meta`` adds ``precision`` and
        ``conservation_error``.
    **params
        zennit's names: ``epsilon`` (dense layers), ``gamma``, ``alpha``, ``beta``,
        ``low``, ``high``, ``stabilizer`` (every other rule); and ``gates``:
        "constant" (default: a sigmoid/tanh gate multiplying a signal is a fixed
        factor, all relevance to the signal) or "uniform" (half to each factor).

    Returns
    -------
    Relevance (or a list for a list of targets); ``explained == input_sum +
    absorbed`` up to rounding. ``meta``: ``unhandled_ops`` (operations on the
    relevance path that no rule covers; the result is then only approximate),
    ``absorbed_by_kind`` (absorbed relevance per kind of operation: conv, dense,
    norm, sum, bias, pool, product, softmax, constant), ``ledger`` (per operation:
    relevance in and out, the bias's and the stabiliser's closed-form shares and
    ``other``, whatever neither explains) and ``ledger_leaks`` (rows whose
    ``other`` is not rounding: a rule that loses relevance).
    """
    progress = progress or Progress()
    traced = trace(model, x, preset, progress, overrides, precision, **params)
    out, xx, meta, values, chosen = traced.output, traced.input, traced.meta, traced.params, traced.preset
    targets = list(target) if isinstance(target, list) else [target]

    logits = out.detach().float()
    results = []
    for i, spec in enumerate(targets):
        progress.check()
        t = Target.resolve(spec, logits)
        seed = t.seed(out.detach()).to(out.dtype) * out.detach()
        traced.book.reset(batch=x.shape[0])
        (rel,) = torch.autograd.grad(out, xx, seed, retain_graph=i < len(targets) - 1)
        explained = float(seed.sum(dtype=torch.float64))
        input_sum = float(rel.sum(dtype=torch.float64))
        absorbed = traced.book.total()
        m = dict(meta)
        m.update(traced.book.summary(getattr(torch, precision) if traced.autocast is not None else rel.dtype,
                                     explained))
        per_row = _absorbed_per_sample(traced.book.per_row(), seed, rel)
        if per_row is not None:
            m["absorbed_per_sample"] = per_row
        if traced.autocast is not None:
            m["precision"] = precision
            m["conservation_error"] = explained - input_sum - absorbed
        results.append(Relevance(
            relevance=rel.detach().to(x.dtype), output=logits.to(x.dtype), target=t, method="lrp", preset=chosen.name,
            params={k: v for k, v in values.items()}, explained=explained, input_sum=input_sum,
            absorbed=absorbed, meta=m,
        ))
        progress.step(2 + 2 * (i + 1) / len(targets), 4)
    return results if isinstance(target, list) else results[0]


def _absorbed_per_sample(rows: list[float] | None, seed: torch.Tensor, rel: torch.Tensor) -> list[float] | None:
    """The ledger's per-row figures, kept only if each row balances like the whole does.

    A row's explained value must equal its input relevance plus its absorbed part up to
    the same relative rounding as the total; a layout the ledger misread fails this.
    """
    if rows is None or len(rows) != seed.shape[0]:
        return None
    explained = seed.reshape(seed.shape[0], -1).sum(1, dtype=torch.float64)
    inputs = rel.reshape(rel.shape[0], -1).sum(1, dtype=torch.float64)
    error = (explained - inputs - torch.tensor(rows, dtype=torch.float64)).abs()
    scale = explained.abs().clamp_min(1e-12) + inputs.abs() + torch.tensor(rows, dtype=torch.float64).abs()
    tolerance = 1e-3 if rel.dtype in (torch.float16, torch.bfloat16) else 1e-4
    return rows if bool((error <= tolerance * scale).all()) else None
