"""Gradient-based attributions: saliency, input×gradient, SmoothGrad, Integrated Gradients.

All of them differentiate the target with respect to the input only (parameters are
frozen for the call), and multi-sample methods push their samples through the model
``batch_size`` at a time, reporting progress and honouring cancellation in between.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from viewer.explain.passes import (
    check_input,
    forward,
    frozen_parameters,
    gradient_at,
    input_gradients,
    make_relevance,
    per_sample,
    resolve_target,
)
from viewer.explain.progress import Progress
from viewer.explain.reference import reference
from viewer.explain.result import Relevance

IG_RULES = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")
IG_BASELINES = ("zeros", "min", "blurred")


def saliency(model: nn.Module, x: torch.Tensor, target: Any = None, *, abs: bool = False,
             progress: Progress | None = None) -> Relevance:
    """The gradient of the target: how the output would change per unit of each voxel.

    Signed by default (``abs=True`` gives the classic magnitude map).
    """
    check_input(x)
    with frozen_parameters(model):
        grad, out, resolved = gradient_at(model, x, target)
    rel = grad.abs() if abs else grad
    return make_relevance(rel, out, resolved, "saliency", {"abs": abs})


def input_x_gradient(model: nn.Module, x: torch.Tensor, target: Any = None, *,
                     progress: Progress | None = None) -> Relevance:
    """Input times gradient: a first-order Taylor term per voxel (equals LRP-0 on ReLU nets without biases)."""
    check_input(x)
    with frozen_parameters(model):
        grad, out, resolved = gradient_at(model, x, target)
    return make_relevance(x.detach() * grad, out, resolved, "input_x_gradient", {})


@per_sample
def smoothgrad(model: nn.Module, x: torch.Tensor, target: Any = None, *, samples: int = 16,
               noise: float = 0.1, batch_size: int = 8, seed: int = 0, multiply_input: bool = False,
               progress: Progress | None = None) -> Relevance:
    """SmoothGrad: the gradient averaged over noisy copies of the input.

    ``noise`` is the Gaussian standard deviation as a fraction of the input's value
    range, so the setting means the same for CT in HU and for images in [0, 1]. The
    noise comes from a generator seeded with ``seed`` (on the CPU, then moved), so the
    map is reproducible on any device.
    """
    check_input(x)
    if samples < 1 or batch_size < 1:
        raise ValueError("samples and batch_size must be at least 1.")
    sigma = float(noise) * float(x.max() - x.min())
    generator = torch.Generator().manual_seed(int(seed))
    total = torch.zeros_like(x)
    with frozen_parameters(model):
        out, resolved = resolve_target(model, x, target)
        for start in range(0, samples, batch_size):
            if progress is not None:
                progress.step(start, samples)
            n = min(batch_size, samples - start)
            eps = torch.randn((n, *x.shape[1:]), generator=generator, dtype=x.dtype).to(x.device)
            grad, _ = input_gradients(model, x + sigma * eps, resolved)
            total += grad.sum(0, keepdim=True)
    if progress is not None:
        progress.step(samples, samples)
    rel = total / samples
    if multiply_input:
        rel = rel * x.detach()
    params = {"samples": samples, "noise": noise, "batch_size": batch_size, "seed": seed,
              "multiply_input": multiply_input}
    return make_relevance(rel, out, resolved, "smoothgrad", params, meta={"sigma": sigma})


def path_points(steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions alpha in [0, 1] along the path and their quadrature weights.

    The same rules as captum, so results can be compared: Gauss-Legendre (default,
    exact for polynomials of degree 2·steps-1 along the path) and Riemann sums. One
    deliberate difference: captum's trapezoid gives every step the width 1/steps (its
    weights sum to (steps-1)/steps); ours uses 1/(steps-1) so that completeness holds.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1.0), 0.5 * weights
    if rule == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("The trapezoid rule needs at least 2 steps.")
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[0] = weights[-1] = 0.5 / (steps - 1)
        return alphas, weights
    if rule == "riemann_left":
        return np.linspace(0.0, 1.0 - 1.0 / steps, steps), np.full(steps, 1.0 / steps)
    if rule == "riemann_right":
        return np.linspace(1.0 / steps, 1.0, steps), np.full(steps, 1.0 / steps)
    if rule == "riemann_middle":
        return np.linspace(0.5 / steps, 1.0 - 0.5 / steps, steps), np.full(steps, 1.0 / steps)
    raise ValueError(f"Unknown integration rule {rule!r}: choose one of {IG_RULES}.")


@per_sample
def integrated_gradients(model: nn.Module, x: torch.Tensor, target: Any = None, *, steps: int = 32,
                         batch_size: int = 8, rule: str = "gausslegendre", baseline: str | float = "zeros",
                         sigma: float = 5.0, progress: Progress | None = None) -> Relevance:
    """Integrated Gradients (Sundararajan et al. 2017) from a baseline to the input.

    Completeness: the map sums to f(x) - f(baseline) up to the quadrature error, which
    ``meta["completeness_error"]`` reports (relative to that difference) so the user
    can see whether ``steps`` is enough. ``baseline``: "zeros", "min" (the input's
    minimum) or "blurred" (Gaussian blur with ``sigma`` voxels), or a number.
    """
    check_input(x)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    alphas, weights = path_points(int(steps), rule)
    x = x.detach()
    base = reference(x, baseline, sigma)
    delta = x - base
    total = torch.zeros_like(x)
    a_t = torch.as_tensor(alphas, dtype=x.dtype, device=x.device)
    w_t = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
    shape = (-1,) + (1,) * (x.ndim - 1)
    with frozen_parameters(model):
        out, resolved = resolve_target(model, x, target)
        for start in range(0, len(alphas), batch_size):
            if progress is not None:
                progress.step(start, len(alphas))
            a = a_t[start:start + batch_size].reshape(shape)
            grad, _ = input_gradients(model, base + a * delta, resolved)
            total += (grad * w_t[start:start + batch_size].reshape(shape)).sum(0, keepdim=True)
        with torch.no_grad():
            f_base = float(resolved.value(forward(model, base))[0])
    if progress is not None:
        progress.step(len(alphas), len(alphas))
    rel = delta * total
    f_x = float(resolved.value(out)[0])
    diff = f_x - f_base
    err = (float(rel.sum()) - diff) / diff if diff != 0 else float("nan")
    params = {"steps": int(steps), "batch_size": batch_size, "rule": rule, "baseline": baseline, "sigma": sigma}
    return make_relevance(rel, out, resolved, "integrated_gradients", params,
                          meta={"baseline_value": f_base, "completeness_error": err})
