"""Single DICOM files: values vs pydicom, geometry, colour, MONOCHROME1, multi-frame, codecs."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicom_writer import ct_slice
from pydicom.pixels import apply_color_lut, apply_modality_lut
from pydicom.pixels.decoders.base import Decoder
from scan_data import dicom_file

from viewer.io import CorruptFileError, MissingDecoderError, NoPixelDataError, load_scan

LUMA = np.array([0.299, 0.587, 0.114])


def pixel_world_ras(ipp, iop, spacing_rc, rows, cols) -> np.ndarray:
    """RAS world position of every file pixel (row r, column c), straight from the DICOM standard."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    row_dir, col_dir = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    lps = np.asarray(ipp, float) + c[..., None] * spacing_rc[1] * row_dir + r[..., None] * spacing_rc[0] * col_dir
    return lps * np.array([-1.0, -1.0, 1.0])


def assert_at_world(scan, world: np.ndarray, values: np.ndarray) -> None:
    """The scan holds ``values`` at voxel centres that sit exactly at ``world``."""
    ijk_f = scan.world_to_voxel(world.reshape(-1, 3))
    ijk = np.rint(ijk_f).astype(int)
    np.testing.assert_allclose(ijk_f, ijk, atol=1e-3)
    for axis in range(3):
        assert ijk[:, axis].min() >= 0 and ijk[:, axis].max() < scan.shape[axis]
    np.testing.assert_allclose(scan.data[ijk[:, 0], ijk[:, 1], ijk[:, 2]], values.reshape(-1), rtol=1e-6)


def planar_file_view(scan) -> np.ndarray:
    """Undo the planar layout: the (rows, cols) image as the file stores it."""
    return scan.data[:, ::-1, 0].T


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR2_UNCR.dcm", "693_UNCR.dcm"])
def test_geometric_slice_values_and_world_positions(name):
    path = dicom_file(name)
    ds = pydicom.dcmread(path)
    expected = apply_modality_lut(ds.pixel_array, ds)
    scan = load_scan(path)
    assert scan.shape[2] == 1 or scan.shape.count(1) == 1
    assert not scan.planar and scan.modality == ds.Modality and scan.data.dtype == np.float32
    world = pixel_world_ras(ds.ImagePositionPatient, ds.ImageOrientationPatient,
                            [float(v) for v in ds.PixelSpacing], ds.Rows, ds.Columns)
    assert_at_world(scan, world, expected)
    import nibabel as nib

    assert nib.aff2axcodes(scan.affine) == ("R", "A", "S")


def test_ct_small_hounsfield_and_spacing():
    scan = load_scan(dicom_file("CT_small.dcm"))
    ds = pydicom.dcmread(dicom_file("CT_small.dcm"))
    assert float(ds.RescaleIntercept) != 0  # the test means something
    assert scan.data.min() == pytest.approx(float(apply_modality_lut(ds.pixel_array, ds).min()))
    assert scan.spacing[:2] == pytest.approx((float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0])))
    assert scan.meta["TransferSyntax"] == "Explicit VR Little Endian"
    assert scan.meta["Rows"] == 128 and "notes" in scan.meta


def test_window_from_file_first_value(tmp_path):
    ds = ct_slice(np.full((4, 5), 1000, np.uint16), (0, 0, 0), window=None)
    ds.WindowCenter, ds.WindowWidth = [40.0, 400.0], [400.0, 2000.0]
    ds.save_as(tmp_path / "w.dcm", enforce_file_format=True)
    scan = load_scan(tmp_path / "w.dcm")
    assert scan.window == (40.0, 400.0)
    np.testing.assert_array_equal(scan.data, np.full((5, 4, 1), 1000 - 1024, np.float32))


@pytest.mark.parametrize("variant", ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm",
                                     "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_expb.dcm"])
def test_compressed_and_other_syntaxes_decode_identically(variant):
    reference = load_scan(dicom_file("MR_small.dcm"))
    scan = load_scan(dicom_file(variant))
    np.testing.assert_array_equal(scan.data, reference.data)
    np.testing.assert_allclose(scan.affine, reference.affine)
    assert scan.window == reference.window == (600.0, 1600.0)


@pytest.mark.parametrize("pair", [("693_J2KR.dcm", "693_UNCR.dcm"), ("US1_J2KR.dcm", "US1_UNCR.dcm"),
                                  ("RG3_J2KR.dcm", "RG3_UNCR.dcm")])
