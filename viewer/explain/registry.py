"""The method registry: every attribution method, its parameters, and one entry point.

The UI builds its method menu and parameter panels from ``METHODS``; the CLI and the
session call :func:`explain`, which validates parameters against the declared
``ParamSpec``s so a typo fails loudly with the valid choices instead of being ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from viewer.explain import gradcam as _gradcam
from viewer.explain import gradients as _gradients
from viewer.explain import occlusion as _occlusion
from viewer.explain import surrogate as _surrogate
from viewer.explain.params import ParamSpec
from viewer.explain.progress import Progress
from viewer.explain.reference import KINDS
from viewer.explain.result import Relevance


class MethodUnavailableError(ValueError):
    """The method cannot run on this model (e.g. it needs layers a TorchScript file hides)."""


@dataclass(frozen=True)
class MethodInfo:
    """One attribution method as the UI and CLI see it."""

    name: str
    label: str
    fn: Callable[..., Relevance]
    params: tuple[ParamSpec, ...]
    needs_structure: bool
    multi_pass: bool
    description: str

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)


def _lrp(module: nn.Module, x: torch.Tensor, target: Any = None, *, progress: Progress | None = None,
         **params: Any) -> Relevance:
    from viewer.explain.lrp import lrp  # imported late: the engine is the heaviest part

    return lrp(module, x, target=target, progress=progress, **params)


def _lrp_params() -> tuple[ParamSpec, ...]:
    """The preset choice plus every parameter any preset declares (first declaration wins)."""
    try:
        from viewer.explain.lrp import list_presets

        presets = list(list_presets())
    except (ImportError, NotImplementedError, AttributeError):
        return (ParamSpec("preset", str, "epsilon-plus", None, None, None, "Preset"),)
    names = tuple(p.name for p in presets)
    default = "epsilon-plus" if "epsilon-plus" in names else (names[0] if names else "epsilon-plus")
    specs: dict[str, ParamSpec] = {"preset": ParamSpec("preset", str, default, names or None, None, None, "Preset")}
    for preset in presets:
        for spec in getattr(preset, "params", ()):
            specs.setdefault(spec.name, spec)
    return tuple(specs.values())


_LAYER = ParamSpec("layer", str, None, None, None, None, "Layer (default: last spatial layer)")
_RELU = ParamSpec("relu", bool, False, None, None, None, "Positive part only")
_BATCH = ParamSpec("batch_size", int, 8, None, 1, 1024, "Batch size")
_SEED = ParamSpec("seed", int, 0, None, 0, 2**31 - 1, "Random seed")
_SIGMA = ParamSpec("sigma", float, 5.0, None, 0.0, 100.0, "Blur sigma (voxels)")
_REGION_PARAMS = (
    ParamSpec("samples", int, 256, None, 2, 100000, "Samples"),
    ParamSpec("regions", str, "grid", ("grid", "supervoxels"), None, None, "Regions"),
    ParamSpec("region_size", int, 8, None, 1, 512, "Grid region size (voxels)"),
    ParamSpec("n_regions", int, 64, None, 1, 10000, "Number of supervoxels"),
    ParamSpec("baseline", str, "zeros", KINDS, None, None, "Reference for switched-off regions"),
    _SIGMA,
    ParamSpec("batch_size", int, 16, None, 1, 1024, "Batch size"),
    _SEED,
)

_ALL = [
    MethodInfo("lrp", "LRP", _lrp, _lrp_params(), True, False,
               "Layer-wise Relevance Propagation: conserves the explained output, one backward pass."),
    MethodInfo("gradcam", "Grad-CAM", _gradcam.gradcam, (_LAYER, _RELU), True, False,
               "Gradient-weighted class activation map of one layer, upsampled: fast, coarse."),
    MethodInfo("gradcampp", "Grad-CAM++", _gradcam.gradcampp, (_LAYER, _RELU), True, False,
               "Grad-CAM with weights that favour positions of positive gradient (several objects)."),
    MethodInfo("saliency", "Saliency (gradient)", _gradients.saliency,
               (ParamSpec("abs", bool, False, None, None, None, "Magnitude"),), False, False,
               "Gradient of the target with respect to the input: local sensitivity, noisy."),
    MethodInfo("input_x_gradient", "Input × gradient", _gradients.input_x_gradient, (), False, False,
               "Input times gradient: first-order contribution of each voxel."),
    MethodInfo("smoothgrad", "SmoothGrad", _gradients.smoothgrad, (
        ParamSpec("samples", int, 16, None, 1, 10000, "Samples"),
        ParamSpec("noise", float, 0.1, None, 0.0, 1.0, "Noise (fraction of input range)"),
        _BATCH, _SEED,
        ParamSpec("multiply_input", bool, False, None, None, None, "Multiply by input"),
    ), False, True, "Gradient averaged over noisy copies of the input: smoother than saliency."),
    MethodInfo("integrated_gradients", "Integrated Gradients", _gradients.integrated_gradients, (
        ParamSpec("steps", int, 32, None, 1, 10000, "Steps"),
        _BATCH,
        ParamSpec("rule", str, "gausslegendre", _gradients.IG_RULES, None, None, "Integration rule"),
        ParamSpec("baseline", str, "zeros", _gradients.IG_BASELINES, None, None, "Baseline"),
        _SIGMA,
    ), False, True, "Gradients integrated from a baseline to the input; sums to f(x) - f(baseline)."),
    MethodInfo("occlusion", "Occlusion", _occlusion.occlusion, (
        ParamSpec("patch", int, 8, None, 1, 512, "Patch size (voxels)"),
        ParamSpec("stride", int, 4, None, 1, 512, "Stride (voxels)"),
        ParamSpec("baseline", float, 0.0, None, None, None, "Replacement value"),
        ParamSpec("batch_size", int, 16, None, 1, 1024, "Batch size"),
    ), False, True, "Output drop when a sliding patch is replaced: model-agnostic, many passes."),
    MethodInfo("kernel_shap", "KernelSHAP", _surrogate.kernel_shap, _REGION_PARAMS, False, True,
               "Shapley values of regions estimated by weighted regression over random coalitions."),
    MethodInfo("lime", "LIME", _surrogate.lime, _REGION_PARAMS + (
        ParamSpec("kernel_width", float, 1.0, None, 1e-6, 100.0, "Kernel width"),
        ParamSpec("ridge", float, 0.01, None, 0.0, 1e6, "Ridge penalty"),
    ), False, True, "Local linear surrogate over regions, weighted by similarity to the input."),
]

METHODS: dict[str, MethodInfo] = {m.name: m for m in _ALL}


def _coerce(method: str, spec: ParamSpec, value: Any) -> Any:
    """Check one value against its spec; returns the value converted to the spec's type."""
    if value is None and spec.default is None:
        return None
    where = f"{method} parameter {spec.name!r}"
    if spec.type is bool:
        if not isinstance(value, (bool, int)) or value not in (0, 1):
            raise ValueError(f"{where} must be True or False, got {value!r}.")
        return bool(value)
    if spec.type in (int, float) and isinstance(value, (tuple, list)):
        items = [_coerce(method, spec, v) for v in value]  # per-dim sizes, e.g. patch=(8, 8, 4)
        return tuple(items)
    try:
        if spec.type is int and isinstance(value, float) and not value.is_integer():
            raise TypeError
        if isinstance(value, bool) and spec.type is not bool:
            raise TypeError
        converted = spec.type(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be of type {spec.type.__name__}, got {value!r}.") from None
    if spec.choices is not None and converted not in spec.choices:
        raise ValueError(f"{where} must be one of {', '.join(map(str, spec.choices))}; got {value!r}.")
    if spec.min is not None and converted < spec.min:
        raise ValueError(f"{where} must be at least {spec.min}, got {value!r}.")
    if spec.max is not None and converted > spec.max:
        raise ValueError(f"{where} must be at most {spec.max}, got {value!r}.")
    return converted


def validate(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validated keyword arguments for ``method`` (ValueError naming the valid choices)."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of: {', '.join(METHODS)}.")
    info = METHODS[method]
    out: dict[str, Any] = {}
    for name, value in params.items():
        spec = info.param(name)
        if spec is None:
            if method == "lrp" and name == "overrides":
                out[name] = value
                continue
            valid = ", ".join(p.name for p in info.params) or "none"
            raise ValueError(f"Unknown parameter {name!r} for method {method!r}; valid parameters: {valid}.")
        out[name] = _coerce(method, spec, value)
    return out


def explain(module: nn.Module, x: torch.Tensor, method: str = "gradcam", target: Any = None,
            progress: Progress | None = None, **params: Any) -> Relevance:
    """Explain ``module``'s output for ``x`` with ``method``; one Relevance shaped like x.

    Parameters are checked against ``METHODS[method].params``; methods that need the
    model's layers (LRP, Grad-CAM) refuse TorchScript modules with a message saying so.
    Everything runs on ``x.device`` in ``x.dtype``: the caller moves model and input.
    A batch (B > 1, e.g. the slices of a scan for a 2D model) is explained element by
    element for one target; ``explained`` and ``input_sum`` then sum over the batch.
    """
    kwargs = validate(method, params)
    info = METHODS[method]
    if info.needs_structure and isinstance(module, torch.jit.ScriptModule):
        raise MethodUnavailableError(
            f"{info.label} needs the model's layers; this TorchScript file hides them — use a model card "
            "with the architecture, or choose a gradient or perturbation method."
        )
    return info.fn(module, x, target, progress=progress, **kwargs)
