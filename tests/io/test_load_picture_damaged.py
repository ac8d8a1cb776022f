"""Damaged or unusual pictures that used to load as silently wrong images."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from viewer.io import CorruptFileError, ScanLoadError, UnsupportedFormatError, load_scan
from viewer.io.png_check import missing_rows


def file_view(scan) -> np.ndarray:
    return scan.data[:, ::-1, 0].T


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def short_png(width: int, height: int, rows_written: int) -> bytes:
    """An 8-bit grey PNG whose (complete, valid) zlib stream holds only ``rows_written`` rows."""
    raw = b"".join(b"\x00" + bytes((r * 10 + c) % 256 for c in range(width)) for r in range(rows_written))
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


def test_png_with_fewer_rows_than_its_header_is_refused(tmp_path):
    (tmp_path / "short.png").write_bytes(short_png(6, 8, 4))
    with pytest.raises(CorruptFileError) as info:
        load_scan(tmp_path / "short.png")
    assert str(info.value).startswith("short.png: the image data holds only 4 of the 8 rows its header promises")
    assert "shown as black" in str(info.value)


ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))


def interlaced_png(image: np.ndarray, keep_bytes: int | None = None) -> bytes:
    """An 8-bit grey Adam7-interlaced PNG of ``image``, its filtered data cut to ``keep_bytes`` if given."""
    height, width = image.shape
    raw = b""
    for row0, col0, row_step, col_step in ADAM7:
        sub = image[row0::row_step, col0::col_step]
        if sub.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)
    raw = raw if keep_bytes is None else raw[:keep_bytes]
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 1))
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


def test_interlaced_png_complete_and_short(tmp_path):
    image = (np.arange(9 * 11).reshape(9, 11) * 2 % 256).astype(np.uint8)
    (tmp_path / "i.png").write_bytes(interlaced_png(image))
    np.testing.assert_array_equal(file_view(load_scan(tmp_path / "i.png")), image.astype(np.float32))
    (tmp_path / "short.png").write_bytes(interlaced_png(image, keep_bytes=40))
    with pytest.raises(CorruptFileError, match="short.png: the image data holds only .* of the 9 rows"):
        load_scan(tmp_path / "short.png")


def test_complete_handmade_png_loads_exactly(tmp_path):
    (tmp_path / "full.png").write_bytes(short_png(6, 8, 8))
    scan = load_scan(tmp_path / "full.png")
    expected = np.array([[(r * 10 + c) % 256 for c in range(6)] for r in range(8)], np.float32)
    np.testing.assert_array_equal(file_view(scan), expected)


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "LA", "I;16"])
def test_valid_pngs_of_every_mode_pass_the_row_check(tmp_path, mode):
    rng = np.random.default_rng(5)
    base = Image.fromarray(rng.integers(0, 256, size=(13, 11, 3)).astype(np.uint8))
    img = base.convert(mode) if mode != "I;16" else Image.fromarray(rng.integers(0, 65535, (13, 11)).astype(np.uint16))
    img.save(tmp_path / "ok.png")
    assert missing_rows(tmp_path / "ok.png") is None
    assert load_scan(tmp_path / "ok.png").shape == (11, 13, 1)


def test_float_miniswhite_tiff_with_one_infinite_pixel(tmp_path):
    pixels = np.array([[0, 1, 2], [3, np.inf, 5]], np.float32)
    tifffile.imwrite(tmp_path / "mw.tif", pixels, photometric="miniswhite")
    scan = load_scan(tmp_path / "mw.tif")
    expected = 5 - pixels  # top = the largest finite value
    np.testing.assert_array_equal(file_view(scan), expected)
    assert expected[1, 1] == -np.inf and scan.meta["nonfinite_voxels"] == 1
    notes = scan.meta["notes"]
    assert any("5 − value" in n and "MINISWHITE" in n for n in notes)
    assert any(n.startswith("1 of the 6 pixels (16.7 %) hold no number (NaN) or an infinite value") for n in notes)


def test_integer_miniswhite_tiff_keeps_its_full_range_window(tmp_path):
    pixels = np.array([[0, 10], [200, 255]], np.uint8)
    tifffile.imwrite(tmp_path / "mw8.tif", pixels, photometric="miniswhite")
    scan = load_scan(tmp_path / "mw8.tif")
    np.testing.assert_array_equal(file_view(scan), 255 - pixels.astype(np.float32))
    assert scan.window == (127.5, 255.0)


def test_complex_tiff_is_refused_not_cut_to_its_real_part(tmp_path):
    tifffile.imwrite(tmp_path / "c.tif", np.array([[1 + 2j, 3 + 4j]], np.complex64))
    with pytest.raises(UnsupportedFormatError, match="c.tif holds complex numbers .* will not silently drop the "
                                                     "imaginary part"):
        load_scan(tmp_path / "c.tif")


def test_pillow_bomb_limit_names_the_size(tmp_path):
    """Above Pillow's own limit (about 179 million pixels) Pillow refuses; the message says so."""
    width, height = 15000, 12000
    data = zlib.compress(bytes((1 + width) * height), 9)
    (tmp_path / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                       8, 0, 0, 0, 0)) + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))
    with pytest.raises(ScanLoadError) as info:
        load_scan(tmp_path / "big.png")
    assert "180000000 pixels" in str(info.value) and "decompression bomb" in str(info.value)
