"""DICOM folders: sorting by position, spacing policy, grouping, selection, skipping junk."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_writer import ct_slice, write_series
from scan_data import dicom_file, dicomdir_tests

from viewer.io import InconsistentSeriesError, NoPixelDataError, ScanLoadError, load_scan

ROWS, COLS, N = 5, 7, 6


def volume(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, size=(n, ROWS, COLS)).astype(np.uint16)


def axial_positions(n: int = N, step: float = 2.5, start=(-10.0, -20.0, 30.0)) -> np.ndarray:
    return np.array([[start[0], start[1], start[2] + step * k] for k in range(n)])


def expected_world_values(vol, positions, iop, spacing=(0.8, 0.7)):
    """(world RAS of every pixel of every slice, HU values) straight from the DICOM definition."""
    r, c = np.meshgrid(np.arange(ROWS), np.arange(COLS), indexing="ij")
    row_dir, col_dir = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    worlds = []
    for p in positions:
        lps = p + c[..., None] * spacing[1] * row_dir + r[..., None] * spacing[0] * col_dir
        worlds.append(lps * np.array([-1.0, -1.0, 1.0]))
    return np.stack(worlds), vol.astype(np.float32) - 1024.0


def assert_world(scan, world, values):
    f = scan.world_to_voxel(world.reshape(-1, 3))
    ijk = np.rint(f).astype(int)
    np.testing.assert_allclose(f, ijk, atol=1e-3)
    np.testing.assert_array_equal(scan.data[ijk[:, 0], ijk[:, 1], ijk[:, 2]], values.reshape(-1))


def test_sorted_by_position_not_name_or_instance(tmp_path):
    vol, pos = volume(), axial_positions()
    rng = np.random.default_rng(5)
    order = rng.permutation(N)  # file k holds slice order[k]; names and instance numbers are scrambled
    names = [f"{rng.integers(1e6):06d}" for _ in range(N)]  # no .dcm suffix
    write_series(tmp_path, vol[order], pos[order], names=names)
    scan = load_scan(tmp_path)
    assert scan.shape == (COLS, ROWS, N) and scan.modality == "CT"
    assert scan.spacing == pytest.approx((0.7, 0.8, 2.5))  # from positions, not SliceThickness=99
    assert nib.aff2axcodes(scan.affine) == ("R", "A", "S")
    assert_world(scan, *expected_world_values(vol, pos, (1, 0, 0, 0, 1, 0)))
    assert scan.window == (40.0, 400.0) and scan.meta["files"] == N
    # bare pydicom stack, sorted by z, with the same rescale
    stack = np.stack([pydicom.dcmread(tmp_path / names[k]).pixel_array for k in np.argsort(pos[order][:, 2])])
    np.testing.assert_array_equal(np.sort(scan.data.ravel()), np.sort(stack.ravel() - 1024.0))


def test_reversed_positions_and_feet_first(tmp_path):
    vol, pos = volume(), axial_positions(step=-3.0)
    write_series(tmp_path, vol, pos)
    scan = load_scan(tmp_path)
    assert scan.spacing[2] == pytest.approx(3.0)
    assert_world(scan, *expected_world_values(vol, pos, (1, 0, 0, 0, 1, 0)))


@pytest.mark.parametrize("iop", [
    (0.866025, 0.5, 0.0, 0.0, 0.0, -1.0),  # oblique sagittal-ish
    (1.0, 0.0, 0.0, 0.0, 0.707107, -0.707107),  # oblique axial/coronal
    (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),  # sagittal
])
def test_oblique_series_keeps_exact_world_positions(tmp_path, iop):
    normal = np.cross(iop[:3], iop[3:])
    pos = np.array([[5.0, -7.0, 11.0] + 1.5 * k * normal for k in range(N)])
    vol = volume()
    write_series(tmp_path, vol[::-1], pos[::-1], orientation=iop)
    scan = load_scan(tmp_path)
    assert_world(scan, *expected_world_values(vol, pos, iop))
    assert nib.aff2axcodes(scan.affine) == ("R", "A", "S")
    assert sorted(scan.spacing) == pytest.approx(sorted((0.7, 0.8, 1.5)), abs=1e-4)


def test_gantry_tilt_gives_sheared_affine(tmp_path):
    vol = volume()
    pos = np.array([[0.0, 0.4 * k, 2.0 * k] for k in range(N)])
    write_series(tmp_path, vol, pos)
    scan = load_scan(tmp_path)
    assert_world(scan, *expected_world_values(vol, pos, (1, 0, 0, 0, 1, 0)))
    assert any("tilt" in n for n in scan.meta["notes"])


def test_non_uniform_gap_is_resampled_with_note(tmp_path):
    vol = volume(5)
    z = np.array([0.0, 2.0, 4.0, 8.0, 10.0])  # one missing slice at z=6
    pos = np.array([[0.0, 0.0, v] for v in z])
    write_series(tmp_path, vol, pos)
    scan = load_scan(tmp_path)
    assert scan.shape[2] == 6 and scan.spacing[2] == pytest.approx(2.0)
    assert any("resampled" in n for n in scan.meta["notes"])
    hu = vol.astype(np.float32) - 1024.0
    # planes at the original positions are unchanged; the missing one is the mean of its neighbours
    world, values = expected_world_values(vol, pos, (1, 0, 0, 0, 1, 0))
    assert_world(scan, world, values)
    mid = scan.world_to_voxel(np.array([[0.0, 0.0, 6.0]]))[0]
    k = int(round(mid[2]))
    np.testing.assert_allclose(scan.data[::-1, ::-1, k].T, (hu[2] + hu[3]) / 2, rtol=1e-6)


def test_large_gap_is_refused(tmp_path):
    z = [0.0, 2.0, 4.0, 20.0, 22.0]
    write_series(tmp_path, volume(5), np.array([[0.0, 0.0, v] for v in z]))
    with pytest.raises(InconsistentSeriesError, match="missing"):
        load_scan(tmp_path)


def test_repeated_positions_equal_counts_take_first_volume(tmp_path):
    vol1, vol2 = volume(4, seed=1), volume(4, seed=2)
    pos = axial_positions(4)
    write_series(tmp_path, vol1, pos, names=[f"a{k}" for k in range(4)])
    for k in range(4):  # echo 2 of the same series, same positions
        ds = ct_slice(vol2[k], pos[k], instance=10 + k)
        ds.EchoNumbers = 2
        ds.save_as(tmp_path / f"b{k}", enforce_file_format=True)
    scan = load_scan(tmp_path)
    assert scan.shape[2] == 4
    assert_world(scan, *expected_world_values(vol1, pos, (1, 0, 0, 0, 1, 0)))
    assert any("first volume" in n for n in scan.meta["notes"])


def test_repeated_positions_unequal_counts_refused(tmp_path):
    vol, pos = volume(4), axial_positions(4)
    write_series(tmp_path, vol, pos)
    ct_slice(vol[1], pos[1], instance=99).save_as(tmp_path / "dup", enforce_file_format=True)
    with pytest.raises(InconsistentSeriesError, match="share slice positions"):
        load_scan(tmp_path)


def test_mixed_orientation_split_and_selectable(tmp_path):
    vol = volume()
    write_series(tmp_path, vol, axial_positions(), names=[f"ax{k}" for k in range(N)])
    sag = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    write_series(tmp_path, vol[:3], np.array([[2.0 * k, 0, 0] for k in range(3)]), orientation=sag,
                 names=[f"sag{k}" for k in range(3)])
    scan = load_scan(tmp_path)
    assert scan.shape == (COLS, ROWS, N)
    assert any("mixes 2 orientations" in n for n in scan.meta["notes"])
    (other,) = scan.meta["other_series"]
    assert other["uid"].endswith("#2") and other["images"] == 3
    sagittal = load_scan(tmp_path, series=other["uid"])
    assert sagittal.shape == (3, COLS, ROWS)  # slices run Right→Left: axis 0 is R
    assert_world(sagittal, *expected_world_values(vol[:3], np.array([[2.0 * k, 0, 0] for k in range(3)]), sag))


def test_two_series_largest_default_other_listed_and_selectable(tmp_path):
    big, small = volume(6, seed=3), volume(3, seed=4)
    write_series(tmp_path / "a", big, axial_positions(6), series_uid="1.2.3.4.100", description="big one")
    write_series(tmp_path / "b", small, axial_positions(3), series_uid="1.2.3.4.200", description="small one")
    scan = load_scan(tmp_path)
    assert scan.shape[2] == 6 and scan.meta["SeriesDescription"] == "big one"
    (other,) = scan.meta["other_series"]
    assert other["uid"] == "1.2.3.4.200" and other["images"] == 3 and other["modality"] == "CT"
    assert other["description"] == "small one" and other["path"].startswith(str(tmp_path / "b"))
    chosen = load_scan(tmp_path, series="1.2.3.4.200")
    assert chosen.shape[2] == 3
    assert_world(chosen, *expected_world_values(small, axial_positions(3), (1, 0, 0, 0, 1, 0)))
    with pytest.raises(ScanLoadError, match=r"1\.2\.3\.4\.100.*series="):
        load_scan(tmp_path, series="9.9.9")


def test_junk_is_skipped_and_counted(tmp_path):
    vol, pos = volume(), axial_positions()
    paths = write_series(tmp_path / "s", vol, pos)
    (tmp_path / "notes.txt").write_text("not a scan\n")
    (tmp_path / "s" / "Thumbs.db").write_bytes(b"\x00" * 300)
    data = paths[2].read_bytes()
    (tmp_path / "s" / "broken.dcm").write_bytes(data[: len(data) - 40])  # truncated copy of a slice
    (tmp_path / "s" / "header_only").write_bytes(data[:200])  # cut inside the header
    shutil.copy(dicom_file("rtplan.dcm"), tmp_path / "plan.dcm")
    shutil.copy(dicomdir_tests() / "TINY_ALPHA" / "DICOMDIR", tmp_path / "DICOMDIR")
    scan = load_scan(tmp_path)
    assert scan.shape == (COLS, ROWS, N)
    assert_world(scan, *expected_world_values(vol, pos, (1, 0, 0, 0, 1, 0)))
    meta = scan.meta
    assert meta["skipped_non_dicom"] == 2
    assert meta["skipped_dicomdir"] == 1
    assert meta["skipped_non_image"] == {"RT Plan": 1}
    assert sorted(meta["skipped_unreadable"]) == ["broken.dcm", "header_only"]
    assert meta["folder_files"] == N + 6
    assert any("Skipped" in n for n in meta["notes"])


def test_real_dicomdir_export_folder():
    root = dicomdir_tests()
    scan = load_scan(root)
    assert scan.modality == "CT" and scan.shape == (16, 16, 5)
    assert scan.meta["skipped_dicomdir"] >= 1
    assert len(scan.meta["skipped_unreadable"]) == 50  # TINY_ALPHA: CT image headers without pixel data
    uids = [o["uid"] for o in scan.meta["other_series"]]
    assert len(uids) == len(set(uids)) > 5
    cr = next(o for o in scan.meta["other_series"] if o["modality"] == "CR")
    assert load_scan(root, series=cr["uid"]).planar


def test_multiframe_file_in_folder(tmp_path):
    shutil.copy(dicom_file("eCT_Supplemental.dcm"), tmp_path / "enhanced")
    direct = load_scan(dicom_file("eCT_Supplemental.dcm"))
    scan = load_scan(tmp_path)
    np.testing.assert_array_equal(scan.data, direct.data)
    np.testing.assert_allclose(scan.affine, direct.affine)


def test_empty_and_non_dicom_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScanLoadError, match="empty"):
        load_scan(tmp_path / "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("hello")
    with pytest.raises(ScanLoadError, match="no DICOM images"):
        load_scan(tmp_path / "text")
    (tmp_path / "plans").mkdir()
    shutil.copy(dicom_file("rtplan.dcm"), tmp_path / "plans" / "x")
    with pytest.raises(NoPixelDataError, match="RT Plan"):
        load_scan(tmp_path / "plans")


def test_series_argument_needs_a_folder():
    with pytest.raises(ScanLoadError, match="not a folder"):
        load_scan(dicom_file("CT_small.dcm"), series="1.2.3")


def test_per_slice_rescale(tmp_path):
    vol, pos = volume(3), axial_positions(3)
    for k in range(3):
        ct_slice(vol[k], pos[k], slope=1.0 + k, intercept=-10.0 * k).save_as(tmp_path / f"s{k}",
                                                                             enforce_file_format=True)
    scan = load_scan(tmp_path)
    world, _ = expected_world_values(vol, pos, (1, 0, 0, 0, 1, 0))
    values = np.stack([vol[k] * (1.0 + k) - 10.0 * k for k in range(3)]).astype(np.float32)
    assert_world(scan, world, values)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
                                  "693_UNCR.dcm", "MR_small_RLE.dcm", "RG3_UNCR.dcm", "SC_rgb.dcm"])
def test_folder_of_one_file_equals_the_file(tmp_path, name):
    """The folder reader's direct uncompressed-pixel path agrees with pydicom's decoding."""
    shutil.copy(dicom_file(name), tmp_path / "only")
    direct = load_scan(dicom_file(name))
    via_folder = load_scan(tmp_path)
    np.testing.assert_array_equal(via_folder.data, direct.data)
    np.testing.assert_allclose(via_folder.affine, direct.affine)
    assert via_folder.window == direct.window and via_folder.planar == direct.planar


@pytest.mark.parametrize("signed", [True, False])
def test_12_bit_stored_values_with_garbage_high_bits(tmp_path, signed):
    """Unused high bits are masked / sign-extended as pydicom does (files big enough for the direct path)."""
    raw = np.array([[0x0FFF, 0x0800], [0x07FF, 0x0001]], dtype=np.uint16)
    noisy = np.tile(raw | 0xF000, (20, 20))  # 40×40: pixel data > 2 KB, so it is read directly
    ds = ct_slice(noisy, (0, 0, 0), intercept=0.0, window=None)
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, int(signed)
    (tmp_path / "s").mkdir()
    ds.save_as(tmp_path / "s" / "a", enforce_file_format=True)
    expected = pydicom.dcmread(tmp_path / "s" / "a").pixel_array
    first = [[-1, -2048], [2047, 1]] if signed else [[4095, 2048], [2047, 1]]
    np.testing.assert_array_equal(expected[:2, :2], first)
    scan = load_scan(tmp_path / "s")
    np.testing.assert_array_equal(scan.data[::-1, ::-1, 0].T, expected)


def _stamp(paths, number, time) -> None:
    """Give written files a SeriesNumber and SeriesTime (the writer leaves them out)."""
    for p in paths:
        ds = pydicom.dcmread(p)
        if number is not None:
            ds.SeriesNumber = number
        if time is not None:
            ds.SeriesTime = time
        ds.save_as(p, enforce_file_format=True)


@pytest.mark.filterwarnings("ignore:Invalid value for VR TM")  # pydicom, when the test writes the bad time
def test_series_number_and_time_describe_each_series_and_never_patient_fields(tmp_path):
    from dicom_writer import BIRTH_DATE, INSTITUTION, PATIENT_ID, PATIENT_NAME

    _stamp(write_series(tmp_path / "a", volume(5, seed=5), axial_positions(5), series_uid="1.2.3.4.100"), 3,
           "101503.25")
    _stamp(write_series(tmp_path / "b", volume(3, seed=6), axial_positions(3), series_uid="1.2.3.4.200"), 7,
           "142233")
    _stamp(write_series(tmp_path / "c", volume(2, seed=7), axial_positions(2), series_uid="1.2.3.4.300"), None,
           "not a time")
    scan = load_scan(tmp_path)
    assert scan.meta["series_number"] == 3 and scan.meta["series_time"] == "101503.25"  # the opened one
    b, c = scan.meta["other_series"]
    assert (b["series_number"], b["series_time"]) == (7, "142233")
    assert (c["series_number"], c["series_time"]) == (None, None)  # absent / malformed: left out, not guessed
    text = repr(scan.meta)
    assert not any(v in text for v in (PATIENT_NAME, PATIENT_ID, BIRTH_DATE, INSTITUTION))
