"""A folder of DICOM files: find the images, group them into series, load one.

Every file is opened once for its header (pixel data deferred: pydicom records where it
is and reads it only for the series that is loaded), so choosing among series costs
header parsing only. Files are recognised by content, not name; non-DICOM files,
DICOMDIR indexes, non-image objects (RT plans, reports) and damaged files are skipped
and counted in ``meta``.

Groups are (SeriesInstanceUID, orientation, image size, pixel spacing): a series that
mixes orientations (a 3-plane localizer) or sizes becomes several groups, reported in a
note and selectable. The largest group is loaded by default; all others are listed in
``meta["other_series"]`` and can be loaded with ``load_scan(folder, series=uid)``.
Multi-frame files are groups of their own.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from viewer.io.dicom_file import frame_count, scan_from_dataset, vector_of
from viewer.io.dicom_geometry import same_orientation
from viewer.io.dicom_meta import dicom_warnings_withheld, has_pixels, is_dicomdir, sop_class_name
from viewer.io.dicom_pixel_data import PIXEL_DATA, UNDEFINED_LENGTH, pixel_length_problem, read_native_frame
from viewer.io.dicom_pixels import decode_frames, in_plane_spacing, rescale_of, to_grey
from viewer.io.dicom_volume import FrameRef, build_planar, build_stack
from viewer.io.errors import CorruptFileError, NoPixelDataError, ScanLoadError
from viewer.io.folder_files import MAX_DEPTH, list_files
from viewer.io.notes import no_pixel_size_note
from viewer.io.scan import Scan
from viewer.io.sniff import looks_like_headerless_dicom


@dataclass
class Image:
    """One DICOM image file found in the folder (header only; pixels deferred)."""

    path: Path
    ds: Dataset
    iop: np.ndarray | None
    ipp: np.ndarray | None
    spacing: tuple[float, float] | None
    frames: int = 1
    size: tuple = ()

    @property
    def geometric(self) -> bool:
        return self.iop is not None and self.ipp is not None and self.frames == 1


@dataclass
class Group:
    """Images that can form one scan."""

    series_uid: str
    images: list[Image] = field(default_factory=list)
    uid: str = ""

    @property
    def size(self) -> int:
        return sum(i.frames for i in self.images)

    def describe(self) -> dict[str, Any]:
        """What tells this group apart from the folder's others; technical fields only (the
        series number and time of day help a user recognise a series, never a patient)."""
        ds = self.images[0].ds
        return {
            "uid": self.uid,
            "series_instance_uid": self.series_uid,
            "series_number": _series_number(ds),
            "series_time": _series_time(ds),
            "description": str(ds.get("SeriesDescription") or ""),
            "modality": str(ds.get("Modality") or "OT"),
            "images": self.size,
            "rows": int(ds.get("Rows") or 0),
            "columns": int(ds.get("Columns") or 0),
            "path": str(self.images[0].path),
        }


def _series_number(ds: Dataset) -> int | None:
    """SeriesNumber (IS) as a whole number; None when absent or not a number."""
    try:
        return int(ds.get("SeriesNumber"))
    except (TypeError, ValueError):
        return None


def _series_time(ds: Dataset) -> str | None:
    """SeriesTime (TM, "HHMMSS.FFFFFF") as written, or None; the time of day only, no date."""
    value = str(ds.get("SeriesTime") or "").strip()
    return value if value.split(".")[0].isdigit() and len(value) >= 2 else None


@dataclass
class FolderScan:
    groups: list[Group]
    files: int = 0
    non_dicom: int = 0
    dicomdir: int = 0
    unreadable: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # pixel data length does not match the header
    no_image: Counter = field(default_factory=Counter)
    special: int = 0
    too_deep: int = 0


def scan_folder(folder: Path) -> FolderScan:
    """Read every file's header once and group the images (see module docstring)."""
    result = FolderScan(groups=[])
    listing = list_files(folder)
    paths = listing.files
    result.files, result.special, result.too_deep = len(paths), listing.special, listing.too_deep
    for path in paths:
        if path.name.upper() == "DICOMDIR":
            result.dicomdir += 1
            continue
        ds = _read_header(path, result)
        if ds is None:
            continue
        if is_dicomdir(ds):
            result.dicomdir += 1
            continue
        if not has_pixels(ds):
            kind = sop_class_name(ds)
            if "Image" in kind:  # an image object without its pixels is incomplete, not a plan or report
                result.unreadable.append(path.name)
            else:
                result.no_image[kind] += 1
            continue
        if _truncated(ds, path):
            result.unreadable.append(path.name)
            continue
        if pixel_length_problem(ds):
            result.mismatched.append(path.name)
            continue
        image = Image(path, ds, vector_of(ds, "ImageOrientationPatient", 6), vector_of(ds, "ImagePositionPatient", 3),
                      in_plane_spacing(ds), frame_count(ds), (ds.get("Rows"), ds.get("Columns")))
        _add(result.groups, image)
    _name_groups(result.groups)
    return result


