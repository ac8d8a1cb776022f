"""``load_scan``: one entry point for every scan format lrp-viewer reads.

The format is decided from the file's first bytes (DICOM preamble, PNG/JPEG/TIFF magic,
NIfTI header size) and, failing that, its name (:mod:`viewer.io.sniff`), so files
without extensions (common for DICOM) and mis-named files both work. Folders are DICOM
series. Imports point one way: this module imports the readers, never the reverse.
"""

from __future__ import annotations

import os
from pathlib import Path

from viewer.io.errors import ScanLoadError, UnsupportedFormatError
from viewer.io.memory import out_of_memory, voxel_budget
from viewer.io.scan import Scan
from viewer.io.sniff import PICTURE_SUFFIXES, check_regular_file, looks_like_headerless_dicom, sniff

__all__ = ["load_scan", "sniff", "looks_like_headerless_dicom", "PICTURE_SUFFIXES", "SUPPORTED"]

SUPPORTED = (
    "DICOM files or folders, NIfTI (.nii, .nii.gz, .hdr/.img), MGH (.mgz), "
    "PNG, JPEG, TIFF or BMP images"
)


def load_scan(
    path: str | os.PathLike, series: str | None = None, frame: int = 0, max_voxels: int | None = None
) -> Scan:
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
    max_voxels
        The voxel budget for this load (default: ``LRP_VIEWER_MAX_VOXELS`` or 2**29;
        see :mod:`viewer.io.memory`). Larger scans raise :class:`ScanTooLargeError`.

    Returns
    -------
    Scan
        float32 data in RAS+ canonical voxel order (see :class:`viewer.io.Scan`).

    Raises
    ------
    ScanLoadError
        (or a subclass) for every problem a user can cause: missing path, empty folder,
        unsupported or damaged file, DICOM without an image, inconsistent series,
        missing decoder, a path that is not a regular file (a pipe or device, which
        would block forever), a folder tree too large to be a DICOM export, a scan over
        the voxel budget (:class:`ScanTooLargeError`) or too large for memory. The
        message says what to do.

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
    * Multi-frame files without geometry load one frame (``frame``) for cine modalities
      (US, XA, XRF, and anything not cross-sectional); for MR, CT, PT and NM the frames
      are stacked as a volume in file order with the file's slice spacing, marked
      ``planar`` (position and orientation in the patient unknown), with a note.
      Multi-page TIFFs and 4D NIfTI load one page/volume (``frame``).
    * NaN/inf values (only possible in floating-point files) are kept and counted in
      ``meta["nonfinite_voxels"]``; displays and windows ignore them.
    * ``meta`` holds allow-listed technical DICOM attributes only, never patient data.
    * ``data`` is float32 with positive strides but not necessarily C-contiguous (DICOM
      volumes are filled slice by slice, like nibabel's Fortran-ordered arrays); call
      ``np.ascontiguousarray`` where a library needs contiguous memory.

    Input files are only ever opened for reading (NIfTI maps are copy-on-write).
    Warnings from the DICOM library are caught where DICOM is read (they can quote
    header values, i.e. patient data) and turned into checks and notes; the
    process-wide warnings filter is never changed.
    """
    p = Path(path)
    if series is not None and not p.is_dir():
        raise ScanLoadError(f"series={series!r} selects a series inside a folder, but {p.name} is not a folder.")
    if frame < 0:
        raise ScanLoadError(f"frame must be 0 or more, got {frame}.")
    if not p.exists():
        raise ScanLoadError(f"{p} does not exist. Check the path (and that the drive is mounted).")
    with voxel_budget(max_voxels):
        try:
            return _load(p, series, frame)
        except ScanLoadError:
            raise
        except MemoryError:
            raise out_of_memory(p.name or str(p)) from None
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
    check_regular_file(p)
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
