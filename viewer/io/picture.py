"""PNG, JPEG, BMP (Pillow) and TIFF (tifffile) pictures as planar 2D scans.

A picture has no patient geometry, so it is shown exactly as the file is: the planar
layout of :class:`Scan` (``data[i, j, 0]`` = column ``i``, row ``H − 1 − j``), pixel
size 1 × 1 (TIFF resolution tags are print sizes, not anatomy). Colour becomes BT.601
luma with a note; alpha is dropped. JPEG EXIF rotation is applied, because every photo
viewer applies it. The default window spans the file's full integer range (0–255 for
8-bit, 0–65535 for 16-bit), so the image looks as it does in other viewers.

A multi-page TIFF loads one page (``frame``, default the first) with a note: pages of
a TIFF are not guaranteed to be slices of one volume, and planar scans are 2D.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from viewer.io.dicom_pixels import LUMA
from viewer.io.errors import CorruptFileError, ScanLoadError, UnsupportedFormatError
from viewer.io.memory import ensure_fits
from viewer.io.scan import Scan

COLOUR_NOTE = "Colour picture converted to grey as 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601 luma)."


def load_picture(path: Path, frame: int = 0) -> Scan:
    """Read a picture file (see module docstring)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    notes: list[str] = []
    meta: dict[str, Any] = {}
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        pixels, fmt = _read_tiff(path, frame, notes, meta)
    else:
        pixels, fmt = _read_pillow(path, frame, notes, meta)
    return planar_scan(pixels, path, fmt, notes, meta)


def planar_scan(pixels: np.ndarray, path: Path, fmt: str, notes: list[str], meta: dict[str, Any]) -> Scan:
    """A planar scan of a ``(H, W)`` or ``(H, W, C)`` picture array."""
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] == 2:  # grey + alpha
        notes.append("Alpha channel dropped.")
        pixels = pixels[:, :, 0]
    window = _full_range(pixels.dtype)
    if pixels.ndim == 3:
        if pixels.shape[2] == 4:
            notes.append("Alpha channel dropped.")
        if pixels.shape[2] < 3:
            raise UnsupportedFormatError(f"{path.name} has {pixels.shape[2]} channels per pixel; expected 1, 3 or 4.")
        notes.append(COLOUR_NOTE)
        meta["channels"] = int(pixels.shape[2])
        grey = np.tensordot(pixels[:, :, :3].astype(np.float32), LUMA, axes=([2], [0]))
    elif pixels.ndim == 2:
        grey = pixels
    else:
        raise UnsupportedFormatError(f"{path.name} holds an image of shape {pixels.shape}; expected a 2D picture.")
    height, width = grey.shape
    ensure_fits((width, height, 1), path.name)
    data = np.ascontiguousarray(grey[::-1, :].T, dtype=np.float32)[:, :, np.newaxis]
    meta.update(format=fmt, width=int(width), height=int(height), dtype=str(pixels.dtype), notes=notes)
    if pixels.dtype.kind == "f":
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad:
            meta["nonfinite_voxels"] = bad
            notes.append(f"{bad} pixels are NaN or infinite; kept as they are (ignored by the display window).")
    return Scan(
        data=data,
        affine=np.eye(4),
        spacing=(1.0, 1.0, 1.0),
        modality="unknown",
        window=window,
        meta=meta,
        source=f"{fmt} picture {path.name} ({width}×{height})",
        planar=True,
        path=str(path),
    )


def _full_range(dtype: np.dtype) -> tuple[float, float] | None:
    if dtype == np.bool_:
        return 0.5, 1.0
    if dtype.kind == "u":
        top = float(np.iinfo(dtype).max)
        return top / 2.0, top
    return None  # signed or float: no natural range; the display uses a robust window


def _read_pillow(path: Path, frame: int, notes: list[str], meta: dict[str, Any]) -> tuple[np.ndarray, str]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            fmt = img.format or path.suffix.lstrip(".").upper()
            n = int(getattr(img, "n_frames", 1) or 1)
            if not 0 <= frame < n:
                raise ScanLoadError(f"{path.name} has {n} frame(s); choose frame 0 to {n - 1}.")
            if n > 1:
                img.seek(frame)
                meta.update(frames=n, frame=frame)
                notes.append(f"{n} frames in the file; showing frame {frame}.")
            ensure_fits((img.width, img.height, 1), path.name, extra_bytes=img.width * img.height * 4)
            if _exif_rotated(img):
                notes.append("EXIF orientation applied, as photo viewers show the picture.")
            img = ImageOps.exif_transpose(img)
            img.load()
            mode = img.mode
            meta["mode"] = mode
            if mode in ("P", "PA"):
                img = img.convert("RGBA" if "transparency" in img.info or mode == "PA" else "RGB")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                img = img.convert("RGB")
            elif mode == "1":
                img = img.convert("L")
            return np.asarray(img), fmt
    except ScanLoadError:
        raise
    except UnidentifiedImageError:
        raise UnsupportedFormatError(
            f"{path.name} is not a picture Pillow can identify; open PNG, JPEG, TIFF or BMP."
        ) from None
    except Image.DecompressionBombError:
        raise ScanLoadError(
            f"{path.name} is an extremely large picture (Pillow refuses it as a possible decompression bomb). "
            "Downsample it with an image editor and open the smaller copy."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptFileError(
            f"{path.name}: the picture could not be decoded ({type(exc).__name__}: {exc}). "
            "The file is probably truncated; copy or save it again."
        ) from None


def _exif_rotated(img: Any) -> bool:
    try:
        return int(img.getexif().get(0x0112, 1)) not in (0, 1)
    except Exception:  # noqa: BLE001
        return False


def _read_tiff(path: Path, frame: int, notes: list[str], meta: dict[str, Any]) -> tuple[np.ndarray, str]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            pages = tif.pages
            n = len(pages)
            if n == 0:
                raise CorruptFileError(f"{path.name} is a damaged TIFF: it holds no readable image page.")
            if not 0 <= frame < n:
                raise ScanLoadError(f"{path.name} has {n} page(s); choose frame 0 to {n - 1}.")
            page = pages[frame]
            if n > 1:
                meta.update(frames=n, frame=frame)
                notes.append(f"Multi-page TIFF with {n} pages; showing page {frame} (choose with frame=...).")
            shape = page.shape
            ensure_fits((int(np.prod(shape)),), path.name, extra_bytes=int(np.prod(shape)) * page.dtype.itemsize)
            arr = page.asarray()
            axes = page.axes
            meta["photometric"] = str(getattr(page.photometric, "name", page.photometric))
    except ScanLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for damaged files
        raise CorruptFileError(
            f"{path.name}: the TIFF could not be decoded ({type(exc).__name__}: {exc}). "
            "The file is probably truncated or uses a compression tifffile cannot read; save it again uncompressed."
        ) from None
    # bring samples last: tifffile gives 'YXS' (contiguous) or 'SYX' (planar)
    if axes.startswith("S") and arr.ndim == 3:
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim > 3:
        raise UnsupportedFormatError(f"{path.name}: TIFF page with axes {axes} is not a 2D picture.")
    if meta.get("photometric") == "MINISWHITE":
        top = np.iinfo(arr.dtype).max if arr.dtype.kind in "ui" else float(np.nanmax(arr))
        arr = top - arr
        notes.append("MINISWHITE TIFF inverted so that high values are bright, as viewers show it.")
    if meta.get("photometric") == "PALETTE":
        with tifffile.TiffFile(path) as tif:
            cmap = tif.pages[frame].colormap
        if cmap is not None:
            arr = np.moveaxis(cmap[:, arr], 0, -1)
    return arr, "TIFF"
