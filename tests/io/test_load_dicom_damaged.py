"""Damaged DICOM headers that used to give silently wrong values: now an error, or the data plus a note."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from dicom_writer import ct_slice, write_series
from scan_data import dicom_file

from viewer.io import CorruptFileError, load_scan

PIXELS = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 100 + 1000)


def file_view(scan) -> np.ndarray:
    """(rows, cols) of a one-slice axial CT as the file stores it (LPS → RAS flipped both in-plane axes)."""
    return scan.data[::-1, ::-1, 0].T


def test_bits_allocated_8_for_16_bit_pixels_is_refused(tmp_path):
    ds = ct_slice(PIXELS, (0, 0, 0))
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.save_as(tmp_path / "ba8.dcm", enforce_file_format=True)
    with pytest.raises(CorruptFileError) as info:
        load_scan(tmp_path / "ba8.dcm")
    message = str(info.value)
    assert message.startswith("ba8.dcm: the pixel data holds 40 bytes, 2 times the 20")
    assert "8 bits allocated" in message and "every pixel value would be wrong" in message


def test_bits_allocated_32_for_16_bit_pixels_is_refused(tmp_path):
    ds = ct_slice(PIXELS, (0, 0, 0))
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 16, 15
    ds.save_as(tmp_path / "ba32.dcm", enforce_file_format=True)
    with pytest.raises(CorruptFileError, match="holds 40 bytes, less than the 80 that its header describes"):
        load_scan(tmp_path / "ba32.dcm")


def test_padding_shorter_than_a_frame_is_ignored_and_pydicom_warnings_stay_inside(tmp_path):
    ds = ct_slice(PIXELS, (0, 0, 0))
    ds.PixelData = ds.PixelData + b"\x00" * 6
    ds.save_as(tmp_path / "padded.dcm", enforce_file_format=True)
    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = load_scan(tmp_path / "padded.dcm")
    np.testing.assert_array_equal(file_view(scan), PIXELS.astype(np.float32) - 1024)
    assert [w for w in caught if "pydicom" in w.filename] == []  # pydicom warns about the padding, privately
    assert warnings.filters == filters  # the process-wide filter is untouched


def test_one_slice_of_a_series_with_wrong_bits_allocated_is_skipped_and_interpolated(tmp_path):
    volume = np.stack([PIXELS + 10 * k for k in range(5)])
    paths = write_series(tmp_path, volume, np.array([[0, 0, 2.0 * k] for k in range(5)]))
    bad = pydicom.dcmread(paths[2])
    bad.BitsAllocated, bad.BitsStored, bad.HighBit = 8, 8, 7
    bad.save_as(paths[2])
    scan = load_scan(tmp_path)
    assert scan.shape == (5, 4, 5)
    expected = volume.astype(np.float32) - 1024
    expected[2] = (expected[1] + expected[3]) / 2  # the missing slice is interpolated, and said so
    np.testing.assert_allclose(scan.data[::-1, ::-1, :].transpose(2, 1, 0), expected)
    notes = " ".join(scan.meta["notes"])
    assert "1 damaged file(s) whose pixel data does not match the image size in their header" in notes
    assert "slice_002.dcm" in notes and "missing from the scan" in notes and "resampled" in notes
    assert "slice_002.dcm" in scan.meta["skipped_unreadable"]


def test_series_where_every_file_is_mismatched_is_refused(tmp_path):
    paths = write_series(tmp_path, np.stack([PIXELS] * 2), np.array([[0, 0, 0.0], [0, 0, 2.0]]))
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.save_as(p)
    with pytest.raises(CorruptFileError, match="all 2 DICOM file.* pixel data does not match"):
        load_scan(tmp_path)


@pytest.mark.parametrize("slope,intercept,shown_slope,expected_offset", [
    (float("nan"), -1024.0, "not a number (NaN)", -1024.0),
    (0.0, -1024.0, "0", -1024.0),
    (float("inf"), -1024.0, "infinite", -1024.0),
])
def test_unusable_rescale_slope_uses_one_with_a_note(tmp_path, slope, intercept, shown_slope, expected_offset):
    ds = ct_slice(PIXELS, (0, 0, 0), slope=slope, intercept=intercept)
    ds.save_as(tmp_path / "s.dcm", enforce_file_format=True)
    scan = load_scan(tmp_path / "s.dcm")
    np.testing.assert_array_equal(file_view(scan), PIXELS.astype(np.float32) + expected_offset)
    note = scan.meta["notes"][0]
    assert note.startswith(f"The file's rescale slope is {shown_slope}, which would make every pixel")
    assert "slope 1 was used" in note and "do not measure on it" in note


def test_unreadable_intercept_uses_zero_with_a_note(tmp_path):
    ds = ct_slice(PIXELS, (0, 0, 0), slope=2.0, intercept=98765)
    ds.save_as(tmp_path / "i.dcm", enforce_file_format=True)
    data = (tmp_path / "i.dcm").read_bytes()
    assert data.count(b"98765") == 1
    (tmp_path / "i.dcm").write_bytes(data.replace(b"98765", b"abcde"))  # pydicom will not write a bad DS itself
    scan = load_scan(tmp_path / "i.dcm")
    np.testing.assert_array_equal(file_view(scan), PIXELS.astype(np.float32) * 2)
    assert any("rescale intercept is unreadable; intercept 0 was used" in n for n in scan.meta["notes"])


def test_one_slice_with_slope_zero_in_a_series(tmp_path):
    volume = np.stack([PIXELS + 10 * k for k in range(3)])
    paths = write_series(tmp_path, volume, np.array([[0, 0, 2.0 * k] for k in range(3)]))
    ds = pydicom.dcmread(paths[1])
    ds.RescaleSlope = 0
    ds.save_as(paths[1])
    scan = load_scan(tmp_path)
    np.testing.assert_array_equal(scan.data[::-1, ::-1, :].transpose(2, 1, 0), volume.astype(np.float32) - 1024)
    assert sum("rescale slope is 0" in n for n in scan.meta["notes"]) == 1


def test_zero_rows_is_refused(tmp_path):
    ds = ct_slice(PIXELS, (0, 0, 0))
    ds.Rows = 0
    ds.PixelData = b""
    ds.save_as(tmp_path / "empty.dcm", enforce_file_format=True)
    with pytest.raises(CorruptFileError, match="axis of length 0"):
        load_scan(tmp_path / "empty.dcm")


def test_real_file_values_unchanged_by_the_checks():
    path = dicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    scan = load_scan(path)
    assert not any("rescale" in n for n in scan.meta["notes"])
    assert float(scan.data.min()) == float(ds.pixel_array.min()) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
