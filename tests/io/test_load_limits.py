"""Bounds on what a load may cost: the voxel budget, pipes and devices, folder walks, warnings."""

from __future__ import annotations

import os
import threading
import warnings
import zlib

import nibabel as nib
import numpy as np
import pytest
import tifffile
from dicom_writer import ct_slice, write_series
from PIL import Image

import viewer.io.folder_files
from viewer.io import ScanLoadError, ScanTooLargeError, UnsupportedFormatError, load_scan
from viewer.io.memory import DEFAULT_MAX_VOXELS, MAX_VOXELS_ENV


def example(tmp_path, kind: str):
    """A small file of each reader, 6 × 7 (× 8) in size."""
    if kind == "nifti":
        path = tmp_path / "v.nii.gz"
        nib.save(nib.Nifti1Image(np.ones((6, 7, 8), np.int16), np.eye(4)), str(path))
    elif kind == "dicom":
        path = tmp_path / "one.dcm"
        ct_slice(np.ones((7, 6), np.uint16), (1, 2, 3)).save_as(path, enforce_file_format=True)
    elif kind == "series":
        path = tmp_path / "series"
        write_series(path, np.ones((8, 7, 6), np.uint16), np.array([[0, 0, 2.0 * k] for k in range(8)]))
    elif kind == "png":
        path = tmp_path / "p.png"
        Image.fromarray(np.ones((7, 6), np.uint8)).save(path)
    else:
        path = tmp_path / "t.tif"
        tifffile.imwrite(path, np.ones((7, 6), np.uint16))
    return path


SIZES = {"nifti": "6 × 7 × 8 = 336 voxels", "dicom": "6 × 7 = 42 pixels", "series": "6 × 7 × 8 = 336 voxels",
         "png": "6 × 7 = 42 pixels", "tiff": "6 × 7 = 42 pixels"}


@pytest.mark.parametrize("kind", sorted(SIZES))
def test_every_reader_applies_the_voxel_budget(tmp_path, kind):
    path = example(tmp_path, kind)
    with pytest.raises(ScanTooLargeError) as info:
        load_scan(path, max_voxels=41)
    message = str(info.value)
    assert SIZES[kind] in message and "more than the limit of 41" in message and MAX_VOXELS_ENV in message
    assert load_scan(path, max_voxels=336).data.size in (42, 336)  # exactly at the limit loads


def test_budget_from_the_environment(tmp_path, monkeypatch):
    path = example(tmp_path, "nifti")
    monkeypatch.setenv(MAX_VOXELS_ENV, "300")
    with pytest.raises(ScanTooLargeError, match="limit of 300"):
        load_scan(path)
    assert load_scan(path, max_voxels=400).shape == (6, 7, 8)  # the argument wins over the environment
    monkeypatch.setenv(MAX_VOXELS_ENV, "lots")
    with pytest.raises(ScanLoadError, match=f"{MAX_VOXELS_ENV}='lots' is not a positive number"):
        load_scan(path)
    monkeypatch.delenv(MAX_VOXELS_ENV)
    assert DEFAULT_MAX_VOXELS == 2**29 and load_scan(path).shape == (6, 7, 8)


def test_huge_zlib_tiff_is_refused_before_decoding(tmp_path):
    """30000² pixels in a ~1 MB file: refused from its header, never decoded."""
    path = tmp_path / "huge.tif"
    tile = zlib.compress(np.zeros((4096, 4096), np.uint8).tobytes(), 9)  # 64 identical compressed tiles
    tifffile.imwrite(path, (tile for _ in range(64)), shape=(30000, 30000), dtype=np.uint8, tile=(4096, 4096),
                     compression="zlib")
    assert path.stat().st_size < 2_000_000
    with pytest.raises(ScanTooLargeError, match="30000 × 30000 = 900,000,000 pixels, more than the limit of "
                                                "536,870,912"):
        load_scan(path)


def _load_in_thread(path) -> BaseException | None:
    """load_scan in a daemon thread: if it blocks on a pipe, the test fails instead of hanging."""
    outcome: list = []

    def run():
        try:
            load_scan(path)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert outcome, f"load_scan({path.name}) blocked"
    return outcome[0]


