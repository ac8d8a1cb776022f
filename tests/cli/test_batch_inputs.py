"""Finding cases in the batch command's INPUTS: folders, DICOM series, CSV lists, masks, ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from viewer.cli.batch_inputs import InputError, find_cases, resolve_mask, safe_id, stem


def _touch(path: Path, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_folders_give_one_case_per_file_and_per_dicom_folder(tmp_path: Path, write_dicom_series) -> None:
    root = tmp_path / "in"
    _touch(root / "a.nii.gz")
    _touch(root / "b.nii")
    _touch(root / "nested" / "deeper" / "c.mgz")
    _touch(root / "pic.png")
    _touch(root / "a.json")  # a sidecar, not a case
    _touch(root / "README.md")
    _touch(root / ".hidden.nii.gz")
    write_dicom_series(np.zeros((4, 5, 3), np.float32), root / "patient" / "series1")
    cases, notes = find_cases([root])
    assert [c.id for c in cases] == ["a", "b", "pic", "c", "series1"]
    assert cases[-1].path == root / "patient" / "series1"
    assert any("2 file(s)" in n and "not scans" in n for n in notes)


def test_output_folder_is_never_searched(tmp_path: Path) -> None:
    _touch(tmp_path / "in" / "a.nii.gz")
    _touch(tmp_path / "in" / "out" / "a" / "lrp-epsilon-plus.nii.gz")
    cases, _ = find_cases([tmp_path / "in"], exclude=[tmp_path / "in" / "out"])
    assert [c.id for c in cases] == ["a"]


def test_mask_pattern_pairs_masks_and_removes_them_from_cases(tmp_path: Path) -> None:
    _touch(tmp_path / "x.nii.gz")
    _touch(tmp_path / "x_seg.nii.gz")
    _touch(tmp_path / "y.nii.gz")
    cases, _ = find_cases([tmp_path], mask_pattern="{stem}_seg.nii.gz")
    assert [(c.id, c.mask, c.mask_missing) for c in cases] == [
        ("x", tmp_path / "x_seg.nii.gz", None),
        ("y", None, tmp_path / "y_seg.nii.gz"),
    ]
    assert resolve_mask(tmp_path / "s.nii.gz", "masks_{name}") == tmp_path / "masks_s.nii.gz"
    assert resolve_mask(tmp_path / "s.nii.gz", "{stem}-label{suffix}") == tmp_path / "s-label.nii.gz"
    with pytest.raises(InputError, match="mask-pattern"):
        resolve_mask(tmp_path / "s.nii.gz", "{subject}.nii.gz")


def test_without_a_pattern_obvious_masks_are_left_out(tmp_path: Path) -> None:
    _touch(tmp_path / "x.nii.gz")
    _touch(tmp_path / "x_mask.nii.gz")
    _touch(tmp_path / "lonely_mask.nii.gz")  # no scan beside it: a case like any other
    cases, notes = find_cases([tmp_path])
    assert [c.id for c in cases] == ["lonely_mask", "x"]
    assert any("look like masks" in n for n in notes)


def test_csv_lists_resolve_relative_paths_and_ids(tmp_path: Path) -> None:
    _touch(tmp_path / "data" / "s1.nii.gz")
    _touch(tmp_path / "data" / "m1.nii.gz")
    listing = tmp_path / "list.csv"
    listing.write_text("\ufeffPath,Mask,ID\ndata/s1.nii.gz,data/m1.nii.gz,Subject/01\n"
                       f"{tmp_path / 'data' / 's1.nii.gz'},,\n")
    cases, _ = find_cases([listing])
    assert [(c.id, c.path, c.mask) for c in cases] == [
        ("Subject_01", tmp_path / "data" / "s1.nii.gz", tmp_path / "data" / "m1.nii.gz"),
        ("s1", tmp_path / "data" / "s1.nii.gz", None),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("file\nx.nii.gz\n")
    with pytest.raises(InputError, match="'path' column"):
        find_cases([bad])
    empty_cell = tmp_path / "empty.csv"
    empty_cell.write_text("path\n\n,\n")
    with pytest.raises(InputError, match="line 3"):
        find_cases([empty_cell])


def test_duplicate_names_get_unique_ids(tmp_path: Path) -> None:
    a = _touch(tmp_path / "site1" / "scan.nii.gz")
    b = _touch(tmp_path / "site2" / "scan.nii.gz")
    c = _touch(tmp_path / "site3" / "SCAN.nii")
    cases, _ = find_cases([a, b, c])
    assert [x.id for x in cases] == ["scan", "scan-2", "SCAN-3"]


def test_missing_input_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        find_cases([tmp_path / "nope"])


def test_names() -> None:
    assert stem(Path("a.b.nii.gz")) == "a.b"
    assert stem(Path("IM0001")) == "IM0001"
    assert safe_id("../etc/passwd") == "etc_passwd"
    assert safe_id("") == "case"
