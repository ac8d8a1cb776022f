"""PNG/JPEG/TIFF/BMP pictures: shown exactly as the file (planar layout), bit depths, colour, pages."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from viewer.io import CorruptFileError, ScanLoadError, load_scan

H, W = 6, 9
LUMA = np.array([0.299, 0.587, 0.114])


def file_view(scan) -> np.ndarray:
    """The (H, W) picture back from the planar layout data[i, H-1-j, 0] = pixel(row j, column i)."""
    return scan.data[:, ::-1, 0].T


def gradient(dtype, top) -> np.ndarray:
    return (np.arange(H * W).reshape(H, W) * (top // (H * W))).astype(dtype)


def test_png_8bit_layout_exact(tmp_path):
    pixels = gradient(np.uint8, 255)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    scan = load_scan(tmp_path / "a.png")
    assert scan.planar and scan.shape == (W, H, 1) and scan.data.dtype == np.float32
    np.testing.assert_array_equal(file_view(scan), pixels)
    # top-left file pixel (row 0, column 0) is drawn at the top-left: i = 0, j = H-1
    assert scan.data[0, H - 1, 0] == pixels[0, 0]
    assert scan.data[W - 1, 0, 0] == pixels[H - 1, W - 1]
    assert scan.window == (127.5, 255.0) and scan.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(scan.affine, np.eye(4))


def test_png_16bit(tmp_path):
    pixels = gradient(np.uint16, 65535)
    Image.fromarray(pixels).save(tmp_path / "b.png")
    scan = load_scan(tmp_path / "b.png")
    np.testing.assert_array_equal(file_view(scan), pixels)
    assert scan.window == (32767.5, 65535.0)


def test_png_rgb_and_rgba_to_grey(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, size=(H, W, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    scan = load_scan(tmp_path / "c.png")
    np.testing.assert_allclose(file_view(scan), rgb @ LUMA, atol=1e-3)
    assert any("grey" in n for n in scan.meta["notes"])
    rgba = np.dstack([rgb, np.full((H, W), 7, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "d.png")
    scan = load_scan(tmp_path / "d.png")
    np.testing.assert_allclose(file_view(scan), rgb @ LUMA, atol=1e-3)
    assert any("Alpha" in n for n in scan.meta["notes"])


def test_palette_png(tmp_path):
    img = Image.fromarray(gradient(np.uint8, 255)).convert("P")
    img.save(tmp_path / "p.png")
    expected = np.asarray(img.convert("RGB")).astype(float) @ LUMA
    np.testing.assert_allclose(file_view(load_scan(tmp_path / "p.png")), expected, atol=1e-3)


def test_jpeg_grey(tmp_path):
    pixels = np.full((H * 4, W * 4), 100, np.uint8)
    pixels[:, : W * 2] = 200
    Image.fromarray(pixels).save(tmp_path / "e.jpg", quality=95)
    scan = load_scan(tmp_path / "e.jpg")
    assert np.abs(file_view(scan) - pixels).max() <= 4
    assert scan.meta["format"] == "JPEG"


@pytest.mark.parametrize("dtype,top", [(np.uint8, 255), (np.uint16, 65535)])
def test_tiff_bit_depths(tmp_path, dtype, top):
    pixels = gradient(dtype, top)
    tifffile.imwrite(tmp_path / "t.tif", pixels)
    scan = load_scan(tmp_path / "t.tif")
    np.testing.assert_array_equal(file_view(scan), pixels)
    assert scan.window == (top / 2.0, float(top))


def test_tiff_rgb_planar_config(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, size=(3, H, W)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "sep.tif", rgb, photometric="rgb", planarconfig="separate")
    np.testing.assert_allclose(file_view(load_scan(tmp_path / "sep.tif")),
                               np.moveaxis(rgb, 0, -1) @ LUMA, atol=1e-3)


def test_float_tiff_keeps_nan(tmp_path):
    pixels = np.linspace(-1, 1, H * W, dtype=np.float32).reshape(H, W)
    pixels[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "f.tif", pixels)
    scan = load_scan(tmp_path / "f.tif")
    np.testing.assert_array_equal(file_view(scan), pixels)
    assert scan.meta["nonfinite_voxels"] == 1 and scan.window is None


def test_multipage_tiff_loads_one_page(tmp_path):
    pages = np.stack([gradient(np.uint16, 65535) + k for k in range(3)])
    with tifffile.TiffWriter(tmp_path / "m.tif") as tif:
        for page in pages:
            tif.write(page, photometric="minisblack")
    scan = load_scan(tmp_path / "m.tif")
    assert scan.shape == (W, H, 1) and scan.meta["frames"] == 3
    np.testing.assert_array_equal(file_view(scan), pages[0])
    np.testing.assert_array_equal(file_view(load_scan(tmp_path / "m.tif", frame=2)), pages[2])
    with pytest.raises(ScanLoadError, match="frame 0 to 2"):
        load_scan(tmp_path / "m.tif", frame=3)


def test_exif_rotation_applied(tmp_path):
    pixels = gradient(np.uint8, 255)
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    img.save(tmp_path / "r.jpg", exif=exif, quality=100)
    scan = load_scan(tmp_path / "r.jpg")
    assert scan.shape == (H, W, 1)  # displayed W×H became H×W
    assert any("EXIF" in n for n in scan.meta["notes"])


def test_misnamed_file_detected_by_content(tmp_path):
    pixels = gradient(np.uint8, 255)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    (tmp_path / "x.png").rename(tmp_path / "picture.dat")
    np.testing.assert_array_equal(file_view(load_scan(tmp_path / "picture.dat")), pixels)


def test_truncated_png(tmp_path):
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64)).astype(np.uint8)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="truncated"):
        load_scan(tmp_path / "cut.png")