def _read_header(path: Path, result: FolderScan) -> Dataset | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
            if len(head) == 132 and head[128:132] == b"DICM":
                force = False
            elif looks_like_headerless_dicom(head):
                force = True
            else:
                result.non_dicom += 1
                return None
            fh.seek(0)
            ds = pydicom.dcmread(fh, defer_size=2048, force=force)
    except OSError:
        result.unreadable.append(path.name)
        return None
    except MemoryError:
        raise  # out of memory is not a damaged file
    except Exception:  # noqa: BLE001 - damaged header: skip the file, count it
        result.unreadable.append(path.name)
        return None
    if force and "SOPClassUID" not in ds:
        result.non_dicom += 1
        return None
    return ds


def _truncated(ds: Dataset, path: Path) -> bool:
    if PIXEL_DATA not in ds:
        return False
    raw = ds.get_item(PIXEL_DATA, keep_deferred=True)  # where the pixels are, without reading them
    length, tell = getattr(raw, "length", None), getattr(raw, "value_tell", None)
    if length is None or tell is None or length == UNDEFINED_LENGTH:
        return False
    try:
        return tell + length > os.path.getsize(path)
    except OSError:
        return True


def _add(groups: list[Group], image: Image) -> None:
    series = str(image.ds.get("SeriesInstanceUID") or "unknown-series")
    if image.frames > 1:
        groups.append(Group(series, [image]))
        return
    for g in reversed(groups):  # the newest group is the likeliest match: files come in folder order
        first = g.images[0]
        if (
            g.series_uid == series
            and first.frames == 1
            and first.geometric == image.geometric
            and first.size == image.size
            and _same_spacing(first.spacing, image.spacing)
            and (not image.geometric or same_orientation(first.iop, image.iop))
        ):
            g.images.append(image)
            return
    groups.append(Group(series, [image]))


def _same_spacing(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool:
    if a is None or b is None:
        return a is b
    return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5))


def _name_groups(groups: list[Group]) -> None:
    """Selection ids: the SeriesInstanceUID, plus ``#k`` where one series split into several groups."""
    per_series = Counter(g.series_uid for g in groups)
    numbered: Counter = Counter()
    for g in sorted(groups, key=lambda g: -g.size):
        if per_series[g.series_uid] == 1:
            g.uid = g.series_uid
        else:
            numbered[g.series_uid] += 1
            g.uid = f"{g.series_uid}#{numbered[g.series_uid]}"


def load_dicom_folder(folder: Path, series: str | None = None) -> Scan:
    """Load the largest (or the chosen) series of a folder; see module docstring."""
    with dicom_warnings_withheld():
        return _load_folder(folder, series)


def _load_folder(folder: Path, series: str | None) -> Scan:
    found = scan_folder(folder)
    if not found.groups:
        raise _nothing_to_load(folder, found)
    ranked = sorted(found.groups, key=lambda g: (-g.size, not g.images[0].geometric))
    chosen = _choose(ranked, series, folder)
    notes: list[str] = []
    siblings = [g for g in found.groups if g.series_uid == chosen.series_uid and g is not chosen]
    if siblings:
        notes.append(
            f"Series {chosen.series_uid} mixes {len(siblings) + 1} orientations or image sizes "
            f"({', '.join(str(g.size) for g in [chosen] + siblings)} images; e.g. a localizer in three planes). "
            f"Showing group {chosen.uid} only; each other group can be opened as a series of its own "
            "(listed in other_series)."
        )
    skipped = _skipped_note(found)
    if skipped:
        notes.append(skipped)
    extra: dict[str, Any] = {
        "format": "DICOM series",
        "folder_files": found.files,
        "skipped_non_dicom": found.non_dicom,
        "skipped_dicomdir": found.dicomdir,
        "skipped_unreadable": list(found.unreadable) + list(found.mismatched),
        "skipped_non_image": dict(found.no_image),
        "other_series": [g.describe() for g in ranked if g is not chosen],
        "series": chosen.uid,
        "series_number": _series_number(chosen.images[0].ds),
        "series_time": _series_time(chosen.images[0].ds),
        "files": len(chosen.images),
    }
    first = chosen.images[0]
    modality = str(first.ds.get("Modality") or "OT")
    source = f"DICOM series {_short(chosen.uid)} ({len(chosen.images)} files, {modality})"
    if first.frames > 1:
        scan = scan_from_dataset(first.ds, first.path)
        scan.meta.update({k: v for k, v in extra.items() if k not in ("format",)})
        scan.meta["notes"] = notes + scan.meta.get("notes", [])
        scan.path = str(folder)
        return scan
    if not first.geometric:
        return _planar_group(chosen, folder, source, notes, extra)
    refs = [
        FrameRef(img.ds, img.path.name, None, img.ipp, img.iop, img.spacing or (1.0, 1.0), rescale_of(img.ds),
                 None, _tiebreak(img))
        for img in chosen.images
    ]
    if first.spacing is None:
        notes.append(no_pixel_size_note())
    return build_stack(refs, _read_frame, source, str(folder), notes, extra)