def test_jpeg2000_lossless_matches_uncompressed(pair):
    a, b = (load_scan(dicom_file(n)) for n in pair)
    np.testing.assert_allclose(a.data, b.data, atol=1e-3)


def test_jpeg_baseline_close_to_source():
    jpeg = load_scan(dicom_file("SC_rgb_jpeg_dcmtk.dcm"))
    raw = load_scan(dicom_file("SC_rgb.dcm"))
    assert np.abs(jpeg.data - raw.data).mean() < 3.0


def test_monochrome1_inverted_with_window():
    path = dicom_file("RG3_UNCR.dcm")
    ds = pydicom.dcmread(path)
    scan = load_scan(path)
    assert scan.planar and scan.is_2d
    k = scan.meta["monochrome1_inverted"]
    assert k == 2 ** int(ds.BitsStored) - 1  # unsigned, no rescale: K = 0 + max
    np.testing.assert_array_equal(planar_file_view(scan), k - ds.pixel_array.astype(np.float32))
    centre = float(ds.WindowCenter[0] if ds["WindowCenter"].VM > 1 else ds.WindowCenter)
    assert scan.window[0] == pytest.approx(k - centre)
    assert any("MONOCHROME1" in n for n in scan.meta["notes"])


def test_rgb_to_grey_and_planar_layout():
    path = dicom_file("SC_rgb.dcm")
    rgb = pydicom.dcmread(path).pixel_array.astype(np.float64)
    scan = load_scan(path)
    assert scan.planar and scan.shape == (100, 100, 1)
    np.testing.assert_allclose(planar_file_view(scan), rgb @ LUMA, atol=1e-3)
    # layout: data[i, j, 0] is column i of row H-1-j
    assert scan.data[3, 0, 0] == pytest.approx(rgb[99, 3] @ LUMA, abs=1e-3)
    assert scan.window == (127.5, 255.0)
    assert any("grey" in n for n in scan.meta["notes"])


def test_ybr_converted_like_rgb():
    ybr = load_scan(dicom_file("SC_ybr_full_uncompressed.dcm"))
    rgb = load_scan(dicom_file("SC_rgb.dcm"))
    assert np.abs(ybr.data - rgb.data).max() <= 2.0


def test_palette_colour():
    path = dicom_file("OBXXXX1A.dcm")
    ds = pydicom.dcmread(path)
    expected = apply_color_lut(ds.pixel_array, ds).astype(np.float64) @ LUMA
    np.testing.assert_allclose(planar_file_view(load_scan(path)), expected, rtol=1e-5)


def test_modality_lut_sequence():
    path = dicom_file("mlut_18.dcm")
    ds = pydicom.dcmread(path)
    assert "ModalityLUTSequence" in ds
    np.testing.assert_array_equal(planar_file_view(load_scan(path)), apply_modality_lut(ds.pixel_array, ds))


def test_planar_spacing_from_imager_pixel_spacing(tmp_path):
    ds = ct_slice(np.arange(12, dtype=np.uint16).reshape(3, 4), (0, 0, 0), window=None)
    del ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing
    ds.Modality = "DX"
    ds.ImagerPixelSpacing = [0.2, 0.15]
    ds.save_as(tmp_path / "dx.dcm", enforce_file_format=True)
    scan = load_scan(tmp_path / "dx.dcm")
    assert scan.planar and scan.spacing == (0.15, 0.2, 1.0)
    np.testing.assert_allclose(scan.affine, np.diag([0.15, 0.2, 1.0, 1.0]))
    np.testing.assert_array_equal(planar_file_view(scan), np.arange(12).reshape(3, 4) - 1024.0)


