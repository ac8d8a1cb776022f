"""Reference inputs: what "this part of the image carries no information" looks like.

Path methods (Integrated Gradients) start from a baseline, perturbation methods
(occlusion, KernelSHAP/LIME, region perturbation curves) replace parts of the input by
it. Which reference is right depends on the modality (0 is air in CT after windowing
but mid-grey elsewhere), so the user chooses; a blurred copy removes fine structure
while keeping the intensity distribution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KINDS = ("zeros", "min", "mean", "blurred")


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur over the spatial dims of ``(B, C, *spatial)``.

    Borders are replicated so the image edge does not darken. Runs on ``x.device``.
    """
    if sigma <= 0:
        return x.clone()
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    n_spatial = x.ndim - 2
    channels = x.shape[1]
    conv = (F.conv1d, F.conv2d, F.conv3d)[n_spatial - 1]
    out = x
    for axis in range(n_spatial):
        shape = [1] * n_spatial
        shape[axis] = kernel.numel()
        weight = kernel.reshape(1, 1, *shape).repeat(channels, 1, *([1] * n_spatial))
        pad = [0] * (2 * n_spatial)
        # F.pad lists the last dim first.
        pad[2 * (n_spatial - 1 - axis)] = radius
        pad[2 * (n_spatial - 1 - axis) + 1] = radius
        size = out.shape[2 + axis]
        mode = "replicate" if size > 1 else "constant"
        out = conv(F.pad(out, pad, mode=mode), weight, groups=channels)
    return out


def reference(x: torch.Tensor, kind: str | float = "zeros", sigma: float = 5.0) -> torch.Tensor:
    """A reference input shaped like ``x``.

    ``kind``: "zeros"; "min" (the input's minimum, e.g. air/background); "mean" (the
    mean per channel); "blurred" (Gaussian blur of x with ``sigma`` voxels); or a number.
    """
    if isinstance(kind, bool):
        raise ValueError(f"Reference must be one of {KINDS} or a number, got {kind!r}.")
    if isinstance(kind, (int, float)):
        return torch.full_like(x, float(kind))
    if kind in ("zeros", "zero"):
        return torch.zeros_like(x)
    if kind == "min":
        return torch.full_like(x, float(x.min()))
    if kind == "mean":
        dims = tuple(range(2, x.ndim))
        return x.mean(dim=dims, keepdim=True).expand_as(x).clone()
    if kind in ("blurred", "blur"):
        return gaussian_blur(x, float(sigma))
    raise ValueError(f"Unknown reference {kind!r}: choose one of {KINDS} or give a number.")
