"""DICOM pixel values: decoding, colour → grey, the modality LUT, MONOCHROME1 and windows.

Order matters and follows DICOM part 3 C.11: stored values → modality LUT (rescale
slope/intercept, or a LUT) → physical units (HU for CT). Windows in the file are in
those units. MONOCHROME1 (X-ray: low = white) is turned into high = bright by
``v' = K − v``, with ``K`` the sum of the smallest and largest value the modality LUT
can produce, so values stay in the same range and the window centre becomes
``K − centre`` (width unchanged).

Rescaling is done in float32, in place, on the final array: no float64 copy of a
volume is ever made (pydicom's ``apply_modality_lut`` returns float64; it is used only
for LUT-based modality transforms, where it is exact and rare).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut
from pydicom.pixels import pixel_array as decode_pixels
from pydicom.pixels.decoders.base import get_decoder

from viewer.io import dicom_codecs
from viewer.io.dicom_meta import transfer_syntax
from viewer.io.dicom_pixel_data import pixel_length_problem
from viewer.io.errors import CorruptFileError, MissingDecoderError
from viewer.io.memory import check_size

# ITU-R BT.601 luma weights: what "grey" means for a colour medical image.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# Which pip packages give pydicom a decoder for each compression family (all permissively
# licensed: see viewer/io/dicom_codecs.py).
_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "python-gdcm",  # JPEG baseline
    "1.2.840.10008.1.2.4.51": "python-gdcm",  # JPEG extended (12 bit through dicom_codecs)
    "1.2.840.10008.1.2.4.57": "python-gdcm",  # JPEG lossless
    "1.2.840.10008.1.2.4.70": "python-gdcm",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80": "pyjpegls",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": "pyjpegls",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.4.201": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K
    "1.2.840.10008.1.2.4.202": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",  # RLE (pydicom also has its own)
}

dicom_codecs.register()


def ensure_transfer_syntax(ds: Dataset) -> None:
    """Give files without a TransferSyntaxUID (preamble-less, old ACR-NEMA) the one pydicom read them with."""
    if transfer_syntax(ds) is not None:
        return
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None or little is None:
        return
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if not hasattr(ds, "file_meta") or ds.file_meta is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )


def ensure_decoder(ds: Dataset, name: str) -> None:
    """Raise :class:`MissingDecoderError` before decoding if nothing can decompress ``ds``."""
    ensure_transfer_syntax(ds)
    ts = transfer_syntax(ds)
    if ts is None or not ts.is_compressed:
        return
    packages = _PACKAGES.get(str(ts), "python-gdcm")
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        raise MissingDecoderError(
            f"{name}: pixel data is compressed with {ts.name} ({ts}), which pydicom cannot decode. "
            "Convert the file to uncompressed DICOM (e.g. 'gdcmconv --raw in.dcm out.dcm') and open the copy."
        ) from None
    if not decoder.is_available:
        raise MissingDecoderError(
            f"{name}: pixel data is compressed with {ts.name} ({ts}) and no decoder for it is installed. "
            f"Install one into lrp-viewer's Python environment ('pip install {packages}') and open the file again."
        )


def decode_frames(ds: Dataset, name: str, index: int | None = None) -> np.ndarray:
    """Decoded stored values as ``(frames, rows, cols)``, or ``(frames, rows, cols, 3)`` for colour.

    YBR colour is converted to RGB by pydicom; palette colour is expanded to RGB here.
    """
    ensure_decoder(ds, name)
    try:
        size = (int(ds.Columns), int(ds.Rows), 1 if index is not None else max(int(ds.get("NumberOfFrames") or 1), 1))
    except (AttributeError, TypeError, ValueError):
        size = None
    if size is not None:
        check_size(size, name)  # before decoding: an empty axis or a huge frame count fails fast
    problem = pixel_length_problem(ds)
    if problem:
        raise CorruptFileError(f"{name}: {problem}")
    try:
        arr = decode_pixels(ds, index=index)
    except (MissingDecoderError, MemoryError):
        raise
    except RuntimeError as exc:
        ts = transfer_syntax(ds)
        raise CorruptFileError(
            f"{name}: the {ts.name if ts else 'compressed'} pixel data could not be decoded by the installed "
            f"decoders ({' '.join(str(exc).split())[:300]}). The file is damaged or uses a variant no decoder "
            "supports; export it again uncompressed."
        ) from None
    except Exception as exc:  # noqa: BLE001 - truncated data, bad lengths, codec errors
        raise _damaged(name, exc) from None
    if str(ds.get("PhotometricInterpretation", "")).startswith("PALETTE"):
        try:
            arr = apply_color_lut(arr, ds)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _damaged(name, exc, what="palette colour table") from None
    colour = int(ds.get("SamplesPerPixel", 1) or 1) > 1 or str(ds.get("PhotometricInterpretation", "")).startswith(
        "PALETTE"
    )
    if arr.ndim == (3 if colour else 2):
        arr = arr[np.newaxis]
    return arr


def _damaged(name: str, exc: Exception, what: str = "pixel data") -> CorruptFileError:
    return CorruptFileError(
        f"{name}: the {what} could not be decoded ({type(exc).__name__}: {exc}). "
        "The file is probably truncated or damaged; copy or export it again."
    )


def to_grey(frames: np.ndarray) -> np.ndarray:
    """Colour frames ``(..., 3)`` to float32 luma; grey frames pass through unchanged."""
    if frames.ndim == 4:
        return np.tensordot(frames[..., :3].astype(np.float32, copy=False), LUMA, axes=([-1], [0]))
    return frames


@dataclass(frozen=True)
class Rescale:
    """The modality transform of one frame: ``slope * stored + intercept``, or a LUT."""

    slope: float = 1.0
    intercept: float = 0.0
    lut_source: Dataset | None = None  # a dataset holding ModalityLUTSequence
    note: str = field(default="", compare=False)  # what was assumed when the file's values were unusable

    @property
    def is_identity(self) -> bool:
        return self.lut_source is None and self.slope == 1.0 and self.intercept == 0.0

    def values(self, stored: np.ndarray) -> np.ndarray:
        """Physical values of ``stored`` as float32 (allocates; use ``apply_inplace`` for volumes)."""
        if self.lut_source is not None:
            return np.asarray(apply_modality_lut(stored, self.lut_source), dtype=np.float32)
        out = np.asarray(stored, dtype=np.float32).copy()
        self.apply_inplace(out)
        return out

    def apply_inplace(self, out: np.ndarray) -> None:
        """Rescale float32 ``out`` in place (slope/intercept only)."""
        if self.slope != 1.0:
            out *= np.float32(self.slope)
        if self.intercept != 0.0:
            out += np.float32(self.intercept)

    def key(self) -> tuple[float, float, int]:
        return self.slope, self.intercept, id(self.lut_source) if self.lut_source is not None else 0


def _first(value: object) -> float:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0]  # type: ignore[index]
    return float(value)  # type: ignore[arg-type]


def functional_item(ds: Dataset, frame_item: Dataset | None, sequence: str) -> Dataset | None:
    """The first item of functional group ``sequence``: per-frame if present, else shared."""
    for holder in (frame_item, _shared(ds)):
        if holder is not None and sequence in holder and len(holder[sequence].value):
            return holder[sequence].value[0]
    return None


def _shared(ds: Dataset) -> Dataset | None:
    seq = ds.get("SharedFunctionalGroupsSequence")
    return seq[0] if seq else None


def rescale_of(ds: Dataset, frame_item: Dataset | None = None) -> Rescale:
    """The frame's modality transform (enhanced functional groups first, then the classic tags)."""
    item = functional_item(ds, frame_item, "PixelValueTransformationSequence")
    for holder in (item, ds):
        if holder is not None and "RescaleSlope" in holder and "RescaleIntercept" in holder:
            return checked_rescale(_number(holder, "RescaleSlope"), _number(holder, "RescaleIntercept"))
    if ds.get("ModalityLUTSequence"):
        return Rescale(lut_source=ds)
    if "DoseGridScaling" in ds:  # RT Dose: stored values × scaling = Gy
        try:
            return Rescale(slope=_first(ds.DoseGridScaling))
        except (TypeError, ValueError):
            pass
    return Rescale()


