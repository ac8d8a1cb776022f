"""One DICOM file: a single image, a classic multi-frame or an enhanced multi-frame object.

* With ImageOrientationPatient + ImagePositionPatient (CT, MR, PET, RT Dose, ...) the file
  becomes a geometric scan: one slice, or a stack when frames carry positions
  (enhanced per-frame PlanePositionSequence, or RT Dose GridFrameOffsetVector).
* Without them (CR/DX/US/XA/secondary capture) it is a planar 2D image. A multi-frame file
  without geometry (ultrasound cine, XA run) loads *one* frame — ``frame``, default the
  first — because its frames are time points, not slices; ``meta["frames"]`` says how many.
* A multi-frame MR/CT/PT/NM file whose frames carry no positions is stacked as a volume
  (:mod:`viewer.io.dicom_frames`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from viewer.io.dicom_frames import decode_all, frames_are_slices, load_stacked_frames
from viewer.io.dicom_meta import dicom_warnings_withheld, has_pixels, is_dicomdir, sop_class_name
from viewer.io.dicom_pixels import decode_frames, functional_item, in_plane_spacing, rescale_of, to_grey
from viewer.io.dicom_volume import FrameRef, build_planar, build_stack
from viewer.io.errors import CorruptFileError, NoPixelDataError, ScanLoadError, UnsupportedFormatError
from viewer.io.notes import no_pixel_size_note
from viewer.io.scan import Scan


def read_dataset(path: Path, force: bool = False, defer: bool = False) -> Dataset:
    """``dcmread`` with every failure turned into a :class:`ScanLoadError` subclass."""
    try:
        return pydicom.dcmread(str(path), force=force, defer_size=2048 if defer else None)
    except InvalidDicomError:
        raise UnsupportedFormatError(f"{path.name} is not a DICOM file (no DICOM header found).") from None
    except MemoryError:
        raise  # load_scan reports it as out of memory, not as a damaged file
    except Exception as exc:  # noqa: BLE001 - EOFError, struct errors, bad lengths, ...
        raise CorruptFileError(
            f"{path.name} is a damaged DICOM file ({type(exc).__name__}); it is probably truncated. "
            "Copy or export it again."
        ) from None


def check_image(ds: Dataset, name: str) -> None:
    """Refuse objects that are not images, naming what they are."""
    if is_dicomdir(ds):
        raise UnsupportedFormatError(
            f"{name} is a DICOMDIR (an index of a CD/DVD/USB export), not an image. Open the folder that contains it."
        )
    if not has_pixels(ds):
        kind = sop_class_name(ds)
        if "Image" in kind:
            raise CorruptFileError(
                f"{name} is a DICOM {kind} object whose pixel data is missing or truncated. "
                "Copy or export the file again."
            )
        raise NoPixelDataError(
            f"{name} is a DICOM {kind} object, which holds no image. "
            "Open an image file or series (CT, MR, X-ray, ultrasound, ...) instead."
        )


def load_dicom_file(path: Path, frame: int = 0) -> Scan:
    with dicom_warnings_withheld():
        return _load_file(path, frame)


def _load_file(path: Path, frame: int) -> Scan:
    force = False
    with open(path, "rb") as fh:
        head = fh.read(132)
    if head[128:132] != b"DICM":
        force = True  # preamble-less DICOM: pydicom needs to be told
    ds = read_dataset(path, force=force)
    if force and "SOPClassUID" not in ds and not has_pixels(ds):
        raise UnsupportedFormatError(f"{path.name} is not a DICOM file lrp-viewer can read.")
    check_image(ds, path.name)
    return scan_from_dataset(ds, path, frame=frame)


def vector_of(ds: Dataset | None, keyword: str, n: int) -> np.ndarray | None:
    """A finite float vector of length ``n`` from a numeric multi-valued attribute, or None."""
    if ds is None or keyword not in ds:
        return None
    try:
        v = np.array([float(x) for x in ds[keyword].value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return v if v.shape == (n,) and np.all(np.isfinite(v)) else None


def frame_count(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def scan_from_dataset(ds: Dataset, path: Path, frame: int = 0) -> Scan:
    """The scan of one opened DICOM dataset (see module docstring for the cases)."""
    name = path.name
    n_frames = frame_count(ds)
    modality = str(ds.get("Modality") or "OT")
    kind = sop_class_name(ds)
    notes: list[str] = []

    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and functional_item(ds, per_frame[0], "PlanePositionSequence") is not None:
        return _enhanced(ds, path, per_frame, notes)

    iop, ipp = vector_of(ds, "ImageOrientationPatient", 6), vector_of(ds, "ImagePositionPatient", 3)
    spacing = in_plane_spacing(ds)
    if iop is not None and ipp is not None:
        offsets = ds.get("GridFrameOffsetVector")
        if n_frames > 1 and offsets is not None and len(offsets) == n_frames:
            return _grid_frames(ds, path, iop, ipp, spacing, [float(o) for o in offsets], notes)
        if n_frames > 1 and frames_are_slices(ds):
            return load_stacked_frames(ds, path, iop, ipp, spacing, frame, notes)
        index = _check_frame(frame, n_frames, name)
        if n_frames > 1:
            notes.append(_one_frame_note(n_frames, index))
        if spacing is None:
            notes.append(no_pixel_size_note())
            spacing = (1.0, 1.0)
        frames = to_grey(decode_frames(ds, name, index=index if n_frames > 1 else None))
        ref = FrameRef(ds, name, 0, ipp, iop, spacing, rescale_of(ds))
        extra = {"format": "DICOM", "frames": n_frames, "frame": index} if n_frames > 1 else {"format": "DICOM"}
        return build_stack([ref], lambda r: frames[0], f"DICOM file {name} ({modality}, {kind})", str(path),
                           notes, extra)

    if n_frames > 1 and frames_are_slices(ds):
        return load_stacked_frames(ds, path, None, None, spacing, frame, notes)
    index = _check_frame(frame, n_frames, name)
    frames = to_grey(decode_frames(ds, name, index=index if n_frames > 1 else None))
    extra = {"format": "DICOM"}
    if n_frames > 1:
        extra.update(frames=n_frames, frame=index)
        notes.append(_one_frame_note(n_frames, index))
    return build_planar(ds, frames[0], rescale_of(ds), spacing, f"DICOM file {name} ({modality}, {kind})",
                        str(path), notes, extra)


def _one_frame_note(n_frames: int, index: int) -> str:
    return (
        f"The file holds {n_frames} frames taken one after another (a cine loop or run), not slices of a volume; "
        f"showing frame {index} alone (frames are numbered 0 to {n_frames - 1}; choose another with frame=...)."
    )


def _check_frame(frame: int, n_frames: int, name: str) -> int:
    if not 0 <= frame < n_frames:
        raise ScanLoadError(f"{name} has {n_frames} frame(s); choose frame 0 to {n_frames - 1}.")
    return frame


def _enhanced(ds: Dataset, path: Path, per_frame, notes: list[str]) -> Scan:
    name = path.name
    refs: list[FrameRef] = []
    n_frames = frame_count(ds)
    if len(per_frame) != n_frames:
        notes.append(
            f"The file describes the position of {len(per_frame)} frames but holds {n_frames}; only the first "
            f"{min(len(per_frame), n_frames)} are shown."
        )
    for f, item in enumerate(list(per_frame)[:n_frames]):
        pos_item = functional_item(ds, item, "PlanePositionSequence")
        ori_item = functional_item(ds, item, "PlaneOrientationSequence")
        ipp, iop = vector_of(pos_item, "ImagePositionPatient", 3), vector_of(ori_item, "ImageOrientationPatient", 6)
        if ipp is None or iop is None:
            raise CorruptFileError(
                f"{name}: frame {f} of this enhanced multi-frame object has no position or orientation. "
                "The file is damaged or incomplete; export it again."
            )
        spacing = in_plane_spacing(ds, item) or (1.0, 1.0)
        content = functional_item(ds, item, "FrameContentSequence")
        temporal = int(content.get("TemporalPositionIndex") or 0) if content is not None else 0
        refs.append(FrameRef(ds, name, f, ipp, iop, spacing, rescale_of(ds, item), item, (temporal, f)))
    refs = _largest_orientation(refs, notes)
    frames, held = decode_all(ds, name)
    kind = sop_class_name(ds)
    return build_stack(
        refs,
        lambda r: frames[r.frame],
        f"DICOM {kind} {name} ({n_frames} frames)",
        str(path),
        notes,
        {"format": "DICOM enhanced multi-frame", "frames": n_frames},
        held_bytes=held,
    )


def _grid_frames(ds: Dataset, path: Path, iop, ipp, spacing, offsets: list[float], notes: list[str]) -> Scan:
    """Frames along the normal at GridFrameOffsetVector (RT Dose and similar)."""
    from viewer.io.dicom_geometry import slice_normal

    normal = slice_normal(iop)
    base = offsets[0]
    rescale = rescale_of(ds)
    refs = [
        FrameRef(ds, path.name, f, ipp + (o - base) * normal, iop, spacing or (1.0, 1.0), rescale, None, (f,))
        for f, o in enumerate(offsets)
    ]
    frames, held = decode_all(ds, path.name)
    return build_stack(refs, lambda r: frames[r.frame], f"DICOM file {path.name} ({ds.get('Modality', 'OT')}, "
                       f"{len(offsets)} frames)", str(path), notes,
                       {"format": "DICOM multi-frame", "frames": len(offsets)}, held_bytes=held)


def _largest_orientation(refs: list[FrameRef], notes: list[str]) -> list[FrameRef]:
    from viewer.io.dicom_geometry import same_orientation

    groups: list[list[FrameRef]] = []
    for ref in refs:
        for g in groups:
            if same_orientation(g[0].iop, ref.iop) and g[0].spacing_rc == ref.spacing_rc:
                g.append(ref)
                break
        else:
            groups.append([ref])
    if len(groups) == 1:
        return refs
    groups.sort(key=len, reverse=True)
    notes.append(
        f"The file's frames lie in {len(groups)} different orientations or pixel sizes "
        f"({', '.join(str(len(g)) for g in groups)} frames); showing the largest group only."
    )
    return groups[0]
