"""Assembling decoded DICOM frames into a :class:`Scan`: geometric stacks and planar images.

Shared by single files, multi-frame files and folders, so every path applies the same
pixel pipeline (decode → grey → modality LUT → MONOCHROME1 inversion) and the same
geometry rules (:mod:`viewer.io.dicom_geometry`).

Speed: the final array is allocated once, in slice-major memory order, and each decoded
frame is written into it contiguously (flips applied while copying); rescaling and
inversion then run in place in float32. The canonical RAS view of that buffer has
positive strides but is usually not C-contiguous (like nibabel's Fortran-ordered arrays).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from pydicom.dataset import Dataset

from viewer.io.dicom_geometry import plan_stack, resample_slices
from viewer.io.dicom_meta import allowed_meta
from viewer.io.dicom_pixels import (
    COLOUR_NOTE,
    Rescale,
    colour_window,
    inversion_constant,
    is_colour,
    is_monochrome1,
    window_of,
)
from viewer.io.memory import ensure_fits
from viewer.io.orientation import canonical_plan, spacing_of
from viewer.io.scan import Scan


@dataclass
class FrameRef:
    """One 2D image of a stack: which dataset/frame it is and where it lies (LPS mm)."""

    ds: Dataset
    name: str
    frame: int | None
    position: np.ndarray
    iop: np.ndarray
    spacing_rc: tuple[float, float]
    rescale: Rescale
    frame_item: Dataset | None = None
    tiebreak: tuple = field(default_factory=tuple)


# reads one frame's decoded values: (rows, cols) stored integers, or float32 luma for colour
FrameReader = Callable[[FrameRef], np.ndarray]


def build_stack(
    refs: list[FrameRef],
    read: FrameReader,
    source: str,
    path: str,
    notes: list[str],
    extra_meta: dict[str, Any] | None = None,
) -> Scan:
    """A geometric scan from frames that share orientation, size and pixel spacing."""
    first = refs[0].ds
    thickness = _positive(first.get("SliceThickness")) or _positive(first.get("SpacingBetweenSlices")) or 1.0
    plan = plan_stack(
        np.array([r.position for r in refs]),
        refs[0].iop,
        refs[0].spacing_rc,
        tiebreak=[r.tiebreak for r in refs],
        single_thickness=thickness,
    )
    notes = notes + plan.notes
    rows, cols = int(first.Rows), int(first.Columns)
    grid = canonical_plan(plan.affine, (cols, rows, plan.n_out))
    ensure_fits(grid.shape, source, extra_bytes=rows * cols * 8)
    buffer = grid.slice_buffer()
    colour = is_colour(first)
    ordered = [refs[i] for i in plan.order]
    uniform = len({r.rescale.key() for r in ordered}) == 1 and ordered[0].rescale.lut_source is None

    def value(ref: FrameRef) -> np.ndarray:
        raw = read(ref)
        if colour or uniform:
            return raw
        return ref.rescale.values(raw)

    if plan.targets is None:
        for k, ref in enumerate(ordered):
            grid.put_slice(buffer, k, value(ref))
    else:
        src = np.empty((len(ordered), rows, cols), dtype=np.float32)
        for k, ref in enumerate(ordered):
            src[k] = value(ref)
        if uniform and not colour:
            ordered[0].rescale.apply_inplace(src)
        out = np.empty((plan.n_out, rows, cols), dtype=np.float32)
        resample_slices(src, plan.positions, plan.targets, out)
        del src
        for k in range(plan.n_out):
            grid.put_slice(buffer, k, out[k])
        uniform = False  # already rescaled
    if uniform and not colour:
        ordered[0].rescale.apply_inplace(buffer)

    meta = allowed_meta(first)
    window = _finish_values(buffer, first, ordered[0], colour, notes, meta)
    meta.update(extra_meta or {})
    if grid.source_codes != "RAS":
        notes.append(f"Reoriented from {grid.source_codes} to RAS voxel order (affine updated, no resampling).")
    meta["notes"] = notes
    meta["slices"] = plan.n_out
    return Scan(
        data=grid.from_buffer(buffer),
        affine=grid.affine,
        spacing=spacing_of(grid.affine),
        modality=str(first.get("Modality") or "OT"),
        window=window,
        meta=meta,
        source=source,
        planar=False,
        path=path,
    )


def build_planar(
    ds: Dataset,
    frame: np.ndarray,
    rescale: Rescale,
    spacing_rc: tuple[float, float] | None,
    source: str,
    path: str,
    notes: list[str],
    extra_meta: dict[str, Any] | None = None,
) -> Scan:
    """A 2D image without patient geometry, laid out as the file shows it.

    ``data[i, j, 0]`` is the pixel at column ``i``, row ``H − 1 − j`` (see :class:`Scan`).
    """
    rows, cols = frame.shape[:2]
    ensure_fits((cols, rows, 1), source)
    colour = is_colour(ds)
    data = np.empty((1, rows, cols), dtype=np.float32)
    data[0] = frame if (colour or rescale.lut_source is None) else rescale.values(frame)
    if not colour and rescale.lut_source is None:
        rescale.apply_inplace(data)
    meta = allowed_meta(ds)
    window = _finish_values(data, ds, None, colour, notes, meta, rescale=rescale)
    if spacing_rc is None:
        notes.append("No pixel spacing in the file; pixels are taken as 1 × 1 mm.")
        spacing_rc = (1.0, 1.0)
    row_mm, col_mm = spacing_rc
    affine = np.diag([col_mm, row_mm, 1.0, 1.0])
    meta.update(extra_meta or {})
    meta["notes"] = notes
    # (1, rows, cols) → (cols, rows, 1) with rows reversed: data[i, j, 0] = file[H-1-j, i]
    planar = data[:, ::-1, :].transpose(2, 1, 0)
    return Scan(
        data=np.ascontiguousarray(planar),
        affine=affine,
        spacing=(col_mm, row_mm, 1.0),
        modality=str(ds.get("Modality") or "OT"),
        window=window,
        meta=meta,
        source=source,
        planar=True,
        path=path,
    )


def _finish_values(
    values: np.ndarray,
    ds: Dataset,
    ref: FrameRef | None,
    colour: bool,
    notes: list[str],
    meta: dict[str, Any],
    rescale: Rescale | None = None,
) -> tuple[float, float] | None:
    """MONOCHROME1 inversion, colour note, non-finite count; returns the default window."""
    if colour:
        notes.append(COLOUR_NOTE)
        return colour_window(values)
    window = window_of(ds, ref.frame_item if ref else None)
    rescale = ref.rescale if ref is not None else (rescale or Rescale())
    if is_monochrome1(ds):
        k = inversion_constant(ds, rescale)
        np.subtract(np.float32(k), values, out=values)
        meta["monochrome1_inverted"] = k
        notes.append(
            f"MONOCHROME1 image (low values bright): values inverted as {k:g} − v so that high is bright, "
            "as radiologists view it; the file's window was inverted to match."
        )
        if window is not None:
            window = (k - window[0], window[1])
    if values.dtype.kind == "f" and ("FloatPixelData" in ds or "DoubleFloatPixelData" in ds):
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        if bad:
            meta["nonfinite_voxels"] = bad
            notes.append(f"{bad} pixels are NaN or infinite; kept as they are (ignored by the display window).")
    return window


def _positive(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None