def test_enhanced_multiframe_per_frame_positions():
    path = dicom_file("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    scan = load_scan(path)
    assert scan.shape == (512, 512, 2) and not scan.planar
    assert scan.window == (49.0, 102.0)
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = shared.PlaneOrientationSequence[0].ImageOrientationPatient
    spacing = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
    frames = ds.pixel_array.astype(np.float32) - 1024.0  # shared rescale intercept
    for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        ipp = item.PlanePositionSequence[0].ImagePositionPatient
        world = pixel_world_ras(ipp, iop, spacing, ds.Rows, ds.Columns)
        assert_at_world(scan, world, frames[f])


def test_rt_dose_grid_frames_scaled():
    path = dicom_file("rtdose.dcm")
    ds = pydicom.dcmread(path)
    scan = load_scan(path)
    assert scan.shape == (10, 10, 15) and scan.spacing == pytest.approx((10.0, 10.0, 5.0))
    dose = ds.pixel_array * float(ds.DoseGridScaling)
    offsets = [float(o) for o in ds.GridFrameOffsetVector]
    for f in (0, 7, 14):
        ipp = np.asarray(ds.ImagePositionPatient, float) + np.array([0, 0, offsets[f] - offsets[0]])
        world = pixel_world_ras(ipp, ds.ImageOrientationPatient, [float(v) for v in ds.PixelSpacing], 10, 10)
        assert_at_world(scan, world, dose[f])


def test_preamble_less_file_is_read():
    scan = load_scan(dicom_file("OT-PAL-8-face.dcm"))
    assert scan.planar and scan.shape == (640, 480, 1)


@pytest.mark.parametrize("name,kind", [("rtplan.dcm", "RT Plan"), ("rtstruct.dcm", "RT Structure Set"),
                                       ("test-SR.dcm", "Comprehensive SR"), ("waveform_ecg.dcm", "ECG")])
def test_objects_without_pixels_say_what_they_are(name, kind):
    with pytest.raises(NoPixelDataError, match=kind):
        load_scan(dicom_file(name))


# JPEG-lossy.dcm is not here: GDCM decodes it (tests/io/test_dicom_codecs.py)
@pytest.mark.parametrize("name", ["MR_truncated.dcm", "emri_small_jpeg_2k_lossless_too_short.dcm"])
def test_damaged_files(name):
    with pytest.raises(CorruptFileError):
        load_scan(dicom_file(name))


def test_missing_decoder_names_syntax_and_package(monkeypatch):
    monkeypatch.setattr(Decoder, "is_available", property(lambda self: False))
    with pytest.raises(MissingDecoderError, match=r"JPEG 2000.*pip install pylibjpeg pylibjpeg-openjpeg"):
        load_scan(dicom_file("MR_small_jp2klossless.dcm"))
    with pytest.raises(MissingDecoderError, match=r"RLE Lossless"):
        load_scan(dicom_file("MR_small_RLE.dcm"))
    assert load_scan(dicom_file("MR_small.dcm")).shape == (64, 64, 1)  # uncompressed needs no decoder


def test_synthetic_enhanced_shuffled_frames_with_per_frame_rescale(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    enhanced_ct = "1.2.840.10008.5.1.4.1.1.2.1"
    rows, cols, n = 4, 6, 5
    frames = np.random.default_rng(3).integers(0, 3000, size=(n, rows, cols)).astype(np.uint16)
    order = [3, 0, 4, 1, 2]  # frame f lies at slice order[f]
    iop = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # sagittal
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = enhanced_ct
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = enhanced_ct, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID = "CT", generate_uid()
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, n
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    shared = Dataset()
    orientation, measures = Dataset(), Dataset()
    orientation.ImageOrientationPatient = iop
    measures.PixelSpacing, measures.SliceThickness = [0.5, 0.6], 1.0
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame, positions, slopes = [], [], []
    for f in range(n):
        item, pos, pvt = Dataset(), Dataset(), Dataset()
        pos.ImagePositionPatient = [7.0 - 2.0 * order[f], -3.0, 12.0]  # slices step towards patient right
        pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = 1.0 + f, -100.0, "HU"
        item.PlanePositionSequence = Sequence([pos])
        item.PixelValueTransformationSequence = Sequence([pvt])
        per_frame.append(item)
        positions.append(pos.ImagePositionPatient)
        slopes.append(1.0 + f)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = frames.tobytes()
    ds.save_as(tmp_path / "enh.dcm", enforce_file_format=True)

    scan = load_scan(tmp_path / "enh.dcm")
    assert sorted(scan.shape) == sorted((cols, rows, n)) and scan.spacing[0] == pytest.approx(2.0)
    for f in range(n):
        world = pixel_world_ras(positions[f], iop, (0.5, 0.6), rows, cols)
        assert_at_world(scan, world, frames[f] * slopes[f] - 100.0)
