"""KernelSHAP and LIME: fit a linear model of the network over regions switched on/off.

Both sample binary coalitions z over K regions (``viewer.explain.regions``), evaluate
the network on the input with the "off" regions replaced by a reference, and fit
weighted linear coefficients, one per region:

* KernelSHAP (Lundberg & Lee 2017): coalitions drawn with the Shapley kernel's size
  distribution (and their complements, which halves the variance), then least squares
  under the exact constraints φ0 = f(nothing), Σφ = f(everything) - f(nothing). With
  few regions (2^K - 2 ≤ samples) all coalitions are enumerated and the values are the
  exact Shapley values of the region game.
* LIME (Ribeiro et al. 2016): uniform random coalitions weighted by
  exp(-d²/width²), d the cosine distance to the full input, ridge regression.

The map spreads each region's coefficient evenly over its voxels, so the map sums to
Σφ (for KernelSHAP: f(x) - f(reference)); ``meta["region_scores"]`` keeps φ.
"""

from __future__ import annotations

import itertools
from math import comb
from typing import Any

import numpy as np
import torch
from torch import nn

from viewer.explain.passes import (
    check_input,
    frozen_parameters,
    make_relevance,
    per_sample,
    resolve_target,
    target_values,
)
from viewer.explain.progress import Progress
from viewer.explain.reference import reference
from viewer.explain.regions import make_regions
from viewer.explain.result import Relevance
from viewer.explain.target import Target


