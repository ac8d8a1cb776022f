"""NIfTI files with empty axes, unusable affines or short data; the slab reader against nibabel."""

from __future__ import annotations

import gzip
import mmap

import nibabel as nib
import numpy as np
import pytest

import viewer.io.nifti_voxels
from viewer.io import CorruptFileError, load_scan


def write_raw_nifti(path, data: np.ndarray, sform=None, qform_code: int = 0, quatern=(0.0, 0.0, 0.0),
                    pixdim=(1.0, 1.0, 1.0), slope: float = 1.0, inter: float = 0.0) -> None:
    """A NIfTI-1 file written field by field, so headers nibabel would refuse to build can be made."""
    header = nib.Nifti1Header(endianness=">" if np.dtype(data.dtype).byteorder == ">" else "<")
    header.set_data_shape(data.shape)
    header.set_data_dtype(data.dtype)
    header["pixdim"][1:4] = pixdim
    if sform is not None:
        sform = np.asarray(sform, dtype=np.float64)
        header["sform_code"] = 1
        header["srow_x"], header["srow_y"], header["srow_z"] = sform[0], sform[1], sform[2]
    header["qform_code"] = qform_code
    header["quatern_b"], header["quatern_c"], header["quatern_d"] = quatern
    header["scl_slope"], header["scl_inter"] = slope, inter
    header["vox_offset"] = 352
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(header.binaryblock)
        fh.write(b"\x00" * 4)
        fh.write(np.asarray(data).tobytes(order="F"))


VOLUME = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)


@pytest.mark.parametrize("shape", [(4, 0, 3), (0, 5, 5), (3, 4, 5, 0)])
def test_zero_size_axis_is_refused(tmp_path, shape):
    write_raw_nifti(tmp_path / "z.nii", np.zeros(shape, np.float32))
    with pytest.raises(CorruptFileError, match=r"z.nii has an image axis of length 0 .* holds no pixels"):
        load_scan(tmp_path / "z.nii")


@pytest.mark.parametrize("sform,words", [
    (np.diag([1.0, 0.0, 1.0, 1.0]), "singular (with a voxel size of 0 along axis 1)"),
    ([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "singular (with two axes pointing the same way)"),
    (np.zeros((4, 4)), "all zeros"),
    (np.diag([np.nan, 1.0, 1.0, 1.0]), "not a finite matrix (it contains NaN or infinite numbers)"),
    (np.diag([1.0, np.inf, 1.0, 1.0]), "not a finite matrix"),
])
def test_unusable_affine_is_refused_with_the_reason(tmp_path, sform, words):
    write_raw_nifti(tmp_path / "a.nii", VOLUME, sform=sform)
    with pytest.raises(CorruptFileError) as info:
        load_scan(tmp_path / "a.nii")
    message = str(info.value)
    assert message.startswith("a.nii: its voxel-to-world matrix (its sform) is ")
    assert words in message and "where the voxels lie in the patient" in message


def test_nan_quaternion_is_refused_not_an_unexpected_error(tmp_path):
    write_raw_nifti(tmp_path / "q.nii", VOLUME, qform_code=1, quatern=(np.nan, 0.0, 0.0))
    with pytest.raises(CorruptFileError, match="its qform\\) is not a finite matrix"):
        load_scan(tmp_path / "q.nii")


def test_bad_sform_with_a_sound_qform_uses_the_qform(tmp_path):
    write_raw_nifti(tmp_path / "sq.nii", VOLUME, sform=np.diag([1.0, 0.0, 1.0, 1.0]), qform_code=1,
                    pixdim=(2.0, 3.0, 4.0))
    scan = load_scan(tmp_path / "sq.nii")
    np.testing.assert_allclose(scan.affine[:3, :3], np.diag([2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(scan.data, VOLUME.astype(np.float32))
    assert any("(its sform) is singular" in n and "its qform was used instead" in n for n in scan.meta["notes"])


def test_single_slice_without_thickness_gets_one_millimetre(tmp_path):
    plane = np.arange(20, dtype=np.int16).reshape(4, 5, 1)
    write_raw_nifti(tmp_path / "s.nii", plane, sform=np.diag([0.5, 0.5, 0.0, 1.0]))
    scan = load_scan(tmp_path / "s.nii")
    assert scan.spacing == (0.5, 0.5, 1.0) and scan.shape == (4, 5, 1)
    np.testing.assert_array_equal(scan.data, plane.astype(np.float32))
    assert any("single slice no thickness" in n and "1 mm was assumed" in n for n in scan.meta["notes"])


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz"])
@pytest.mark.parametrize("flips", [(1, 1, 1), (-1, 1, -1), (-1, -1, -1)])
def test_slab_reader_matches_nibabel_exactly_across_slab_boundaries(tmp_path, monkeypatch, name, flips):
    rng = np.random.default_rng(7)
    data = rng.integers(-1000, 3000, size=(7, 6, 11, 3)).astype(np.int16)
    affine = np.diag([*flips, 1.0]) @ np.diag([0.9, 1.1, 2.5, 1.0])
    img = nib.Nifti1Image(data, affine)
    img.header.set_slope_inter(0.37, -12.5)
    nib.save(img, str(tmp_path / name))
    monkeypatch.setattr(viewer.io.nifti_voxels, "SLAB_BYTES", 7 * 6 * 2 * 4)  # 4 planes a slab: 3 slabs
    canonical = nib.as_closest_canonical(nib.load(str(tmp_path / name)))
    for frame in (0, 2):
        scan = load_scan(tmp_path / name, frame=frame)
        np.testing.assert_array_equal(scan.data, canonical.get_fdata(dtype=np.float32)[..., frame])
        np.testing.assert_allclose(scan.affine, canonical.affine)
    assert any("holds 3 volumes" in n and "showing volume 2" in n for n in scan.meta["notes"])


@pytest.mark.parametrize("dtype", [np.uint8, ">i2", np.int32, np.float64, ">f4"])
def test_stored_types_and_byte_orders(tmp_path, dtype):
    data = (np.arange(4 * 5 * 6).reshape(4, 5, 6) % 200).astype(dtype)
    write_raw_nifti(tmp_path / "t.nii.gz", data, sform=np.diag([1.0, -1.0, 1.0, 1.0]))
    scan = load_scan(tmp_path / "t.nii.gz")
    np.testing.assert_array_equal(scan.data, data.astype(np.float32)[:, ::-1, :])


def test_truncated_uncompressed_data_says_how_much_is_there(tmp_path):
    write_raw_nifti(tmp_path / "cut.nii", VOLUME)
    raw = (tmp_path / "cut.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(raw[:-30])
    with pytest.raises(CorruptFileError, match=r"cut.nii: the image data ends after 90 of its 120 bytes; the file is "
                                               "truncated"):
        load_scan(tmp_path / "cut.nii")


def test_truncated_gzip_is_a_damaged_file(tmp_path):
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((20, 20, 20)).astype(np.float32), np.eye(4)),
             str(tmp_path / "v.nii.gz"))
    raw = (tmp_path / "v.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="cut.nii.gz: the image data could not be read .*truncated"):
        load_scan(tmp_path / "cut.nii.gz")


def test_float32_ras_file_is_mapped_not_copied(tmp_path):
    data = np.random.default_rng(1).random((5, 6, 7)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "f.nii"))
    scan = load_scan(tmp_path / "f.nii")
    np.testing.assert_array_equal(scan.data, data)
    base = scan.data
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    assert isinstance(base, mmap.mmap)  # backed by the file's pages, copy-on-write