def _number(holder: Dataset, keyword: str) -> float | None:
    try:
        return _first(holder[keyword].value)
    except (TypeError, ValueError, IndexError, KeyError):
        return None


def checked_rescale(slope: float | None, intercept: float | None) -> Rescale:
    """The file's slope/intercept, or a stated substitute when they cannot be right.

    A slope of 0 makes every pixel the intercept, and a slope or intercept that is not
    a number (NaN, infinite, unreadable) makes every pixel NaN: an image that looks
    empty, with no hint why. Such values are replaced (slope 1, intercept 0) and the
    note says so, because the stored values still show the anatomy.
    """
    bad_slope = slope is None or not math.isfinite(slope) or slope == 0.0
    bad_intercept = intercept is None or not math.isfinite(intercept)
    if not (bad_slope or bad_intercept):
        return Rescale(slope, intercept)  # type: ignore[arg-type]
    parts = []
    if bad_slope:
        parts.append(f"rescale slope is {_shown(slope)}, which would make every pixel "
                     + ("the same value" if slope == 0.0 else "unknown") + "; slope 1 was used")
    if bad_intercept:
        parts.append(f"rescale intercept is {_shown(intercept)}; intercept 0 was used")
    note = (
        "The file's " + ", and its ".join(parts) + ". The image shows the anatomy, but its values (e.g. "
        "Hounsfield units) may be wrong: do not measure on it; compare with the scanner's own viewer."
    )
    return Rescale(1.0 if bad_slope else slope, 0.0 if bad_intercept else intercept, note=note)  # type: ignore[arg-type]


