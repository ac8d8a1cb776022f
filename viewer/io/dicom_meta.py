"""Which DICOM facts may leave the reader: an allow-list, never a deny-list.

A deny-list of patient tags misses private tags, free-text fields and new attributes;
an allow-list of technical attributes cannot leak what it never copies. Nothing here
reads PatientName, PatientID, dates, accession numbers, institution or physician names,
or free-text study descriptions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import Any, Iterator

import pydicom

from pydicom.dataset import Dataset
from pydicom.uid import UID

# Technical, non-identifying attributes copied into Scan.meta (when present).
ALLOWED = (
    "Modality",
    "SOPClassUID",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "BodyPartExamined",
    "Manufacturer",
    "ManufacturerModelName",
    "ImageType",
    "PatientPosition",
    "SliceThickness",
    "SpacingBetweenSlices",
    "KVP",
    "ConvolutionKernel",
    "RepetitionTime",
    "EchoTime",
    "MagneticFieldStrength",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "RescaleType",
)

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

# pydicom logs (and warns) about malformed elements, sometimes quoting their values —
# which can be patient names. Its log records must not reach a console or log file.
_pydicom_log = logging.getLogger("pydicom")
_pydicom_log.addHandler(logging.NullHandler())
_pydicom_log.propagate = False

_PYDICOM_DIR = os.path.dirname(pydicom.__file__)


@contextlib.contextmanager
def dicom_warnings_withheld() -> Iterator[None]:
    """Withhold pydicom's warnings while DICOM is read; let every other warning through.

    pydicom warns about malformed header values by quoting them, and a quoted value can
    be a patient's name, so its warnings must not reach the console. What they signal
    that matters for the pixels (pixel data shorter or longer than the header says, an
    unusable rescale) is checked by the readers themselves and reported as an error or
    a note. Local to one read: the process-wide filter is restored on exit (Python's
    ``catch_warnings`` is not thread-local, so a warning raised by another thread during
    the read is collected here too, and re-issued unless it came from pydicom).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            others = [w for w in caught if not os.path.abspath(w.filename).startswith(_PYDICOM_DIR)]
    for w in others:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _plain(value: Any) -> Any:
    """pydicom values (DSfloat, IS, MultiValue, UID, PersonName never) as plain Python."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    if isinstance(value, UID):
        return str(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, bytes):
        return None
    return str(value)


def allowed_meta(ds: Dataset) -> dict[str, Any]:
    """The allow-listed attributes of ``ds`` plus the transfer syntax and SOP class names."""
    meta: dict[str, Any] = {}
    for keyword in ALLOWED:
        element = ds.get(keyword)
        if element is None or element == "":
            continue
        value = _plain(element)
        if value is not None and value != "":
            meta[keyword] = value
    if "SOPClassUID" in ds:
        meta["SOPClassName"] = sop_class_name(ds)
    ts = transfer_syntax(ds)
    if ts is not None:
        meta["TransferSyntaxUID"] = str(ts)
        meta["TransferSyntax"] = ts.name
    return meta


def transfer_syntax(ds: Dataset) -> UID | None:
    file_meta = getattr(ds, "file_meta", None)
    uid = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    return UID(str(uid)) if uid else None


def sop_class_name(ds: Dataset) -> str:
    """Human name of the object type, e.g. "RT Plan Storage", without the word Storage."""
    uid = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    if not uid:
        return "unknown DICOM object"
    name = UID(str(uid)).name
    if name == str(uid):
        return f"DICOM object of class {uid}"
    return name.removesuffix(" Storage")


def is_dicomdir(ds: Dataset) -> bool:
    media = getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    return str(media or "") == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds


def has_pixels(ds: Dataset) -> bool:
    return any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
