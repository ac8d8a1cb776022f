"""Reading NIfTI/Analyze files: values, canonical orientation, world positions, 4D/2D, damage."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
from scan_data import nibabel_file

from viewer.io import CorruptFileError, ScanLoadError, UnsupportedFormatError, load_scan


def world(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape[:3]], indexing="ij"), axis=-1).reshape(-1, 3)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


@pytest.mark.parametrize("name", ["anatomical.nii", "standard.nii.gz", "reoriented_anat_moved.nii",
                                  "resampled_anat_moved.nii"])
def test_matches_nibabel_closest_canonical(name):
    path = nibabel_file(name)
    img = nib.load(str(path))
    canonical = nib.as_closest_canonical(img)
    scan = load_scan(path)
    assert scan.data.dtype == np.float32
    assert scan.shape == canonical.shape[:3]
    np.testing.assert_allclose(scan.affine, canonical.affine, atol=1e-6)
    np.testing.assert_array_equal(scan.data, canonical.get_fdata(dtype=np.float32))
    assert nib.aff2axcodes(scan.affine) == ("R", "A", "S")
    assert all(s > 0 for s in scan.data.strides)
    assert not scan.planar and scan.path == str(path)


def test_every_voxel_keeps_its_world_position():
    """A voxel value found at world x in the original is at world x in the scan too."""
    path = nibabel_file("anatomical.nii")  # stored LAS: loading must flip axis 0
    img = nib.load(str(path))
    original = img.get_fdata(dtype=np.float32)
    scan = load_scan(path)
    assert scan.meta["original_orientation"] == "LAS"
    orig_world = world(img.affine, original.shape)
    ijk = np.rint(scan.world_to_voxel(orig_world)).astype(int)
    np.testing.assert_allclose(scan.voxel_to_world(ijk), orig_world, atol=1e-4)
    np.testing.assert_array_equal(scan.data[ijk[:, 0], ijk[:, 1], ijk[:, 2]], original.reshape(-1))


def test_spacing_from_affine():
    scan = load_scan(nibabel_file("standard.nii.gz"))
    np.testing.assert_allclose(scan.spacing, nib.load(str(nibabel_file("standard.nii.gz"))).header.get_zooms())


def test_4d_gives_first_volume_and_says_so():
    path = nibabel_file("example4d.nii.gz")
    img = nib.as_closest_canonical(nib.load(str(path)))
    scan = load_scan(path)
    assert scan.shape == img.shape[:3]
    np.testing.assert_allclose(scan.data, img.get_fdata()[..., 0], rtol=1e-6)
    assert scan.meta["volumes"] == 2
    assert any("volume 0" in n for n in scan.meta["notes"])
    second = load_scan(path, frame=1)
    np.testing.assert_allclose(second.data, img.get_fdata()[..., 1], rtol=1e-6)
    with pytest.raises(ScanLoadError, match="frame 0 to 1"):
        load_scan(path, frame=2)


def test_nifti2():
    path = nibabel_file("example_nifti2.nii.gz")
    scan = load_scan(path)
    assert scan.meta["format"] == "NIfTI-2"
    np.testing.assert_allclose(scan.data, nib.as_closest_canonical(nib.load(str(path))).get_fdata()[..., 0],
                               rtol=1e-6)


def test_scaling_applied_in_float32(tmp_path):
    raw = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    img = nib.Nifti1Image(raw, np.diag([2.0, 2.0, 3.0, 1.0]))
    img.header.set_slope_inter(0.25, -7.0)
    nib.save(img, str(tmp_path / "scaled.nii.gz"))
    scan = load_scan(tmp_path / "scaled.nii.gz")
    np.testing.assert_allclose(scan.data, raw * 0.25 - 7.0, rtol=1e-6)
    assert scan.meta["scl_slope"] == 0.25 and scan.spacing == (2.0, 2.0, 3.0)


@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 1)])
def test_2d_nifti_is_one_slice(tmp_path, shape):
    data = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "flat.nii"))
    scan = load_scan(tmp_path / "flat.nii")
    assert scan.shape == (7, 9, 1) and scan.is_2d and not scan.planar
    np.testing.assert_array_equal(scan.data[:, :, 0], data.reshape(7, 9))


def test_sform_takes_precedence_like_nibabel(tmp_path):
    data = np.zeros((3, 4, 5), np.float32)
    img = nib.Nifti1Image(data, None)
    qform = np.diag([1.0, 1.0, 1.0, 1.0])
    sform = np.diag([-2.0, 3.0, 4.0, 1.0])
    sform[:3, 3] = [10, 20, 30]
    img.set_qform(qform, code=1)
    img.set_sform(sform, code=2)
    nib.save(img, str(tmp_path / "both.nii"))
    scan = load_scan(tmp_path / "both.nii")
    expected = nib.as_closest_canonical(nib.load(str(tmp_path / "both.nii"))).affine
    np.testing.assert_allclose(scan.affine, expected)
    assert scan.affine[0, 0] == 2.0  # the sform (with its flip) was used, then canonicalised


def test_hdr_img_pair(tmp_path):
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    nib.save(nib.Nifti1Pair(data, np.eye(4)), str(tmp_path / "pair.hdr"))
    for name in ("pair.hdr", "pair.img"):
        scan = load_scan(tmp_path / name)
        np.testing.assert_array_equal(scan.data, data)
    (tmp_path / "pair.img").unlink()
    with pytest.raises(CorruptFileError, match=r"pair\.img"):
        load_scan(tmp_path / "pair.hdr")


def test_nan_and_inf_are_kept_and_counted(tmp_path):
    data = np.ones((4, 4, 4), np.float32)
    data[0, 0, 0], data[1, 1, 1] = np.nan, np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "nan.nii"))
    scan = load_scan(tmp_path / "nan.nii")
    assert np.isnan(scan.data[0, 0, 0]) and np.isinf(scan.data[1, 1, 1])
    assert scan.meta["nonfinite_voxels"] == 2
    assert scan.display_window() == (1.0, 1.0)


def test_cal_min_max_become_window(tmp_path):
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    img.header["cal_min"], img.header["cal_max"] = -100.0, 300.0
    nib.save(img, str(tmp_path / "cal.nii"))
    assert load_scan(tmp_path / "cal.nii").window == (100.0, 400.0)


def test_memory_mapped_file_is_never_written(tmp_path):
    data = np.random.default_rng(1).normal(size=(8, 8, 8)).astype(np.float32)
    path = tmp_path / "mm.nii"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    scan = load_scan(path)
    scan.data[...] = 0  # the scan is writable; changes stay in memory (copy-on-write map)
    del scan
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime


def test_truncated_gzip_is_a_corrupt_file(tmp_path):
    src = nibabel_file("example4d.nii.gz")
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(src.read_bytes()[:2000])
    with pytest.raises(CorruptFileError, match="truncated"):
        load_scan(bad)


def test_cifti_is_refused_clearly(tmp_path):
    path = nibabel_file("row_major.dconn.nii")
    shutil.copy(path, tmp_path / "x.dconn.nii")
    with pytest.raises(UnsupportedFormatError, match="volumes"):
        load_scan(tmp_path / "x.dconn.nii")


def test_mgz(tmp_path):
    path = nibabel_file("test.mgz")
    scan = load_scan(path)
    img = nib.as_closest_canonical(nib.load(str(path)))
    np.testing.assert_allclose(scan.data, img.get_fdata()[..., 0], rtol=1e-6)
