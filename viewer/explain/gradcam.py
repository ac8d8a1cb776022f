"""Grad-CAM and Grad-CAM++: class activation maps from one layer's activations.

The map is a weighted sum of one layer's feature maps, the weights coming from the
target's gradient. It is cheap (the backward stops at the layer: parameters are frozen
and the activation is the only leaf that requires a gradient) and coarse (the layer's
resolution), which is why the viewer shows it first and refines with LRP. The signed
map is kept; clipping to positive values (``relu=True``) is a display choice.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from viewer.explain.passes import check_input, forward, frozen_parameters, make_relevance
from viewer.explain.progress import Progress
from viewer.explain.result import Relevance
from viewer.explain.target import Target


def spatial_layers(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """Modules whose output has at least two spatial dims, in the order they finish.

    One forward pass with temporary hooks (removed before returning). The model itself
    (name "") is left out: a segmentation output is not a feature map.
    """
    found: list[tuple[str, tuple[int, ...]]] = []
    handles = []

    def hook_for(name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.ndim >= 4:
                found.append((name, tuple(output.shape)))

        return hook

    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(hook_for(name)))
        with torch.no_grad(), frozen_parameters(model):
            forward(model, x)
    finally:
        for h in handles:
            h.remove()
    return found


_DEFAULT_LAYERS: "weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], str]]" = weakref.WeakKeyDictionary()


def default_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The last module (in execution order) with a spatial output larger than one voxel.

    Finding it costs a forward pass, so the answer is remembered per model and input
    shape (weakly: the cache never keeps a model alive).
    """
    known = _DEFAULT_LAYERS.setdefault(model, {})
    shape = tuple(x.shape)
    if shape not in known:
        candidates = [(n, s) for n, s in spatial_layers(model, x) if _numel(s[2:]) > 1]
        if not candidates:
            raise ValueError("Grad-CAM needs a layer with a spatial output; this model has none.")
        known[shape] = candidates[-1][0]
    return known[shape]


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


@contextlib.contextmanager
def _capture(model: nn.Module, layer: str) -> Iterator[dict[str, torch.Tensor]]:
    """Replace the layer's output by a fresh leaf that requires grad, for one call.

    The backward then stops at the layer. The module receives a clone of the leaf so
    that in-place operations downstream (ReLU(inplace=True)) leave the captured
    activation intact.
    """
    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        names = [n for n in modules if n]
        raise ValueError(f"Unknown layer {layer!r}; the model's layers are: {', '.join(names[:50])}"
                         + (" ..." if len(names) > 50 else ""))
    store: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            raise ValueError(f"Layer {layer!r} does not return a single tensor; choose another layer.")
        # A module used several times (a shared ReLU) is explained at its last call.
        leaf = output.detach().requires_grad_(True)
        store["activation"] = leaf
        return leaf.clone()

    handle = modules[layer].register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def layer_activation_gradient(
    model: nn.Module, x: torch.Tensor, layer: str, target: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Target]:
    """Activation A of ``layer``, d target / dA, the model output and the resolved target."""
    with frozen_parameters(model), _capture(model, layer) as store, torch.enable_grad():
        out = forward(model, x.detach())
        if "activation" not in store:
            raise ValueError(f"Layer {layer!r} was not used in the forward pass.")
        resolved = Target.resolve(target, out)
        act = store["activation"]
        if act.ndim < 4:
            raise ValueError(f"Layer {layer!r} has output shape {tuple(act.shape)}: Grad-CAM needs spatial dims.")
        value = resolved.value(out).sum()
        if not value.requires_grad:
            raise ValueError(f"The target does not depend on layer {layer!r}.")
        (grad,) = torch.autograd.grad(value, act, allow_unused=True)
        if grad is None:
            grad = torch.zeros_like(act)
    return act.detach(), grad.detach(), out.detach(), resolved


def cam_weights(act: torch.Tensor, grad: torch.Tensor, plus: bool) -> torch.Tensor:
    """Per-channel weights, shape (B, K, 1, ...).

    Grad-CAM: the spatial mean of the gradient. Grad-CAM++ (Chattopadhyay et al. 2018,
    with exponential of the score folded out, so weights differ from the paper's by the
    positive factor exp(score)): sum over positions of alpha * relu(grad) with
    alpha = g² / (2 g² + Σ A · g³).
    """
    dims = tuple(range(2, act.ndim))
    if not plus:
        return grad.mean(dim=dims, keepdim=True)
    g2 = grad * grad
    g3 = g2 * grad
    denom = 2 * g2 + act.sum(dim=dims, keepdim=True) * g3
    denom = torch.where(denom != 0, denom, torch.ones_like(denom))
    alpha = g2 / denom
    return (alpha * F.relu(grad)).sum(dim=dims, keepdim=True)


def upsample(cam: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Bi/trilinear upsampling (align_corners=False) of a (B, 1, *spatial) map."""
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
    if tuple(cam.shape[2:]) == tuple(size):
        return cam
    return F.interpolate(cam, size=size, mode=mode, align_corners=False)


def _run(model: nn.Module, x: torch.Tensor, target: Any, layer: str | None, relu: bool,
         plus: bool, progress: Progress | None) -> Relevance:
    check_input(x)
    if progress is not None:
        progress.step(0, 2)
    name = layer if layer else default_layer(model, x)
    act, grad, out, resolved = layer_activation_gradient(model, x, name, target)
    cam = (cam_weights(act, grad, plus) * act).sum(dim=1, keepdim=True)
    if relu:
        cam = F.relu(cam)
    spatial = tuple(x.shape[2:])
    if cam.ndim - 2 != len(spatial):
        raise ValueError(
            f"Layer {name!r} has {cam.ndim - 2} spatial dims but the input has {len(spatial)}; choose another layer."
        )
    up = upsample(cam, spatial)
    # The UI sums channels: split the map evenly so the channel sum is the CAM itself.
    relevance = (up / x.shape[1]).expand(x.shape).to(x.dtype).contiguous()
    if progress is not None:
        progress.step(2, 2)
    method = "gradcampp" if plus else "gradcam"
    params = {"layer": name, "relu": relu}
    return make_relevance(relevance, out, resolved, method, params,
                          meta={"layer": name, "cam": cam.detach(), "layer_shape": tuple(act.shape)})


def gradcam(model: nn.Module, x: torch.Tensor, target: Any = None, *, layer: str | None = None,
            relu: bool = False, progress: Progress | None = None) -> Relevance:
    """Grad-CAM of ``layer`` (default: the last layer with a spatial output).

    ``meta["cam"]`` holds the map at the layer's resolution (before upsampling).
    """
    return _run(model, x, target, layer, relu, False, progress)


def gradcampp(model: nn.Module, x: torch.Tensor, target: Any = None, *, layer: str | None = None,
              relu: bool = False, progress: Progress | None = None) -> Relevance:
    """Grad-CAM++ of ``layer``: weights emphasise positions with positive gradient."""
    return _run(model, x, target, layer, relu, True, progress)