def test_named_pipe_is_refused_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "scan.nii.gz")
    exc = _load_in_thread(tmp_path / "scan.nii.gz")
    assert isinstance(exc, UnsupportedFormatError)
    assert "scan.nii.gz is a named pipe (FIFO), not a file saved on disk" in str(exc)


def test_device_is_refused():
    with pytest.raises(UnsupportedFormatError, match="null is a character device"):
        load_scan("/dev/null")


def test_pipe_inside_a_dicom_folder_is_skipped_unopened(tmp_path):
    write_series(tmp_path, np.ones((3, 4, 5), np.uint16), np.array([[0, 0, 2.0 * k] for k in range(3)]))
    os.mkfifo(tmp_path / "pipe.dcm")
    exc_or_scan: list = []
    thread = threading.Thread(target=lambda: exc_or_scan.append(load_scan(tmp_path)), daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert exc_or_scan, "the folder scan blocked on the pipe"
    scan = exc_or_scan[0]
    assert scan.shape == (5, 4, 3)
    assert any("1 pipe(s), device(s) or broken link(s), which were not opened" in n for n in scan.meta["notes"])


def test_nifti_pair_whose_image_is_a_pipe_is_refused(tmp_path):
    img = nib.Nifti1Pair(np.ones((3, 4, 5), np.float32), np.eye(4))
    nib.save(img, str(tmp_path / "pair.hdr"))
    (tmp_path / "pair.img").unlink()
    os.mkfifo(tmp_path / "pair.img")
    exc = _load_in_thread(tmp_path / "pair.hdr")
    assert isinstance(exc, UnsupportedFormatError) and "pair.img is a named pipe (FIFO)" in str(exc)


def test_folder_with_too_many_files_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(viewer.io.folder_files, "MAX_FILES", 50)
    for k in range(51):
        (tmp_path / f"f{k}.txt").write_text("x")
    with pytest.raises(ScanLoadError, match="holds more than 50 files: it looks like a whole disk or a system folder"):
        load_scan(tmp_path)


def test_folder_with_too_many_sub_folders_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(viewer.io.folder_files, "MAX_FOLDERS", 20)
    for k in range(21):
        (tmp_path / f"d{k}").mkdir()
    with pytest.raises(ScanLoadError, match="holds more than 20 sub-folders"):
        load_scan(tmp_path)


def test_folders_too_deep_are_not_searched_and_noted(tmp_path):
    write_series(tmp_path / "top", np.ones((3, 4, 5), np.uint16), np.array([[0, 0, 2.0 * k] for k in range(3)]))
    deep = tmp_path.joinpath(*[f"level{k}" for k in range(9)])
    write_series(deep, np.ones((4, 4, 5), np.uint16), np.array([[0, 0, 2.0 * k] for k in range(4)]),
                 series_uid="1.2.3.99")
    scan = load_scan(tmp_path)
    assert scan.shape == (5, 4, 3) and all(o["uid"] != "1.2.3.99" for o in scan.meta["other_series"])
    assert any("1 folder(s) more than 8 levels down were not searched" in n for n in scan.meta["notes"])
    assert load_scan(tmp_path / "level0").shape == (5, 4, 4)  # 8 levels below level0: searched


def test_folder_with_images_only_too_deep_says_so(tmp_path):
    deep = tmp_path.joinpath(*[f"level{k}" for k in range(9)])
    write_series(deep, np.ones((2, 4, 5), np.uint16), np.array([[0, 0, 2.0 * k] for k in range(2)]))
    with pytest.raises(ScanLoadError, match=r"holds no files \(folders more than 8 levels down were not searched"):
        load_scan(tmp_path)


def test_symlink_loop_in_a_dicom_folder_is_not_followed(tmp_path):
    write_series(tmp_path, np.ones((3, 4, 5), np.uint16), np.array([[0, 0, 2.0 * k] for k in range(3)]))
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    scan = load_scan(tmp_path)
    assert scan.meta["files"] == 3 and scan.meta["folder_files"] == 3


def test_loading_leaves_the_process_warnings_filter_alone(tmp_path):
    paths = [example(tmp_path, kind) for kind in sorted(SIZES)]
    before = list(warnings.filters)
    for path in paths:
        load_scan(path)
    assert warnings.filters == before
