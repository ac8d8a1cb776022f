"""Work that runs on the worker thread: preparing inputs, predicting, explaining.

A :class:`ModelContext` pairs one scan with one model. It prepares the model input
lazily (resampling a volume is too slow for the GUI thread) and keeps one copy of the
model per device/precision, so switching precision does not convert the user's model
in place and switching back costs nothing. Only the worker thread touches a context
after it is created.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from typing import Any, Callable

import numpy as np
import torch

from viewer.io import colormaps
from viewer.session.requests import ExplainRequest, PredictRequest
from viewer.session.results import PanelResult, Prediction

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_PERCENTILE = 99.5


class ModelContext:
    """One scan + one model, with the prepared input and per-device model copies."""

    def __init__(self, scan: Any, model: Any, scan_token: str, model_token: str) -> None:
        self.scan, self.model = scan, model
        self.scan_token, self.model_token = scan_token, model_token
        self._lock = threading.Lock()
        self._prepared: tuple[torch.Tensor, Callable[[Any], np.ndarray]] | None = None
        self._prepare_error: Exception | None = None
        self._modules: dict[tuple[str, str], torch.nn.Module] = {}
        self._inputs: dict[tuple[str, str], torch.Tensor] = {}

    def prepared(self) -> tuple[torch.Tensor, Callable[[Any], np.ndarray]]:
        """``(x, to_scan)`` from ``LoadedModel.prepare`` (computed once; a failure too, so
        the prediction and every panel fail with the same error without preparing again)."""
        with self._lock:
            if self._prepare_error is not None:
                raise self._prepare_error
            if self._prepared is None:
                try:
                    self._prepared = self.model.prepare(self.scan)
                except Exception as exc:
                    self._prepare_error = exc
                    raise
            return self._prepared

    def module_and_input(self, device: str, precision: str) -> tuple[torch.nn.Module, torch.Tensor]:
        """The model and input on ``device`` in ``precision``; CPU float32 is the original model."""
        x, _ = self.prepared()
        key = (device, precision)
        with self._lock:
            if key not in self._modules:
                if device == "cuda" and not torch.cuda.is_available():
                    raise RuntimeError("CUDA was chosen but no GPU is available; switch the device to CPU.")
                dtype = DTYPES[precision]
                module = self.model.module
                if key != ("cpu", "float32"):
                    module = copy.deepcopy(module).to(device=device, dtype=dtype).eval()
                    for p in module.parameters():
                        p.requires_grad_(False)
                self._modules[key] = module
                self._inputs[key] = x.to(device=device, dtype=dtype)
            return self._modules[key], self._inputs[key]

    def release(self) -> None:
        """Drop prepared tensors and model copies (the context is no longer current)."""
        with self._lock:
            self._prepared = None
            self._modules.clear()
            self._inputs.clear()


def predict(ctx: ModelContext, request: PredictRequest) -> Prediction:
    """Class probabilities for the prediction readout (one forward pass, no gradients)."""
    module, x = ctx.module_and_input(request.device, request.precision)
    with torch.no_grad():
        if hasattr(ctx.model, "predict") and (request.device, request.precision) == ("cpu", "float32"):
            probs = ctx.model.predict(x)
        else:
            out = module(x)
            probs = torch.softmax(out.float(), dim=1) if out.shape[1] > 1 else torch.sigmoid(out.float())
    labels = list(getattr(ctx.model, "labels", []) or [])
    _, to_scan = ctx.prepared()
    fit = getattr(to_scan, "fit", None)
    return dataclasses.replace(
        Prediction.from_probabilities(probs, labels, getattr(ctx.model, "task", "classification")),
        warnings=tuple(getattr(to_scan, "warnings", ()) or ()), notes=tuple(getattr(to_scan, "notes", ()) or ()),
        input_values=None if fit is None else tuple(fit.value_range))


def resolve_target(ctx: ModelContext, target: Any, mask: np.ndarray | None, module: Any, x: torch.Tensor) -> Any:
    """Turn the session's target key into what ``explain`` accepts.

    A region target ``("region", channel)`` becomes a :class:`Target` whose mask is the
    loaded mask resampled (nearest) to the model's output grid; without a mask it is
    the channel's own predicted region.
    """
    if not (isinstance(target, tuple) and target[:1] == ("region",)):
        return target
    from viewer.explain.target import Target

    channel = int(target[1])
    with torch.no_grad():
        out = module(x)
    if out.ndim < 3:
        raise ValueError("A region target needs a segmentation model; this model outputs one value per class.")
    if out.shape[0] != 1:
        raise ValueError("Region targets need a model that sees the whole scan at once (not slice by slice).")
    spatial = tuple(out.shape[2:])
    if mask is None:
        region = (out[0].argmax(0) == channel).cpu().numpy()
    else:
        m = torch.as_tensor(np.asarray(mask, dtype=np.float32))
        m = m.reshape(m.shape[: len(spatial)]) if m.ndim > len(spatial) else m
        if tuple(m.shape) != spatial:
            m = torch.nn.functional.interpolate(m[None, None], size=spatial, mode="nearest")[0, 0]
        region = m.numpy() > 0.5
    return Target.region(channel, region)


def explain(
    ctx: ModelContext,
    request: ExplainRequest,
    explain_fn: Callable[..., Any],
    progress: Any,
    mask: np.ndarray | None = None,
    preview: bool = False,
) -> PanelResult:
    """Run one explanation and map it onto the scan grid (float32, the scan's shape)."""
    module, x = ctx.module_and_input(request.device, request.precision)
    _, to_scan = ctx.prepared()
    progress.check()
    target = resolve_target(ctx, request.target, mask, module, x)
    relevance = explain_fn(module, x, method=request.method, target=target, progress=progress, **request.params_dict)
    progress.check()
    if relevance.relevance.device.type != "cpu":  # cached results must not pin GPU memory
        relevance = dataclasses.replace(relevance, relevance=relevance.relevance.detach().cpu(),
                                        output=relevance.output.detach().cpu())
    rel = relevance.relevance.detach().to(device="cpu", dtype=torch.float32)
    on_scan = np.ascontiguousarray(to_scan(rel), dtype=np.float32)
    limit = colormaps.symmetric_limit(on_scan, DEFAULT_PERCENTILE)
    result = PanelResult(request, relevance, on_scan, preview=preview, default_limit=limit)
    result._limits[DEFAULT_PERCENTILE] = limit
    return result
