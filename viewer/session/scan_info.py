"""What a reader should know about the open scan, in rows for the "Scan info" dialog.

Only facts about the image are listed: geometry, intensities, where it came from, and
the loader's notes (inferred geometry, one frame of many, resampling, NaNs kept,
spacing assumed). The rows are built from an allow-list of technical fields, so a
patient attribute can never appear here even if a reader stored one in ``meta``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# Technical meta fields worth showing, with their labels (anything else is left out).
META_ROWS: tuple[tuple[str, str], ...] = (
    ("format", "Format"),
    ("original_orientation", "Orientation on disk"),
    ("original_shape", "Shape on disk"),
    ("dtype", "Stored as"),
    ("SeriesNumber", "Series number"),
    ("SeriesDescription", "Series"),
    ("BodyPartExamined", "Body part"),
    ("Manufacturer", "Manufacturer"),
    ("ManufacturerModelName", "Scanner model"),
    ("SliceThickness", "Slice thickness (mm)"),
    ("files", "Files"),
    ("frames", "Frames in the file"),
    ("volumes", "Volumes in the file"),
    ("frame", "Frame shown"),
    ("nonfinite_voxels", "NaN/Inf voxels"),
)


def notes(scan: Any) -> list[str]:
    """The loader's notes about ``scan`` (``scan.meta["notes"]``), as plain strings."""
    raw = (getattr(scan, "meta", None) or {}).get("notes") or []
    if isinstance(raw, str):
        raw = [raw]
    return [str(n) for n in raw if str(n).strip()]


def orientation_codes(affine: np.ndarray) -> str:
    """The patient direction of each voxel axis (e.g. ``"RAS"``), from the affine."""
    m = np.asarray(affine, dtype=np.float64)[:3, :3]
    letters = (("L", "R"), ("P", "A"), ("I", "S"))
    out = []
    for col in m.T:
        k = int(np.argmax(np.abs(col)))
        out.append(letters[k][1] if col[k] > 0 else letters[k][0])
    return "".join(out)


def value_range(data: np.ndarray) -> tuple[float, float, int]:
    """(min, max) of the finite values and the number of NaN/Inf voxels."""
    finite = np.isfinite(data)
    bad = int(data.size - np.count_nonzero(finite))
    if bad == data.size:
        return float("nan"), float("nan"), bad
    values = data if not bad else data[finite]
    return float(values.min()), float(values.max()), bad


def scan_rows(scan: Any, path: str | None = None) -> list[tuple[str, str]]:
    """``(label, value)`` rows describing ``scan`` (no patient fields, see the module docstring)."""
    shape = tuple(int(n) for n in scan.shape)
    rows = [("Modality", str(scan.modality or "unknown"))]
    if path:
        rows.append(("File", Path(path).name))
    if getattr(scan, "source", ""):
        rows.append(("Source", str(scan.source)))
    rows.append(("Size (voxels)", " × ".join(map(str, shape)) + ("  (2D image)" if shape[2] == 1 else "")))
    if getattr(scan, "planar", False):
        rows.append(("Spacing", "unknown (a picture without patient geometry; 1 pixel = 1 unit)"))
        rows.append(("Orientation", "unknown (shown as in the file)"))
    else:
        rows.append(("Spacing (mm)", " × ".join(f"{s:.4g}" for s in scan.spacing)))
        extent = " × ".join(f"{n * s:.1f}" for n, s in zip(shape, scan.spacing))
        rows.append(("Field of view (mm)", extent))
        rows.append(("Orientation", f"voxel axes point {orientation_codes(scan.affine)} (shown in RAS order)"))
    lo, hi, bad = value_range(np.asarray(scan.data))
    rows.append(("Value range", "no finite values" if bad == scan.data.size else f"{lo:.6g} … {hi:.6g}"))
    if bad:
        rows.append(("NaN/Inf voxels", f"{bad} ({100.0 * bad / scan.data.size:.2g} %)"))
    if getattr(scan, "window", None) is not None:
        c, w = scan.window
        rows.append(("Window in the file", f"centre {c:.6g}, width {w:.6g}"))
    meta = getattr(scan, "meta", None) or {}
    shown = {label for label, _ in rows}
    for key, label in META_ROWS:
        value = meta.get(key)
        if value is None or value == "" or label in shown:
            continue
        if isinstance(value, (list, tuple)):
            value = " × ".join(map(str, value)) if key == "original_shape" else ", ".join(map(str, value))
        rows.append((label, str(value)))
    return rows
