"""``load_scan``: one entry point for every scan format lrp-viewer reads.

The format is decided from the file's first bytes (DICOM preamble, PNG/JPEG/TIFF magic,
NIfTI header size) and, failing that, its name, so files without extensions (common
for DICOM) and mis-named files both work. Folders are DICOM series.
"""

from __future__ import annotations

import gzip
import os
import warnings
from pathlib import Path

from viewer.io.errors import ScanLoadError, UnsupportedFormatError
from viewer.io.scan import Scan

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SUPPORTED = (
    "DICOM files or folders, NIfTI (.nii, .nii.gz, .hdr/.img), MGH (.mgz), "
    "PNG, JPEG, TIFF or BMP images"
)


def load_scan(path: str | os.PathLike, series: str | None = None, frame: int = 0) -> Scan:
    """Read a scan from a file or a folder.

    Parameters
    ----------
    path
        A NIfTI/Analyze/MGH file, a DICOM file (single image, multi-frame or enhanced
        multi-frame), a PNG/JPEG/TIFF/BMP picture, or a folder searched recursively for
        DICOM files (any names; non-DICOM files and DICOMDIR are skipped and counted in
        ``meta``).
    series
        For folders: the ``uid`` of one entry of ``meta["other_series"]`` (or a
        SeriesInstanceUID) to load instead of the largest series.
    frame
        Which volume of a 4D NIfTI, frame of a multi-frame DICOM without geometry, or
        page of a multi-page TIFF to load (default the first). Such files load one
        2D/3D image, never a stack of unrelated frames; ``meta`` says how many there are.

    Returns
    -------
    Scan
        float32 data in RAS+ canonical voxel order (see :class:`viewer.io.Scan`).

    Raises
    ------
    ScanLoadError
        (or a subclass) for every problem a user can cause: missing path, empty folder,
        unsupported or damaged file, DICOM without an image, inconsistent series,
        missing decoder, a scan too large for memory. The message says what to do.

    Notes
    -----
    Policies (each also written into ``meta["notes"]`` when it applies):

    * DICOM slices are ordered by position along the slice normal; spacing comes from
      the positions. Gaps that differ from the median by more than max(0.01 mm, 1 %)
      are resampled linearly onto the median spacing; a gap over 3× the median is
      refused (:class:`InconsistentSeriesError`), as are unevenly repeated positions.
      Evenly repeated positions (echoes, phases) give the first volume. See
      :mod:`viewer.io.dicom_geometry`.
    * A series mixing orientations or image sizes is split into groups; the largest
      loads, the rest are in ``meta["other_series"]`` (uid ``<SeriesInstanceUID>#k``).
    * MONOCHROME1 is inverted (``K − v``, window too); colour becomes BT.601 luma.
    * Multi-frame files without geometry, multi-page TIFFs and 4D NIfTI load one
      frame/page/volume (``frame``); planar scans are always 2D.
    * NaN/inf values (only possible in floating-point files) are kept and counted in
      ``meta["nonfinite_voxels"]``; displays and windows ignore them.
    * ``meta`` holds allow-listed technical DICOM attributes only, never patient data.
    * ``data`` is float32 with positive strides but not necessarily C-contiguous (DICOM
      volumes are filled slice by slice, like nibabel's Fortran-ordered arrays); call
      ``np.ascontiguousarray`` where a library needs contiguous memory.

    Input files are only ever opened for reading (NIfTI maps are copy-on-write).
    """
    p = Path(path)
    if series is not None and not p.is_dir():
        raise ScanLoadError(f"series={series!r} selects a series inside a folder, but {p.name} is not a folder.")
    if frame < 0:
        raise ScanLoadError(f"frame must be 0 or more, got {frame}.")
    if not p.exists():
        raise ScanLoadError(f"{p} does not exist. Check the path (and that the drive is mounted).")
    with warnings.catch_warnings():
        # pydicom/Pillow warnings can quote header values; never print them. (catch_warnings
        # is process-wide; a warning raised by another thread meanwhile is silenced too.)
        warnings.simplefilter("ignore")
        try:
            return _load(p, series, frame)
        except ScanLoadError:
            raise
        except MemoryError:
            raise ScanLoadError(
                f"{p.name} does not fit in memory. Close other programs, or open a smaller series/volume."
            ) from None
        except Exception as exc:  # noqa: BLE001 - a damaged file must never crash the application
            raise ScanLoadError(
                f"{p.name} could not be read: an unexpected {type(exc).__name__} while decoding it. "
                "The file is probably damaged or of an unusual variant; export it again, and report it if it "
                "opens in other viewers."
            ) from exc


def _load(p: Path, series: str | None, frame: int) -> Scan:
    if p.is_dir():
        from viewer.io.dicom_series import load_dicom_folder

        return load_dicom_folder(p, series=series)
    if not os.access(p, os.R_OK):
        raise ScanLoadError(f"{p.name} cannot be read (permission denied). Check the file's permissions.")
    kind = sniff(p)
    if kind == "nifti":
        from viewer.io.nifti import load_nifti

        return load_nifti(p, frame=frame)
    if kind == "dicom":
        from viewer.io.dicom_file import load_dicom_file

        return load_dicom_file(p, frame=frame)
    if kind == "picture":
        from viewer.io.picture import load_picture

        return load_picture(p, frame=frame)
    if p.stat().st_size == 0:
        raise UnsupportedFormatError(f"{p.name} is empty (0 bytes). Copy the file again.")
    raise UnsupportedFormatError(f"{p.name} is not a format lrp-viewer reads. Open {SUPPORTED}.")


def sniff(path: Path) -> str | None:
    """"dicom", "nifti", "picture" or None, from the first bytes first and the name second."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(544)
    except OSError as exc:
        raise ScanLoadError(f"{path.name} cannot be read ({exc.strerror}).") from None
    name = path.name.lower()
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if name.endswith((".hdr", ".img", ".hdr.gz", ".img.gz")):  # Analyze/NIfTI pair: .img is raw voxels
        return "nifti"
    if head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8\xff") or head[:4] in (b"II*\x00", b"MM\x00*") \
            or head[:4] in (b"II+\x00", b"MM\x00+") or head.startswith(b"BM"):
        return "picture"
    if _is_nifti_header(head) or (head.startswith(b"\x1f\x8b") and _gz_is_nifti(path)):
        return "nifti"
    if name.endswith((".nii", ".nii.gz", ".hdr", ".img", ".mgz", ".mgh", ".hdr.gz", ".img.gz")):
        return "nifti"
    if name.endswith(PICTURE_SUFFIXES):
        return "picture"
    if looks_like_headerless_dicom(head) or name.endswith((".dcm", ".dicom", ".ima")):
        return "dicom"
    return None


def looks_like_headerless_dicom(head: bytes) -> bool:
    """DICOM written without the 128-byte preamble: starts with a group 0002 or 0008 tag."""
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00")


def _is_nifti_header(head: bytes) -> bool:
    if len(head) < 348:
        return False
    size_le = int.from_bytes(head[:4], "little")
    size_be = int.from_bytes(head[:4], "big")
    return size_le in (348, 540) or size_be in (348, 540)


def _gz_is_nifti(path: Path) -> bool:
    try:
        with gzip.open(path, "rb") as fh:
            return _is_nifti_header(fh.read(544))
    except (OSError, EOFError):
        return path.name.lower().endswith((".nii.gz", ".mgz"))
