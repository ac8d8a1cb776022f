"""Failures a user can cause, privacy of patient fields, and inputs left untouched."""

from __future__ import annotations

import logging
import shutil

import nibabel as nib
import numpy as np
import pytest
import tifffile
from dicom_writer import BIRTH_DATE, INSTITUTION, PATIENT_ID, PATIENT_NAME, ct_slice, write_series
from PIL import Image
from scan_data import dicom_file, dicomdir_tests, nibabel_file

import viewer.io.memory
from viewer.io import InconsistentSeriesError, Scan, ScanLoadError, UnsupportedFormatError, load_scan

SENTINELS = (PATIENT_NAME, "Sentinel", PATIENT_ID, BIRTH_DATE, INSTITUTION)


def test_missing_path(tmp_path):
    with pytest.raises(ScanLoadError, match="does not exist"):
        load_scan(tmp_path / "nope.nii.gz")


def test_empty_and_unknown_files(tmp_path):
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(ScanLoadError):
        load_scan(tmp_path / "empty.dcm")
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(UnsupportedFormatError, match="empty"):
        load_scan(tmp_path / "empty.bin")
    (tmp_path / "notes.xyz").write_text("hello world " * 50)
    with pytest.raises(UnsupportedFormatError, match="NIfTI"):
        load_scan(tmp_path / "notes.xyz")


def test_dicomdir_file_points_to_folder():
    with pytest.raises(UnsupportedFormatError, match="DICOMDIR"):
        load_scan(dicomdir_tests() / "TINY_ALPHA" / "DICOMDIR")


def test_negative_frame():
    with pytest.raises(ScanLoadError, match="frame"):
        load_scan(dicom_file("CT_small.dcm"), frame=-1)


@pytest.mark.parametrize("kind", ["nifti", "dicom", "series", "png", "tiff"])
def test_too_large_for_memory_is_refused_before_allocating(tmp_path, monkeypatch, kind):
    path = _example(tmp_path, kind)
    monkeypatch.setattr(viewer.io.memory, "available_bytes", lambda: 10)
    with pytest.raises(ScanLoadError, match="memory"):
        load_scan(path)


def test_unexpected_errors_become_scan_load_errors(monkeypatch):
    import viewer.io.dicom_file as dicom_file_module

    def boom(*args, **kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr(dicom_file_module, "scan_from_dataset", boom)
    with pytest.raises(ScanLoadError, match="unexpected KeyError"):
        load_scan(dicom_file("CT_small.dcm"))


def test_truncated_dicom_at_any_length_never_crashes(tmp_path):
    data = dicom_file("CT_small.dcm").read_bytes()
    outcomes = set()
    for cut in range(0, len(data), max(1, len(data) // 40)):
        path = tmp_path / f"cut{cut}.dcm"
        path.write_bytes(data[:cut])
        try:
            load_scan(path)
            outcomes.add("loaded")
        except ScanLoadError as exc:
            outcomes.add(type(exc).__name__)
            assert str(exc)
    assert "CorruptFileError" in outcomes


def _example(tmp_path, kind: str):
    if kind == "nifti":
        path = tmp_path / "v.nii.gz"
        nib.save(nib.Nifti1Image(np.ones((6, 7, 8), np.float32), np.eye(4)), str(path))
    elif kind == "dicom":
        path = tmp_path / "one.dcm"
        ct_slice(np.ones((5, 6), np.uint16), (1, 2, 3)).save_as(path, enforce_file_format=True)
    elif kind == "series":
        path = tmp_path / "series"
        write_series(path, np.ones((4, 5, 6), np.uint16), np.array([[0, 0, 2.0 * k] for k in range(4)]))
    elif kind == "png":
        path = tmp_path / "p.png"
        Image.fromarray(np.ones((5, 6), np.uint8)).save(path)
    else:
        path = tmp_path / "t.tif"
        tifffile.imwrite(path, np.ones((5, 6), np.uint16))
    return path


@pytest.mark.parametrize("kind", ["nifti", "dicom", "series", "png", "tiff"])
def test_inputs_are_never_written(tmp_path, kind):
    path = _example(tmp_path, kind)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    scan = load_scan(path)
    scan.data += 1  # modifying the scan never reaches the file
    del scan
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


def test_real_files_untouched_by_loading(tmp_path):
    for src in (dicom_file("MR_small_RLE.dcm"), dicom_file("eCT_Supplemental.dcm"), nibabel_file("anatomical.nii")):
        shutil.copy(src, tmp_path / src.name)
        before = (tmp_path / src.name).read_bytes()
        load_scan(tmp_path / src.name)
        assert (tmp_path / src.name).read_bytes() == before


def _leaks(text: str) -> list[str]:
    return [s for s in SENTINELS if s.lower() in text.lower()]


def _scan_text(scan: Scan) -> str:
    return " ".join([repr(scan.meta), scan.source, repr(scan), str(scan.window), scan.modality])


def test_patient_fields_never_reach_meta_source_or_repr(tmp_path):
    write_series(tmp_path / "a", np.ones((3, 4, 5), np.uint16), np.array([[0, 0, 2.0 * k] for k in range(3)]),
                 series_uid="1.2.3.7", description="plain")
    write_series(tmp_path / "b", np.ones((2, 4, 5), np.uint16), np.array([[0, 0, 2.0 * k] for k in range(2)]),
                 series_uid="1.2.3.8")
    scans = [load_scan(tmp_path), load_scan(tmp_path / "a" / "slice_000.dcm"), load_scan(tmp_path, series="1.2.3.8")]
    for scan in scans:
        assert _leaks(_scan_text(scan)) == []
    assert scans[0].meta["Manufacturer"] == "lrp-viewer tests"  # allow-listed fields do get through


def test_patient_fields_never_in_errors_or_logs(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    vol = np.ones((3, 4, 5), np.uint16)
    write_series(tmp_path, vol, np.array([[0, 0, 2.0 * k] for k in range(3)]))
    ct_slice(vol[0], (0, 0, 0), instance=9).save_as(tmp_path / "dup.dcm", enforce_file_format=True)
    with pytest.raises(InconsistentSeriesError) as info:
        load_scan(tmp_path)
    data = (tmp_path / "dup.dcm").read_bytes()
    (tmp_path / "dup.dcm").write_bytes(data[:-10])
    single = tmp_path / "single"
    single.mkdir()
    (single / "cut.dcm").write_bytes(data[:-10])
    with pytest.raises(ScanLoadError) as info2:
        load_scan(single / "cut.dcm")
    out = capsys.readouterr()
    text = " ".join([str(info.value), str(info2.value), caplog.text, out.out, out.err])
    assert _leaks(text) == []


@pytest.mark.parametrize("name,head", [("a.dcm", b"hello, not dicom " * 20), ("c.nii", b"\x00" * 400),
                                       ("d.png", b"\x89PNG" + b"\x01" * 400), ("e.tif", b"II*\x00" + b"\xff" * 400),
                                       ("f.nii.gz", b"\x1f\x8b" + b"\x02" * 400)])
def test_garbage_with_image_names(tmp_path, name, head):
    (tmp_path / name).write_bytes(head)
    with pytest.raises(ScanLoadError) as info:
        load_scan(tmp_path / name)
    assert name in str(info.value) and str(tmp_path) not in str(info.value)
