"""Which reader a file needs, decided from its first bytes and, failing that, its name.

Content comes first because DICOM files often have no extension and files get
mis-named; the name decides only when the bytes say nothing (raw Analyze ``.img``).
Also the check that a path is a regular file at all. Kept apart from
:mod:`viewer.io.load` so the readers (the DICOM folder scan, NIfTI pairs) can use it
without importing the entry point that imports them.
"""

from __future__ import annotations

import gzip
import stat
from pathlib import Path

from viewer.io.errors import ScanLoadError, UnsupportedFormatError

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
NIFTI_NAMES = (".nii", ".nii.gz", ".hdr", ".img", ".mgz", ".mgh", ".hdr.gz", ".img.gz")


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
    if is_nifti_header(head) or (head.startswith(b"\x1f\x8b") and _gz_is_nifti(path)):
        return "nifti"
    if name.endswith(NIFTI_NAMES):
        return "nifti"
    if name.endswith(PICTURE_SUFFIXES):
        return "picture"
    if looks_like_headerless_dicom(head) or name.endswith((".dcm", ".dicom", ".ima")):
        return "dicom"
    return None


def looks_like_headerless_dicom(head: bytes) -> bool:
    """DICOM written without the 128-byte preamble: starts with a group 0002 or 0008 tag."""
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00")


def is_nifti_header(head: bytes) -> bool:
    """A NIfTI-1/2 (or Analyze) header: its first field is the header size, 348 or 540, in either byte order."""
    if len(head) < 348:
        return False
    size_le = int.from_bytes(head[:4], "little")
    size_be = int.from_bytes(head[:4], "big")
    return size_le in (348, 540) or size_be in (348, 540)


def _gz_is_nifti(path: Path) -> bool:
    try:
        with gzip.open(path, "rb") as fh:
            return is_nifti_header(fh.read(544))
    except (OSError, EOFError):
        return path.name.lower().endswith((".nii.gz", ".mgz"))


_SPECIAL = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
            stat.S_IFSOCK: "a socket"}


def check_regular_file(path: Path) -> None:
    """Refuse pipes, devices and sockets (symbolic links to files are fine).

    Opening a named pipe blocks until something writes to it, and a device may never
    end, so either would hang the reader with no way for the user to stop it.
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ScanLoadError(f"{path.name} cannot be read ({exc.strerror}).") from None
    if not stat.S_ISREG(mode):
        what = _SPECIAL.get(stat.S_IFMT(mode), "a special file")
        raise UnsupportedFormatError(
            f"{path.name} is {what}, not a file saved on disk; reading it could wait forever. "
            "Save the scan to a file and open that file."
        )
