"""Multi-frame DICOM files whose frames carry no position of their own: a cine or a volume?

An ultrasound loop or an X-ray angiography run (US, XA, XRF) is a sequence of time
points: its frames are shown one at a time. An MR, CT, PET or NM multi-frame file whose
frames have no per-frame positions (for example pydicom's ``emri_small.dcm``: Enhanced
MR with ten frames, SpacingBetweenSlices 1.2 mm and no functional groups) holds the
slices of one volume, and radiology viewers stack them. So does this reader, with the
spacing the file states, and says that the geometry was inferred.

Frames are *not* stacked when the file says they follow time (its
FrameIncrementPointer names a frame time) or, for NM, when it does not say they are
slices (NM multi-frame files are also dynamic, gated and whole-body acquisitions).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from viewer.io.dicom_geometry import slice_normal
from viewer.io.dicom_pixel_data import decoded_bytes
from viewer.io.dicom_pixels import decode_frames, rescale_of, to_grey
from viewer.io.dicom_volume import FrameRef, build_planar, build_stack
from viewer.io.errors import ScanLoadError
from viewer.io.memory import ensure_fits
from viewer.io.notes import no_pixel_size_note
from viewer.io.scan import Scan

CROSS_SECTIONAL = ("MR", "CT", "PT", "NM")
_TIME_POINTERS = {Tag(0x0018, 0x1063), Tag(0x0018, 0x1065), Tag(0x0054, 0x0070), Tag(0x0018, 0x1060)}
_SLICE_VECTOR = Tag(0x0054, 0x0080)


def frames_are_slices(ds: Dataset) -> bool:
    """True when a multi-frame file's frames should be stacked as a volume (see module docstring)."""
    modality = str(ds.get("Modality") or "").upper()
    if modality not in CROSS_SECTIONAL:
        return False
    pointers = _increment_pointers(ds)
    if pointers & _TIME_POINTERS:
        return False
    if modality == "NM":
        return _SLICE_VECTOR in pointers
    return True


def _increment_pointers(ds: Dataset) -> set:
    value = ds.get("FrameIncrementPointer")
    if value is None:
        return set()
    values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    out = set()
    for v in values:
        try:
            out.add(Tag(v))
        except (TypeError, ValueError, OverflowError):
            continue
    return out


def stated_slice_spacing(ds: Dataset, notes: list[str]) -> float:
    """SpacingBetweenSlices, else SliceThickness, else 1 mm — with a note saying which."""
    for keyword, label in (("SpacingBetweenSlices", "spacing between slices"), ("SliceThickness", "slice thickness")):
        value = _positive(ds.get(keyword))
        if value is not None:
            if keyword == "SliceThickness":
                notes.append(f"The file states no spacing between slices; its slice thickness ({value:g} mm) "
                             "was used as the spacing, which is wrong if the slices overlap or have gaps.")
            return value
    notes.append("The file states neither spacing between slices nor slice thickness; slices are shown 1 mm "
                 "apart, so distances across slices are not real millimetres.")
    return 1.0


def load_stacked_frames(
    ds: Dataset,
    path: Path,
    iop: np.ndarray | None,
    ipp: np.ndarray | None,
    spacing_rc: tuple[float, float] | None,
    frame: int,
    notes: list[str],
) -> Scan:
    """All frames of ``ds`` as one volume in file order (see module docstring)."""
    name = path.name
    n_frames = max(int(ds.get("NumberOfFrames") or 1), 1)
    if frame != 0:
        raise ScanLoadError(
            f"{name}: its {n_frames} frames are the slices of one volume and load together; frame= chooses "
            "a frame only in cine files (ultrasound, angiography, fluoroscopy). Open it with frame=0."
        )
    modality = str(ds.get("Modality") or "OT")
    step = stated_slice_spacing(ds, notes)
    extra = {"format": "DICOM multi-frame", "frames": n_frames, "geometry": "inferred"}
    source = f"DICOM file {name} ({modality}, {n_frames} frames as slices)"
    if iop is not None and ipp is not None:
        notes.insert(0, (
            f"The file's {n_frames} frames share one position; they were stacked as slices {step:g} mm apart, in "
            "file order, along the direction perpendicular to the image, starting at that position. This is the "
            "usual layout, but the file does not confirm it: check the anatomy before relying on positions."
        ))
        if spacing_rc is None:
            notes.append(no_pixel_size_note())
        normal = slice_normal(iop)
        rescale = rescale_of(ds)
        refs = [FrameRef(ds, name, f, ipp + f * step * normal, iop, spacing_rc or (1.0, 1.0), rescale, None, (f,))
                for f in range(n_frames)]
        frames, held = decode_all(ds, name)
        return build_stack(refs, lambda r: frames[r.frame], source, str(path), notes, extra, held_bytes=held)
    notes.insert(0, (
        f"The file's {n_frames} frames carry no position or orientation in the patient. They are shown as the "
        f"slices of one volume, in file order, {step:g} mm apart, as radiology viewers do; which side is left or "
        "right, front or back, is unknown, so no orientation labels are shown."
    ))
    frames, _ = decode_all(ds, name)
    return build_planar(ds, frames, rescale_of(ds), spacing_rc, source, str(path), notes, extra, slice_mm=step)


def decode_all(ds: Dataset, name: str) -> tuple[np.ndarray, int]:
    """Every frame of a multi-frame file as grey values, and the bytes they hold.

    Memory is checked first, for the frames and the volume they become, because the
    decoder returns all frames at once.
    """
    n_frames = max(int(ds.get("NumberOfFrames") or 1), 1)
    held = decoded_bytes(ds, n_frames)
    ensure_fits((int(ds.Columns), int(ds.Rows), n_frames), name, extra_bytes=held)
    return to_grey(decode_frames(ds, name)), held


def _positive(value: object) -> float | None:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None
