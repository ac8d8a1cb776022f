"""Writing maps with save_nifti: grid, affine, codes, header extras, atomicity, round trips."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from dicom_writer import write_series
from scan_data import dicom_file, nibabel_file

from viewer.io import ExportError, load_scan, save_nifti


def test_round_trip_keeps_values_and_world_positions(tmp_path):
    src = nibabel_file("anatomical.nii")  # LAS on disk
    original = nib.load(str(src))
    scan = load_scan(src)
    out = save_nifti(scan.data * 2.0, like=scan, path=tmp_path / "map.nii.gz")
    written = nib.load(str(out))
    assert written.get_data_dtype() == np.float32
    np.testing.assert_allclose(written.affine, scan.affine, atol=1e-6)
    np.testing.assert_array_equal(written.get_fdata(dtype=np.float32), scan.data * 2.0)
    # every original voxel's world position holds twice its value in the written map
    vals = original.get_fdata(dtype=np.float32)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in vals.shape], indexing="ij"), -1).reshape(-1, 3)
    xyz = ijk @ original.affine[:3, :3].T + original.affine[:3, 3]
    inv = np.linalg.inv(written.affine)
    w = np.rint(xyz @ inv[:3, :3].T + inv[:3, 3]).astype(int)
    np.testing.assert_array_equal(written.get_fdata()[w[:, 0], w[:, 1], w[:, 2]], 2.0 * vals.reshape(-1))
    # and reading it back gives the same scan grid
    again = load_scan(out)
    np.testing.assert_allclose(again.affine, scan.affine, atol=1e-6)


def test_codes_and_qform(tmp_path):
    scan = load_scan(nibabel_file("standard.nii.gz"))
    save_nifti(np.zeros(scan.shape), like=scan, path=tmp_path / "m.nii")
    hdr = nib.load(str(tmp_path / "m.nii")).header
    assert int(hdr["sform_code"]) == (scan.meta["sform_code"] or 1)
    assert int(hdr["qform_code"]) >= 1
    np.testing.assert_allclose(hdr.get_qform(), scan.affine, atol=1e-5)
    np.testing.assert_allclose(hdr.get_sform(), scan.affine, atol=1e-5)


def test_dicom_scan_map_gets_scanner_code(tmp_path):
    scan = load_scan(dicom_file("CT_small.dcm"))
    save_nifti(scan.data, like=scan, path=tmp_path / "ct.nii.gz")
    img = nib.load(str(tmp_path / "ct.nii.gz"))
    assert int(img.header["sform_code"]) == 1
    np.testing.assert_allclose(img.affine, scan.affine, atol=1e-5)
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), scan.data)


def test_sheared_series_affine_survives_in_sform(tmp_path):
    vol = np.random.default_rng(0).integers(0, 1000, size=(4, 6, 5)).astype(np.uint16)
    positions = np.array([[0.0, 0.3 * k, 2.0 * k] for k in range(4)])  # gantry tilt: y drifts
    write_series(tmp_path / "s", vol, positions)
    scan = load_scan(tmp_path / "s")
    save_nifti(scan.data, like=scan, path=tmp_path / "tilt.nii")
    np.testing.assert_allclose(nib.load(str(tmp_path / "tilt.nii")).affine, scan.affine, atol=1e-5)


def test_2d_scan_accepts_plane(tmp_path):
    scan = load_scan(dicom_file("SC_rgb.dcm"))
    plane = np.arange(100 * 100, dtype=np.float32).reshape(100, 100)
    save_nifti(plane, like=scan, path=tmp_path / "p.nii")
    data = nib.load(str(tmp_path / "p.nii")).get_fdata()
    assert data.shape == (100, 100, 1)
    np.testing.assert_array_equal(data[:, :, 0], plane)


def test_shape_mismatch_is_a_clear_value_error(tmp_path):
    scan = load_scan(nibabel_file("standard.nii.gz"))
    with pytest.raises(ValueError, match=r"expected \(4, 5, 7\)"):
        save_nifti(np.zeros((4, 5, 6)), like=scan, path=tmp_path / "bad.nii")
    assert not list(tmp_path.iterdir())


def test_description_truncated_and_extensions(tmp_path):
    scan = load_scan(nibabel_file("standard.nii.gz"))
    save_nifti(np.zeros(scan.shape), like=scan, path=tmp_path / "d.nii", description="é" * 60,
               extensions={"method": "lrp", "preset": "epsilon-plus", "epsilon": 1e-6})
    hdr = nib.load(str(tmp_path / "d.nii")).header
    descrip = bytes(hdr["descrip"])
    assert len(descrip) <= 80 and descrip.decode("utf-8").startswith("é" * 40)
    (ext,) = hdr.extensions
    assert ext.get_code() == 6
    assert json.loads(ext.get_content().decode("utf-8").rstrip("\x00")) == {
        "method": "lrp", "preset": "epsilon-plus", "epsilon": 1e-6}
    save_nifti(np.zeros(scan.shape), like=scan, path=tmp_path / "e.nii", extensions=[(6, b"hello")])
    assert nib.load(str(tmp_path / "e.nii")).header.extensions[0].get_content().rstrip(b"\x00") == b"hello"


def test_atomic_and_overwrite_flag(tmp_path):
    scan = load_scan(nibabel_file("standard.nii.gz"))
    target = tmp_path / "m.nii.gz"
    save_nifti(np.ones(scan.shape), like=scan, path=target)
    with pytest.raises(ExportError, match="already exists"):
        save_nifti(np.zeros(scan.shape), like=scan, path=target, overwrite=False)
    assert nib.load(str(target)).get_fdata().max() == 1.0
    save_nifti(np.zeros(scan.shape), like=scan, path=target)
    assert nib.load(str(target)).get_fdata().max() == 0.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nii.gz"]  # no temporary files left


def test_wrong_suffix_or_folder(tmp_path):
    scan = load_scan(nibabel_file("standard.nii.gz"))
    with pytest.raises(ExportError, match=r"\.nii"):
        save_nifti(np.zeros(scan.shape), like=scan, path=tmp_path / "m.png")
    with pytest.raises(ExportError, match="does not exist"):
        save_nifti(np.zeros(scan.shape), like=scan, path=tmp_path / "missing" / "m.nii")