def _shown(value: float | None) -> str:
    if value is None:
        return "unreadable"
    if math.isnan(value):
        return "not a number (NaN)"
    return "infinite" if math.isinf(value) else f"{value:g}"


def stored_range(ds: Dataset) -> tuple[int, int]:
    """Smallest and largest stored value that BitsStored / PixelRepresentation allow."""
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def inversion_constant(ds: Dataset, rescale: Rescale) -> float:
    """``K`` of the MONOCHROME1 inversion ``v' = K − v`` (see module docstring)."""
    lo, hi = stored_range(ds)
    mapped = rescale.values(np.array([lo, hi], dtype=np.int64 if rescale.lut_source is None else np.int32))
    return float(mapped.min() + mapped.max())


def window_of(ds: Dataset, frame_item: Dataset | None = None) -> tuple[float, float] | None:
    """The file's first (centre, width), in modality-LUT units, or None."""
    item = functional_item(ds, frame_item, "FrameVOILUTSequence")
    for holder in (item, ds):
        if holder is not None and "WindowCenter" in holder and "WindowWidth" in holder:
            try:
                centre, width = _first(holder.WindowCenter), _first(holder.WindowWidth)
            except (TypeError, ValueError, IndexError):
                return None
            if np.isfinite(centre) and np.isfinite(width) and width > 0:
                return centre, width
            return None
    return None


def in_plane_spacing(ds: Dataset, frame_item: Dataset | None = None) -> tuple[float, float] | None:
    """(between rows, between columns) in mm from PixelSpacing / PixelMeasures / ImagerPixelSpacing."""
    item = functional_item(ds, frame_item, "PixelMeasuresSequence")
    for holder, keyword in ((item, "PixelSpacing"), (ds, "PixelSpacing"), (ds, "ImagerPixelSpacing"),
                            (ds, "NominalScannedPixelSpacing")):
        if holder is not None and keyword in holder:
            try:
                values = [float(v) for v in holder[keyword].value]
            except (TypeError, ValueError):
                continue
            if len(values) == 2 and all(np.isfinite(values)) and min(values) > 0:
                return values[0], values[1]
    return None


def is_monochrome1(ds: Dataset) -> bool:
    return str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"


def is_colour(ds: Dataset) -> bool:
    pi = str(ds.get("PhotometricInterpretation", ""))
    return int(ds.get("SamplesPerPixel", 1) or 1) > 1 or pi.startswith("PALETTE")


def colour_window(values: np.ndarray) -> tuple[float, float]:
    """Full 8/16/32-bit range of a colour image, so it looks as it does in a photo viewer."""
    peak = float(np.nanmax(values)) if values.size else 0.0
    top = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else float(2**32 - 1)
    return top / 2.0, top