def shapley_coalitions(k: int, samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Coalitions (n, k) without the empty and full ones, and their regression weights."""
    if 2 ** k - 2 <= samples:
        z = np.array([c for c in itertools.product((0, 1), repeat=k) if 0 < sum(c) < k], dtype=np.float64)
        sizes = z.sum(1).astype(int)
        w = np.array([(k - 1) / (comb(k, s) * s * (k - s)) for s in sizes])
        return z.reshape(-1, k), w
    sizes = np.arange(1, k)
    p = (k - 1) / (sizes * (k - sizes))
    p = p / p.sum()
    half = max(1, samples // 2)
    z = np.zeros((2 * half, k))
    drawn = rng.choice(sizes, size=half, p=p)
    for i, s in enumerate(drawn):
        z[2 * i, rng.permutation(k)[:s]] = 1
        z[2 * i + 1] = 1 - z[2 * i]
    return z, np.ones(len(z))


def fit_shapley(z: np.ndarray, w: np.ndarray, f: np.ndarray, f_empty: float, f_full: float) -> np.ndarray:
    """Weighted least squares with φ0 = f_empty and Σφ = f_full - f_empty (last φ eliminated)."""
    k = z.shape[1]
    total = f_full - f_empty
    if k == 1:
        return np.array([total])
    y = f - f_empty - z[:, -1] * total
    a = z[:, :-1] - z[:, -1:]
    sw = np.sqrt(w)[:, None]
    head, *_ = np.linalg.lstsq(a * sw, y * sw[:, 0], rcond=None)
    return np.append(head, total - head.sum())


def fit_lime(z: np.ndarray, w: np.ndarray, f: np.ndarray, ridge: float) -> np.ndarray:
    """Weighted ridge regression with an unpenalised intercept; returns the coefficients."""
    zc = z - np.average(z, axis=0, weights=w)
    fc = f - np.average(f, weights=w)
    gram = (zc * w[:, None]).T @ zc + ridge * np.eye(z.shape[1])
    return np.linalg.solve(gram, (zc * w[:, None]).T @ fc)


def lime_coalitions(k: int, samples: int, width: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random coalitions and their exponential-kernel weights (cosine distance to all-on)."""
    z = (rng.random((samples, k)) < 0.5).astype(np.float64)
    on = z.sum(1)
    cos = np.where(on > 0, np.sqrt(on / k), 0.0)
    d = 1.0 - cos
    return z, np.exp(-(d ** 2) / width ** 2)


def _evaluate(model: nn.Module, x: torch.Tensor, base: torch.Tensor, labels: torch.Tensor, z: np.ndarray,
              target: Target, batch_size: int, progress: Progress | None) -> np.ndarray:
    z_t = torch.as_tensor(z, dtype=x.dtype, device=x.device)

    def make_batch(lo: int, hi: int) -> torch.Tensor:
        keep = z_t[lo:hi][:, labels].unsqueeze(1)  # (b, 1, *spatial)
        return base + keep * (x - base)

    return target_values(model, make_batch, len(z), target, batch_size, progress).double().cpu().numpy()


def _explain(model: nn.Module, x: torch.Tensor, target: Any, method: str, samples: int, regions: str,
             region_size: int, n_regions: int, baseline: str | float, sigma: float, batch_size: int, seed: int,
             width: float, ridge: float, progress: Progress | None) -> Relevance:
    check_input(x)
    if samples < 2:
        raise ValueError("samples must be at least 2.")
    x = x.detach()
    labels_np = make_regions(x[0].cpu().numpy(), regions, size=region_size, n_regions=n_regions)
    k = int(labels_np.max()) + 1
    labels = torch.as_tensor(labels_np, device=x.device)
    base = reference(x, baseline, sigma)
    rng = np.random.default_rng(int(seed))
    with frozen_parameters(model):
        out, resolved = resolve_target(model, x, target)
        if method == "kernel_shap":
            z, w = shapley_coalitions(k, samples, rng)
            ends = np.stack([np.zeros(k), np.ones(k)])
            f = _evaluate(model, x, base, labels, np.concatenate([ends, z]), resolved, batch_size, progress)
            phi = fit_shapley(z, w, f[2:], f[0], f[1])
        else:
            z, w = lime_coalitions(k, samples, width, rng)
            f = _evaluate(model, x, base, labels, z, resolved, batch_size, progress)
            phi = fit_lime(z, w, f, ridge)
    sizes = np.bincount(labels_np.ravel(), minlength=k)
    density = torch.as_tensor(phi / sizes, dtype=x.dtype, device=x.device)
    rel = (density[labels] / x.shape[1]).expand(x.shape).contiguous()
    params: dict[str, Any] = {"samples": samples, "regions": regions, "region_size": region_size,
                              "n_regions": n_regions, "baseline": baseline, "sigma": sigma,
                              "batch_size": batch_size, "seed": seed}
    if method == "lime":
        params.update(kernel_width=width, ridge=ridge)
    return make_relevance(rel, out, resolved, method, params,
                          meta={"region_scores": phi, "labels": labels_np, "evaluations": len(f)})


@per_sample
def kernel_shap(model: nn.Module, x: torch.Tensor, target: Any = None, *, samples: int = 256,
                regions: str = "grid", region_size: int = 8, n_regions: int = 64, baseline: str | float = "zeros",
                sigma: float = 5.0, batch_size: int = 16, seed: int = 0,
                progress: Progress | None = None) -> Relevance:
    """KernelSHAP over regions ("grid" of ``region_size`` voxels, or ~``n_regions`` "supervoxels")."""
    return _explain(model, x, target, "kernel_shap", samples, regions, region_size, n_regions, baseline, sigma,
                    batch_size, seed, 1.0, 0.0, progress)


@per_sample
def lime(model: nn.Module, x: torch.Tensor, target: Any = None, *, samples: int = 256, regions: str = "grid",
         region_size: int = 8, n_regions: int = 64, baseline: str | float = "zeros", sigma: float = 5.0,
         batch_size: int = 16, seed: int = 0, kernel_width: float = 1.0, ridge: float = 0.01,
         progress: Progress | None = None) -> Relevance:
    """LIME over regions, exponential kernel of cosine distance (``kernel_width``), ridge fit."""
    return _explain(model, x, target, "lime", samples, regions, region_size, n_regions, baseline, sigma,
                    batch_size, seed, kernel_width, ridge, progress)
