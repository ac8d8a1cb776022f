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
    Rescale,
    colour_window,
    inversion_constant,
    is_colour,
    is_monochrome1,
    window_of,
)
from viewer.io.memory import ensure_fits
from viewer.io.notes import COLOUR, no_pixel_size_note, nonfinite_count, nonfinite_note
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
    held_bytes: int = 0,
) -> Scan:
    """A geometric scan from frames that share orientation, size and pixel spacing.

    ``held_bytes``: memory ``read`` holds while the stack is built (a multi-frame file
    decodes all its frames at its first call), counted in the memory check.
    """
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
    ordered = [refs[i] for i in plan.order]
    plane = rows * cols * 4
    resampling = (len(ordered) + plan.n_out) * plane if plan.targets is not None else 0
    ensure_fits(grid.shape, source, extra_bytes=2 * plane + resampling + held_bytes)
    buffer = grid.slice_buffer()
    colour = is_colour(first)
    for note in dict.fromkeys(r.rescale.note for r in ordered if r.rescale.note):
        notes.append(note)
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
    meta["original_orientation"] = grid.source_codes  # reordering axes changes no value: a fact, not a note
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
    frames: np.ndarray,
    rescale: Rescale,
    spacing_rc: tuple[float, float] | None,
    source: str,
    path: str,
    notes: list[str],
    extra_meta: dict[str, Any] | None = None,
    slice_mm: float = 1.0,
) -> Scan:
    """An image without patient geometry, laid out as the file shows it.

    ``frames`` is one frame ``(rows, cols)`` or a stack ``(n, rows, cols)`` of frames
    that are slices ``slice_mm`` apart in file order. ``data[i, j, k]`` is the pixel at
    column ``i``, row ``H − 1 − j`` of frame ``k`` (see :class:`Scan`).
    """
    stack = frames if frames.ndim == 3 else frames[np.newaxis]
    n, rows, cols = stack.shape
    ensure_fits((cols, rows, n), source, extra_bytes=rows * cols * 8)
    colour = is_colour(ds)
    data = np.empty((n, rows, cols), dtype=np.float32)
    for k in range(n):  # rows reversed on the destination, so the source is read contiguously
        data[k, ::-1, :] = stack[k] if (colour or rescale.lut_source is None) else rescale.values(stack[k])
    if not colour and rescale.lut_source is None:
        rescale.apply_inplace(data)
    if rescale.note:
        notes.append(rescale.note)
    meta = allowed_meta(ds)
    window = _finish_values(data, ds, None, colour, notes, meta, rescale=rescale)
    if spacing_rc is None:
        notes.append(no_pixel_size_note())
        spacing_rc = (1.0, 1.0)
    row_mm, col_mm = spacing_rc
    affine = np.diag([col_mm, row_mm, slice_mm, 1.0])
    meta.update(extra_meta or {})
    meta["notes"] = notes
    # (n, rows, cols) with rows already reversed → (cols, rows, n): a view with positive strides
    planar = data.transpose(2, 1, 0)
    return Scan(
        data=np.ascontiguousarray(planar) if n == 1 else planar,
        affine=affine,
        spacing=(col_mm, row_mm, slice_mm),
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
        notes.append(COLOUR)
        return colour_window(values)
    window = window_of(ds, ref.frame_item if ref else None)
    rescale = ref.rescale if ref is not None else (rescale or Rescale())
    if is_monochrome1(ds):
        k = inversion_constant(ds, rescale)
        np.subtract(np.float32(k), values, out=values)
        meta["monochrome1_inverted"] = k
        notes.append(
            f"The file stores the image with low values bright (MONOCHROME1, common for X-rays); values were turned "
            f"round as {k:g} − value so that high values are bright, as radiologists view it, and the file's "
            "window was turned round to match."
        )
        if window is not None:
            window = (k - window[0], window[1])
    if values.dtype.kind == "f" and ("FloatPixelData" in ds or "DoubleFloatPixelData" in ds):
        bad = nonfinite_count(values)
        if bad:
            meta["nonfinite_voxels"] = bad
            notes.append(nonfinite_note(bad, values.size, "pixels" if values.shape[0] == 1 else "voxels"))
    return window


def _positive(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None
