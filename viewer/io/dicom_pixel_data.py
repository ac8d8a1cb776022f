"""The Pixel Data element itself: how long it must be, reading it directly, what decoding it costs.

Kept apart from :mod:`viewer.io.dicom_pixels` (values: decoding, rescale, windows)
because these look only at the element's position and length in the file and at the
header fields that fix them, before any pixel is decoded.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from viewer.io.dicom_meta import transfer_syntax

PIXEL_DATA = 0x7FE00010
UNDEFINED_LENGTH = 0xFFFFFFFF


_NATIVE = {
    "1.2.840.10008.1.2": "<",  # implicit VR little endian
    "1.2.840.10008.1.2.1": "<",  # explicit VR little endian
    "1.2.840.10008.1.2.2": ">",  # explicit VR big endian (retired)
}


def pixel_length_problem(ds: Dataset) -> str | None:
    """Why uncompressed pixel data cannot be what the header describes, or None.

    The header (Rows × Columns × frames × samples × BitsAllocated) fixes the length of
    uncompressed pixel data. If the data is shorter, or longer by a frame or more (the
    classic case: 16-bit pixels with BitsAllocated 8), pydicom reads the bytes with the
    wrong layout — values off by hundreds of HU — and only warns. Up to one frame of
    trailing bytes is padding and is ignored, as every DICOM reader does.
    """
    ts = transfer_syntax(ds)
    if ts is None or ts.is_compressed or PIXEL_DATA not in ds:
        return None
    raw = ds.get_item(PIXEL_DATA, keep_deferred=True)
    length = getattr(raw, "length", None)
    if length is None or getattr(raw, "value", None) is not None:
        value = ds.get_item(PIXEL_DATA).value
        length = len(value) if isinstance(value, (bytes, bytearray)) else None
    if length is None or length == UNDEFINED_LENGTH:
        return None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = max(int(ds.get("NumberOfFrames", 1) or 1), 1)
        allocated = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return None
    frame_bits = rows * cols * samples * allocated
    expected = (frame_bits * frames + 7) // 8
    frame_bytes = max((frame_bits + 7) // 8, 1)
    if expected <= length < expected + frame_bytes:
        return None
    if length < expected:
        what = f"{length:,} bytes, less than the {expected:,}"
    else:
        what = f"{length:,} bytes, {length / expected:.3g} times the {expected:,}"
    return (
        f"the pixel data holds {what} that its header describes ({rows} rows × {cols} columns × {frames} "
        f"frame(s) × {samples} sample(s) × {allocated} bits allocated). Header and pixels do not match (often a "
        "wrong BitsAllocated), so every pixel value would be wrong; the file is damaged. Export it again from "
        "the scanner or PACS."
    )


def read_native_frame(ds: Dataset, path: str) -> np.ndarray | None:
    """Stored values of a plain uncompressed single-frame greyscale file, read straight from disk.

    The common case of a CT/MR series. pydicom's general pipeline costs about as much
    as reading the file; this reads the bytes at the recorded offset of the deferred
    Pixel Data element and applies the same unused-bit correction pydicom does
    (mask for unsigned, sign-extend for signed). Returns None whenever any condition
    for that shortcut is not met, and the caller falls back to pydicom.
    """
    if PIXEL_DATA not in ds:
        return None
    raw = ds.get_item(PIXEL_DATA, keep_deferred=True)  # offset and length only; pixels not read
    ts = transfer_syntax(ds)
    if raw is None or ts is None or str(ts) not in _NATIVE or getattr(raw, "value", b"") is not None:
        return None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        allocated, stored = int(ds.BitsAllocated), int(ds.BitsStored)
        signed = int(ds.PixelRepresentation) == 1
        if (int(ds.get("SamplesPerPixel", 1) or 1) != 1 or allocated not in (8, 16, 32)
                or int(ds.get("NumberOfFrames", 1) or 1) != 1 or not 0 < stored <= allocated
                or not str(ds.get("PhotometricInterpretation", "")).startswith("MONOCHROME")):
            return None
    except (AttributeError, TypeError, ValueError):
        return None
    nbytes = rows * cols * allocated // 8
    if raw.length not in (nbytes, nbytes + 1):
        return None
    dtype = np.dtype(f"{_NATIVE[str(ts)]}{'i' if signed else 'u'}{allocated // 8}")
    buf = bytearray(nbytes)
    with open(path, "rb") as fh:
        fh.seek(raw.value_tell)
        if fh.readinto(buf) != nbytes:
            return None
    arr = np.frombuffer(buf, dtype=dtype).reshape(rows, cols)
    if stored < allocated:
        shift = allocated - stored
        if signed:
            arr <<= shift
            arr >>= shift
        else:
            arr &= dtype.type((1 << stored) - 1)
    return arr


def decoded_bytes(ds: Dataset, frames: int) -> int:
    """Memory that decoding ``frames`` frames of ``ds`` holds at once, for the reader's memory check.

    The decoded stored values, the colour → grey intermediates (float32 RGB and luma),
    and the file's own pixel bytes, which the dataset keeps while they are decoded.
    """
    try:
        plane = int(ds.Rows) * int(ds.Columns) * int(frames)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        item = max(int(ds.get("BitsAllocated") or 16) // 8, 1)
    except (AttributeError, TypeError, ValueError):
        return 0
    palette = str(ds.get("PhotometricInterpretation", "")).startswith("PALETTE")
    decoded = plane * (3 * 2 if palette else samples * item)
    if palette or samples > 1:
        decoded += plane * 3 * 4 + plane * 4
    raw = ds.get_item(PIXEL_DATA, keep_deferred=True) if PIXEL_DATA in ds else None
    length = getattr(raw, "length", None) or 0
    return decoded + (int(length) if length != UNDEFINED_LENGTH else plane * samples * item)
