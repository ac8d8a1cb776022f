"""PNG, JPEG, BMP (Pillow) and TIFF (tifffile) pictures as planar 2D scans.

A picture has no patient geometry, so it is shown exactly as the file is: the planar
layout of :class:`Scan` (``data[i, j, 0]`` = column ``i``, row ``H − 1 − j``), pixel
size 1 × 1 (TIFF resolution tags are print sizes, not anatomy). Colour becomes BT.601
luma with a note; alpha is dropped. JPEG EXIF rotation is applied, because every photo
viewer applies it. The default window spans the file's full integer range (0–255 for
8-bit, 0–65535 for 16-bit), so the image looks as it does in other viewers.

A multi-page TIFF loads one page (``frame``, default the first) with a note: pages of
a TIFF are not guaranteed to be slices of one volume, and planar scans are 2D.

Sizes are checked from the header, before decoding, against the voxel budget
(:mod:`viewer.io.memory`); a PNG whose data holds fewer rows than its header says is
refused (:mod:`viewer.io.png_check`) rather than shown with black rows; complex-valued
TIFFs are refused rather than silently reduced to their real part.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from viewer.io.dicom_pixels import LUMA
from viewer.io.errors import CorruptFileError, ScanLoadError, UnsupportedFormatError
from viewer.io.memory import ensure_fits, out_of_memory
from viewer.io.notes import ALPHA, COLOUR, nonfinite_count, nonfinite_note
from viewer.io.png_check import missing_rows
from viewer.io.scan import Scan


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
    if pixels.dtype.kind == "c":
        raise UnsupportedFormatError(
            f"{path.name} holds complex numbers ({pixels.dtype}), e.g. raw MR data; lrp-viewer shows one real value "
            "per pixel and will not silently drop the imaginary part. Save the magnitude (or the phase) as a "
            "separate image and open that."
        )
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] == 2:  # grey + alpha
        notes.append(ALPHA)
        pixels = pixels[:, :, 0]
    window = _full_range(pixels.dtype)
    if pixels.ndim == 3:
        if pixels.shape[2] == 4:
            notes.append(ALPHA)
        if pixels.shape[2] < 3:
            raise UnsupportedFormatError(f"{path.name} has {pixels.shape[2]} channels per pixel; expected 1, 3 or 4.")
        notes.append(COLOUR)
        meta["channels"] = int(pixels.shape[2])
    elif pixels.ndim != 2:
        raise UnsupportedFormatError(f"{path.name} holds an image of shape {pixels.shape}; expected a 2D picture.")
    height, width = pixels.shape[:2]
    ensure_fits((width, height, 1), path.name, extra_bytes=height * width * 4 if pixels.ndim == 3 else 0)
    # data[i, j, 0] = file[H-1-j, i]: rows reversed on the destination, so the source is read in order
    rows_first = np.empty((height, width), dtype=np.float32)
    target = rows_first[::-1]
    if pixels.ndim == 3:
        np.multiply(pixels[:, :, 0], LUMA[0], out=target, casting="unsafe")
        for c in (1, 2):
            target += pixels[:, :, c] * LUMA[c]
    else:
        target[...] = pixels
    data = np.ascontiguousarray(rows_first.T)[:, :, np.newaxis]
    del rows_first, target
    meta.update(format=fmt, width=int(width), height=int(height), dtype=str(pixels.dtype), notes=notes)
    if pixels.dtype.kind == "f":
        bad = nonfinite_count(data)
        if bad:
            meta["nonfinite_voxels"] = bad
            notes.append(nonfinite_note(bad, data.size, "pixels"))
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
        with warnings.catch_warnings():
            # Pillow warns above ~89 million pixels; the voxel budget below decides instead (a local filter,
            # for this one category, so nothing else is hidden)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img_file = Image.open(path)
        with img_file as img:
            fmt = img.format or path.suffix.lstrip(".").upper()
            n = int(getattr(img, "n_frames", 1) or 1)
            if not 0 <= frame < n:
                raise ScanLoadError(f"{path.name} has {n} frame(s); choose frame 0 to {n - 1}.")
            if n > 1:
                img.seek(frame)
                meta.update(frames=n, frame=frame)
                notes.append(f"The file holds {n} pictures (frames); showing frame {frame} (numbered from 0).")
            bands = len(img.getbands())
            ensure_fits((img.width, img.height, 1), path.name, extra_bytes=img.width * img.height * 4 * bands * 2)
            if fmt == "PNG" and frame == 0:
                _check_png_rows(path)
            if _exif_rotated(img):
                notes.append("The picture was turned as its EXIF orientation tag asks, as photo viewers show it.")
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
    except MemoryError:
        raise out_of_memory(path.name) from None
    except UnidentifiedImageError:
        raise UnsupportedFormatError(
            f"{path.name} is not a picture Pillow can identify; open PNG, JPEG, TIFF or BMP."
        ) from None
    except Image.DecompressionBombError as exc:
        raise ScanLoadError(
            f"{path.name} is too large for the picture library Pillow, which refuses it as a possible "
            f"decompression bomb ({exc}). Downsample it with an image editor, or save it as TIFF, and open that."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptFileError(
            f"{path.name}: the picture could not be decoded ({type(exc).__name__}: {exc}). "
            "The file is probably truncated; copy or save it again."
        ) from None


def _check_png_rows(path: Path) -> None:
    short = missing_rows(path)
    if short is not None:
        present, height = short
        raise CorruptFileError(
            f"{path.name}: the image data holds only {present} of the {height} rows its header promises; the rest "
            "would be shown as black. The file is truncated or damaged; save or copy it again."
        )


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
                notes.append(f"The TIFF holds {n} pages, which need not be slices of one scan; showing page {frame} "
                             "(numbered from 0; choose another with frame=...).")
            width, height = int(page.imagewidth), int(page.imagelength)
            samples = int(np.prod(page.shape, dtype=np.int64)) // max(width * height, 1)
            decoded = int(np.prod(page.shape, dtype=np.int64)) * page.dtype.itemsize
            ensure_fits((width, height, 1), path.name, extra_bytes=decoded * 2 + width * height * 4 * min(samples, 2))
            arr = page.asarray()
            axes = page.axes
            meta["photometric"] = str(getattr(page.photometric, "name", page.photometric))
    except ScanLoadError:
        raise
    except MemoryError:
        raise out_of_memory(path.name) from None
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
    if meta.get("photometric") == "MINISWHITE" and arr.dtype.kind != "c":
        arr = _invert_miniswhite(arr, notes)
    if meta.get("photometric") == "PALETTE":
        with tifffile.TiffFile(path) as tif:
            cmap = tif.pages[frame].colormap
        if cmap is not None:
            arr = np.moveaxis(cmap[:, arr], 0, -1)
    return arr, "TIFF"


def _invert_miniswhite(arr: np.ndarray, notes: list[str]) -> np.ndarray:
    """High = dark in the file: ``top − v`` with ``top`` the type's maximum, or for floats the largest finite value.

    A float image's largest value may be infinite (one bad pixel); taking it as ``top``
    made every pixel NaN or infinite, so only finite values count.
    """
    if arr.dtype.kind == "u":
        top = float(np.iinfo(arr.dtype).max)
        out = np.iinfo(arr.dtype).max - arr  # stays unsigned, so the full-range window still applies
    elif arr.dtype.kind in "ib":
        top = float(np.iinfo(arr.dtype).max) if arr.dtype.kind == "i" else 1.0
        out = top - arr.astype(np.float64)
    else:
        finite = arr[np.isfinite(arr)]
        top = float(finite.max()) if finite.size else 0.0
        with np.errstate(invalid="ignore", over="ignore"):
            out = np.subtract(arr.dtype.type(top), arr)
    notes.append(
        f"The file stores dark as high values (TIFF 'MINISWHITE'); values were turned round as {top:g} − value so "
        "that high is bright, as other viewers show it."
    )
    return out
