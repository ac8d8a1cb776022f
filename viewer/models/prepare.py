"""Scan → model input tensor, and model-grid maps → scan grid.

The demo models are trained on tensors produced by this very function, so the
preprocessing at inference cannot drift from the one used in training.

Resampling uses linear interpolation (``trilinear``/``bilinear``, ``align_corners=False``)
in both directions. The way back interpolates too: a relevance map on a coarser model
grid becomes a smooth map on the scan grid, its sum is not preserved exactly, and a
map that is constant on the model grid stays exactly that constant on the scan grid.
When the model grid equals the scan grid nothing is interpolated and both ways are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from viewer.io.scan import Scan
from viewer.models.card import InputSpec, Normalization
from viewer.models.errors import ModelLoadError
from viewer.models.input_fit import InputFit, check_input, count_nonfinite, nonfinite_note, out_of_range

SLICE_AXIS = 2  # axial slices in RAS order


def normalize(data: np.ndarray, norm: Normalization) -> np.ndarray:
    """Apply the card's intensity normalisation to the whole scan (statistics over all voxels)."""
    out = _normalize_unclipped(data, norm)
    if norm.clip and norm.method in ("window", "minmax"):
        np.clip(out, 0.0, 1.0, out=out)
    return out


def _normalize_unclipped(data: np.ndarray, norm: Normalization) -> np.ndarray:
    """:func:`normalize` before its final clip (float32, NaN/Inf replaced by 0), so the share
    of clipped voxels can be measured without normalising twice."""
    data = np.asarray(data, dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.all():
        data = np.where(finite, data, 0.0).astype(np.float32)
    if norm.method == "none":
        return data
    if norm.method == "window":
        low = norm.center - norm.width / 2.0
        out = (data - low) / norm.width
    elif norm.method == "minmax":
        low, high = np.percentile(data, norm.percentiles)
        width = float(high - low)
        out = (data - low) / width if width > 0 else np.zeros_like(data)
    else:  # zscore
        mean = norm.mean if norm.mean is not None else float(data.mean())
        std = norm.std if norm.std is not None else float(data.std())
        out = (data - mean) / std if std > 0 else data - mean
    return np.asarray(out, dtype=np.float32)


@dataclass
class ToScan:
    """Maps a map shaped like the model input back onto the scan's voxel grid.

    Channels are summed first (relevance of a multi-channel input is reported per
    voxel), then the model grid is interpolated back to the scan grid; for a 2D model
    run on a 3D scan the per-slice maps are stacked along ``slice_axis``.
    """

    scan_shape: tuple[int, int, int]
    model_shape: tuple[int, ...]
    spatial_dims: int
    slice_axis: int | None = None
    notes: list[str] = field(default_factory=list)
    warnings: tuple[str, ...] = ()
    fit: InputFit | None = None

    def __call__(self, values: torch.Tensor | np.ndarray) -> np.ndarray:
        values = getattr(values, "relevance", values)  # accept a Relevance result as well
        t = torch.as_tensor(np.asarray(values) if not torch.is_tensor(values) else values.detach())
        t = t.to(dtype=torch.float32, device="cpu")
        expected_batch = self.scan_shape[2] if self.spatial_dims == 2 else 1
        if t.dim() == self.spatial_dims + 1:  # (C, *spatial) without batch
            t = t.unsqueeze(0)
        if t.dim() != self.spatial_dims + 2 or t.shape[0] != expected_batch:
            raise ValueError(
                f"to_scan expects a map shaped like the model input (B={expected_batch}, C, "
                f"{'×'.join(map(str, self.model_shape))}), got {tuple(t.shape)}"
            )
        t = t.sum(dim=1, keepdim=True)
        if self.spatial_dims == 3:
            t = _resize(t, self.scan_shape)
            return t[0, 0].numpy().astype(np.float32, copy=False)
        t = _resize(t, self.scan_shape[:2])  # (nz, 1, nx, ny)
        return np.ascontiguousarray(t[:, 0].permute(1, 2, 0).numpy(), dtype=np.float32)


def prepare_scan(scan: Scan, spec: InputSpec) -> tuple[torch.Tensor, ToScan]:
    """Turn ``scan`` into the model input ``(B, C, *spatial)`` described by ``spec``.

    Raises :class:`ModelLoadError` when the model cannot take this scan (a 3D model on
    a 2D image, more than one input channel). A 2D model on a 3D scan runs on every
    axial slice (B = nz); ``to_scan.notes`` says so.
    """
    if spec.channels != 1:
        raise ModelLoadError(
            f"The model expects {spec.channels} input channels, but a scan has one; "
            "choose a model made for single-channel images or a card with channels = 1."
        )
    if spec.spatial_dims == 3 and scan.is_2d:
        raise ModelLoadError(
            f"This is a 3D model but the image is 2D (shape {scan.shape[0]}×{scan.shape[1]}); "
            "open a volume, or use a 2D model for this image."
        )
    if spec.spatial_dims == 3 and min(scan.shape) < 2:
        raise ModelLoadError(f"This 3D model needs a volume, got shape {scan.shape}.")
    nonfinite = count_nonfinite(scan.data)
    values = _normalize_unclipped(scan.data, spec.normalize)
    above, below = out_of_range(values, spec)
    if spec.normalize.clip and spec.normalize.method in ("window", "minmax"):
        np.clip(values, 0.0, 1.0, out=values)  # a new array for these methods, never the scan's
    data = torch.from_numpy(values)
    spacing = scan.spacing
    notes: list[str] = []
    if spec.spatial_dims == 3:
        target = _target_shape(scan.shape, spacing, spec)
        x = _resize(data[None, None], target)
        to_scan = ToScan(scan.shape, target, 3, None, notes)
    else:
        in_plane = scan.shape[:2]
        target = _target_shape(in_plane, spacing[:2], spec)
        x = _resize(data.permute(2, 0, 1)[:, None], target)  # (nz, 1, nx, ny)
        to_scan = ToScan(scan.shape, target, 2, SLICE_AXIS if not scan.is_2d else None, notes)
        if not scan.is_2d:
            notes.append(
                f"2D model on a 3D scan: run on each of the {scan.shape[2]} axial slices "
                f"(axis {SLICE_AXIS}, inferior → superior)"
            )
    if tuple(target) != tuple(scan.shape[: len(target)]):
        notes.append(
            f"resampled {'×'.join(map(str, scan.shape[:len(target)]))} → {'×'.join(map(str, target))} "
            "(linear interpolation; maps are interpolated back onto the scan grid)"
        )
    geometric = not getattr(scan, "planar", False)
    fit = check_input(above, below, values.size, float(x.min()), float(x.max()), spec, nonfinite,
                      spacing if geometric else None, scan.affine if geometric else None)
    to_scan.fit, to_scan.warnings = fit, fit.warnings
    if nonfinite and not any("NaN" in w for w in fit.warnings):  # too few to warn about, never unsaid
        notes.append(nonfinite_note(nonfinite, values.size))
    return x.contiguous(), to_scan


def _target_shape(shape: tuple[int, ...], spacing: tuple[float, ...], spec: InputSpec) -> tuple[int, ...]:
    if spec.size is not None:
        return tuple(spec.size)
    if spec.spacing is not None:
        return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, spec.spacing))
    return tuple(shape)


def _resize(t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Linear resize of (B, C, *spatial); a no-op (exact) when the shape already fits."""
    if tuple(t.shape[2:]) == tuple(shape):
        return t
    mode = "trilinear" if len(shape) == 3 else "bilinear"
    return F.interpolate(t, size=tuple(shape), mode=mode, align_corners=False)