def _read_frame(ref: FrameRef) -> np.ndarray:
    """Decode one file's pixels, then drop them from the header so memory holds one copy."""
    frame = read_native_frame(ref.ds, str(ref.ds.filename))
    if frame is None:
        frame = to_grey(decode_frames(ref.ds, ref.name))[0]
    if PIXEL_DATA in ref.ds:
        del ref.ds[PIXEL_DATA]
    return frame


def _tiebreak(img: Image) -> tuple:
    """Order of images sharing a position: time point, acquisition, echo, instance, name."""
    out = []
    for keyword in ("TemporalPositionIdentifier", "AcquisitionNumber", "EchoNumbers", "InstanceNumber"):
        try:
            out.append(float(img.ds.get(keyword) or 0))
        except (TypeError, ValueError):
            out.append(0.0)
    return (*out, img.path.name)


def _planar_group(group: Group, folder: Path, source: str, notes: list[str], extra: dict[str, Any]) -> Scan:
    images = sorted(group.images, key=_tiebreak)
    first = images[0]
    if len(images) > 1:
        notes.append(
            f"The series has {len(images)} images without a position in the patient (separate views, not slices "
            f"of a volume); showing the first by instance number ({first.path.name})."
        )
    frame = to_grey(decode_frames(first.ds, first.path.name))[0]
    return build_planar(first.ds, frame, rescale_of(first.ds), first.spacing, source, str(folder), notes, extra)


def _choose(ranked: list[Group], series: str | None, folder: Path) -> Group:
    if series is None:
        return ranked[0]
    for g in ranked:
        if g.uid == series:
            return g
    for g in ranked:  # a SeriesInstanceUID that was split: its largest group
        if g.series_uid == series:
            return g
    listed = ", ".join(f"{g.uid} ({g.size} images)" for g in ranked[:10])
    raise ScanLoadError(
        f"No series {series!r} in {folder.name}. Available: {listed}"
        + (" …" if len(ranked) > 10 else "")
        + ". Pass one of these uids as series=."
    )


def _skipped_note(found: FolderScan) -> str:
    parts = []
    if found.non_dicom:
        parts.append(f"{found.non_dicom} non-DICOM file(s)")
    if found.dicomdir:
        parts.append(f"{found.dicomdir} DICOMDIR index file(s)")
    if found.no_image:
        parts.append(", ".join(f"{n} {kind} object(s) without image" for kind, n in found.no_image.items()))
    if found.unreadable:
        parts.append(f"{len(found.unreadable)} damaged or truncated file(s) ({_names(found.unreadable)})")
    if found.mismatched:
        parts.append(f"{len(found.mismatched)} damaged file(s) whose pixel data does not match the image size in "
                     f"their header, so their values would be wrong ({_names(found.mismatched)})")
    if found.special:
        parts.append(f"{found.special} pipe(s), device(s) or broken link(s), which were not opened")
    text = ("Skipped " + "; ".join(parts) + ".") if parts else ""
    if found.unreadable or found.mismatched:
        text += " If a skipped file was an image of this series, it is missing from the scan."
    if found.too_deep:
        text += (f" {found.too_deep} folder(s) more than {MAX_DEPTH} levels down were not searched; open such a "
                 "folder directly if it holds images.")
    return text.strip()


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (" …" if len(names) > 5 else "")


def _nothing_to_load(folder: Path, found: FolderScan) -> ScanLoadError:
    if found.files == 0:
        deep = (f" (folders more than {MAX_DEPTH} levels down were not searched; open the folder that holds the "
                "images directly)") if found.too_deep else ""
        return ScanLoadError(
            f"The folder {folder.name} holds no files{deep}. Choose the folder that holds the DICOM files."
        )
    if found.no_image:
        kinds = ", ".join(f"{n} {kind}" for kind, n in found.no_image.items())
        return NoPixelDataError(
            f"{folder.name} holds only DICOM objects without images ({kinds}). "
            "Open the folder of an image series (CT, MR, X-ray, ...) instead."
        )
    if found.unreadable or found.mismatched:
        bad = len(found.unreadable) + len(found.mismatched)
        why = " (their pixel data does not match the image size in their header)" if found.mismatched else ""
        return CorruptFileError(
            f"{folder.name}: all {bad} DICOM file(s) are damaged or truncated{why}. "
            "Copy or export the series again."
        )
    if found.dicomdir and not found.non_dicom:
        return ScanLoadError(
            f"{folder.name} holds only a DICOMDIR index, without the image files it lists. "
            "Copy the whole CD/DVD/USB export, including its sub-folders."
        )
    return ScanLoadError(
        f"{folder.name} holds {found.files} file(s) but no DICOM images. Open a NIfTI or picture file directly, "
        "or choose the folder that contains the DICOM series."
    )


def _short(uid: str) -> str:
    return uid if len(uid) <= 24 else uid[:20] + "…"
