"""Multi-frame DICOM without per-frame positions: stacked as a volume (MR/CT/PT/NM) or one frame (cine)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_color_lut
from scan_data import dicom_file
from test_load_dicom_file import assert_at_world, pixel_world_ras

from viewer.io import ScanLoadError, load_scan

LUMA = np.array([0.299, 0.587, 0.114])


def stacked_file_view(scan) -> np.ndarray:
    """Undo the planar layout of a stack: ``(frames, rows, cols)`` as the file stores it."""
    return scan.data[:, ::-1, :].transpose(2, 1, 0)


@pytest.mark.parametrize("name", ["emri_small.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_ls_lossless.dcm",
                                  "emri_small_jpeg_2k_lossless.dcm", "emri_small_big_endian.dcm"])
def test_enhanced_mr_without_functional_groups_stacks_ten_frames(name):
    path = dicom_file(name)
    frames = pydicom.dcmread(path).pixel_array
    scan = load_scan(path)
    assert scan.shape == (64, 64, 10) and scan.planar
    assert scan.spacing == (1.0, 1.0, 1.2)  # SpacingBetweenSlices 1.2; no pixel spacing in the file
    assert scan.meta["frames"] == 10 and scan.meta["geometry"] == "inferred"
    np.testing.assert_array_equal(stacked_file_view(scan), frames.astype(np.float32))
    assert scan.data.strides[0] > 0 and min(scan.data.strides) > 0
    notes = scan.meta["notes"]
    assert "10 frames carry no position or orientation" in notes[0]
    assert "1.2 mm apart" in notes[0] and "no orientation labels" in notes[0]
    assert any("no pixel size" in n and "1 × 1 mm" in n for n in notes)


def test_stacked_file_refuses_a_frame_choice():
    with pytest.raises(ScanLoadError, match="10 frames are the slices of one volume"):
        load_scan(dicom_file("emri_small.dcm"), frame=3)


@pytest.mark.parametrize("modality", ["US", "XA", "RF", "XRF", "OT"])
def test_cine_modalities_keep_one_frame_at_a_time(tmp_path, modality):
    ds = pydicom.dcmread(dicom_file("emri_small.dcm"))
    frames = ds.pixel_array
    ds.Modality = modality
    ds.save_as(tmp_path / "cine.dcm")
    scan = load_scan(tmp_path / "cine.dcm")
    assert scan.shape == (64, 64, 1) and scan.meta["frames"] == 10 and scan.meta["frame"] == 0
    np.testing.assert_array_equal(stacked_file_view(scan)[0], frames[0])
    np.testing.assert_array_equal(stacked_file_view(load_scan(tmp_path / "cine.dcm", frame=7))[0], frames[7])
    assert any("10 frames taken one after another" in n and "showing frame 0" in n for n in scan.meta["notes"])
    with pytest.raises(ScanLoadError, match="frame 0 to 9"):
        load_scan(tmp_path / "cine.dcm", frame=10)


def test_real_ultrasound_cine_keeps_one_frame():
    path = dicom_file("OBXXXX1A_2frame.dcm")
    ds = pydicom.dcmread(path)
    rgb = apply_color_lut(ds.pixel_array, ds).astype(np.float64)  # palette colour
    scan = load_scan(path, frame=1)
    assert scan.modality == "US" and scan.shape == (800, 600, 1) and scan.meta["frames"] == 2
    np.testing.assert_allclose(stacked_file_view(scan)[0], rgb[1] @ LUMA, atol=1e-3)
    assert any("2 frames taken one after another" in n for n in scan.meta["notes"])


def test_mr_frames_following_time_stay_a_cine(tmp_path):
    ds = pydicom.dcmread(dicom_file("emri_small.dcm"))
    ds.FrameTime = 40.0
    ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    ds.save_as(tmp_path / "mr_cine.dcm")
    scan = load_scan(tmp_path / "mr_cine.dcm")
    assert scan.shape == (64, 64, 1) and scan.meta["frames"] == 10


@pytest.mark.parametrize("pointer,stacked", [(None, False), ("SliceVector", True), ("TimeSlotVector", False)])
def test_nm_stacks_only_reconstructed_slices(tmp_path, pointer, stacked):
    ds = pydicom.dcmread(dicom_file("emri_small.dcm"))
    ds.Modality = "NM"
    if pointer is not None:
        ds.FrameIncrementPointer = pydicom.tag.Tag(pointer)
    ds.save_as(tmp_path / "nm.dcm")
    scan = load_scan(tmp_path / "nm.dcm")
    assert scan.shape == ((64, 64, 10) if stacked else (64, 64, 1))


def test_slice_thickness_or_one_millimetre_when_no_spacing_is_stated(tmp_path):
    ds = pydicom.dcmread(dicom_file("emri_small.dcm"))
    del ds.SpacingBetweenSlices
    ds.SliceThickness = 2.5
    ds.save_as(tmp_path / "thick.dcm")
    scan = load_scan(tmp_path / "thick.dcm")
    assert scan.spacing[2] == 2.5
    assert any("slice thickness (2.5 mm) was used as the spacing" in n for n in scan.meta["notes"])
    del ds.SliceThickness
    ds.save_as(tmp_path / "none.dcm")
    scan = load_scan(tmp_path / "none.dcm")
    assert scan.spacing[2] == 1.0
    assert any("neither spacing between slices nor slice thickness" in n for n in scan.meta["notes"])


def test_frames_sharing_one_position_stack_along_the_normal(tmp_path):
    ds = pydicom.dcmread(dicom_file("emri_small.dcm"))
    frames = ds.pixel_array
    ipp, iop, spacing = [10.0, -20.0, 30.0], [1.0, 0.0, 0.0, 0.0, 0.0, -1.0], [0.5, 0.75]  # coronal
    ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = ipp, iop, spacing
    ds.SpacingBetweenSlices = 3.0
    ds.save_as(tmp_path / "mf.dcm")
    scan = load_scan(tmp_path / "mf.dcm")
    assert not scan.planar and scan.meta["frames"] == 10 and scan.meta["geometry"] == "inferred"
    normal = np.cross(iop[:3], iop[3:])
    for k in (0, 4, 9):
        world = pixel_world_ras(np.array(ipp) + 3.0 * k * normal, iop, spacing, 64, 64)
        assert_at_world(scan, world, frames[k].astype(np.float32))
    assert "share one position" in scan.meta["notes"][0] and "3 mm apart" in scan.meta["notes"][0]


def test_folder_with_a_multiframe_mr_stacks_it(tmp_path):
    ds = pydicom.dcmread(dicom_file("emri_small.dcm"))
    ds.save_as(tmp_path / "IM0001")
    scan = load_scan(tmp_path)
    assert scan.shape == (64, 64, 10) and scan.meta["files"] == 1
    assert "10 frames carry no position" in " ".join(scan.meta["notes"])
