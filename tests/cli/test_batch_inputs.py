"""Finding cases in the batch command's INPUTS: folders, DICOM series, CSV lists, masks, ids."""

from __future__ import annotations

import os
import re
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
    _touch(tmp_path / "x_marker.nii.gz")  # the shortcut demo's marker annotation
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


def test_symlink_loops_and_repeated_links_give_each_real_file_once(tmp_path: Path) -> None:
    root = tmp_path / "in"
    a = _touch(root / "a.nii.gz")
    _touch(root / "sub" / "b.nii.gz")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)  # sub/loop -> in: a cycle
    (root / "sub" / "self").symlink_to(root / "sub", target_is_directory=True)  # sub/self -> sub
    (root / "again.nii.gz").symlink_to(a)  # a second name of a.nii.gz
    (root / "alias").symlink_to(root / "sub", target_is_directory=True)  # another way into sub
    cases, notes = find_cases([root, root / "sub", a])
    assert sorted(c.path.resolve().name for c in cases) == ["a.nii.gz", "b.nii.gz"]
    assert [c.id for c in cases] == ["a", "b"]
    # reached again: again.nii.gz, alias, sub/loop, sub/self, the 'sub' input (4 + 1 in the search) and
    # a.nii.gz named on the command line (a repeat of an input)
    assert any("5 file(s) or folder(s) are reached more than once" in n for n in notes)
    assert any("1 input(s) name the same scan" in n for n in notes)


def test_fifos_are_never_opened(tmp_path: Path) -> None:
    root = tmp_path / "in"
    _touch(root / "a.nii.gz")
    os.mkfifo(root / "pipe")  # opening it for reading would wait for a writer forever
    os.mkfifo(root / "pipe.nii.gz")
    cases, notes = find_cases([root])
    assert [c.id for c in cases] == ["a"]
    assert any("2 entry(ies) are not regular files" in n for n in notes)
    with pytest.raises(InputError, match=r"is a FIFO \(named pipe\), not a scan"):
        find_cases([root / "pipe.nii.gz"])
    os.mkfifo(tmp_path / "list.csv")
    with pytest.raises(InputError, match="list.csv is a FIFO"):
        find_cases([tmp_path / "list.csv"])
    listing = tmp_path / "cohort.csv"
    listing.write_text("path,mask\nin/a.nii.gz,\nin/pipe,\n")
    with pytest.raises(InputError, match=r"cohort.csv, line 3: the path .*pipe is a FIFO \(named pipe\)"):
        find_cases([listing])
    listing.write_text("path,mask\nin/a.nii.gz,in/pipe.nii.gz\n")
    with pytest.raises(InputError, match=r"cohort.csv, line 2: the mask .*pipe.nii.gz is a FIFO"):
        find_cases([listing])
    os.mkfifo(root / "a_mask.nii.gz")
    with pytest.raises(InputError, match=r"--mask-pattern names .*a_mask.nii.gz as the mask of a.nii.gz, but it is "
                                         r"a FIFO \(named pipe\)"):
        find_cases([root], mask_pattern="{stem}_mask.nii.gz")


def test_csv_with_a_nul_byte_is_refused_with_its_line(tmp_path: Path) -> None:
    _touch(tmp_path / "a.nii.gz")
    listing = tmp_path / "list.csv"
    listing.write_bytes(b"path\na.nii.gz\nb\x00.nii.gz\n")
    with pytest.raises(InputError, match="list.csv, line 3: a NUL byte"):
        find_cases([listing])
    listing.write_bytes("path\na.nii.gz\n".encode("utf-16"))  # what some spreadsheets save as "Unicode text"
    with pytest.raises(InputError, match="line 1: a NUL byte.*UTF-16"):
        find_cases([listing])


@pytest.mark.parametrize("pattern, words", [
    ("{stem:999999999}", "has a format"),
    ("{stem!r}_mask.nii.gz", "has a format"),
    ("{stem.__class__}", "is not one of the placeholders"),
    ("{0}", "is not one of the placeholders"),
    ("{stem", "expected '}'"),
    ("mask.nii.gz", "no placeholder"),
    ("{stem}\x00.nii.gz", "NUL"),
])
def test_mask_patterns_are_plain_placeholders(tmp_path: Path, pattern: str, words: str) -> None:
    _touch(tmp_path / "a.nii.gz")
    with pytest.raises(InputError, match=re.escape(words)):
        find_cases([tmp_path], mask_pattern=pattern)


def test_a_csv_row_that_is_another_rows_mask_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path / "x.nii.gz")
    _touch(tmp_path / "x_mask.nii.gz")
    listing = tmp_path / "list.csv"
    listing.write_text("path,mask\nx.nii.gz,x_mask.nii.gz\nx_mask.nii.gz,\n")
    with pytest.raises(InputError, match=r"list.csv, line 3: x_mask.nii.gz is listed as a case but is also the "
                                         r"mask of x.nii.gz \(list.csv, line 2\)"):
        find_cases([listing])
    listing.write_text("path\nx.nii.gz\nx_mask.nii.gz\n")  # the mask comes from --mask-pattern
    with pytest.raises(InputError, match="line 3: x_mask.nii.gz is listed as a case but is also the mask"):
        find_cases([listing], mask_pattern="{stem}_mask.nii.gz")
    # the same two files named on the command line (a shell glob): the mask is used as a mask, and said so
    cases, notes = find_cases([tmp_path / "x.nii.gz", tmp_path / "x_mask.nii.gz"], mask_pattern="{stem}_mask.nii.gz")
    assert [(c.id, c.mask) for c in cases] == [("x", tmp_path / "x_mask.nii.gz")]
    assert "x_mask.nii.gz is the mask of x.nii.gz; it is used as a mask, not a case." in notes


def test_folder_searches_are_bounded(tmp_path: Path, monkeypatch) -> None:
    from viewer.cli import batch_folders

    deep = tmp_path / "deep"
    folder = deep
    for i in range(5):
        folder = folder / f"d{i}"
    _touch(folder / "a.nii.gz")
    assert [c.id for c in find_cases([deep])[0]] == ["a"]
    monkeypatch.setattr(batch_folders, "MAX_DEPTH", 3)
    with pytest.raises(InputError, match="more than 3 levels deep"):
        find_cases([deep])
    monkeypatch.setattr(batch_folders, "MAX_DEPTH", 32)
    monkeypatch.setattr(batch_folders, "MAX_ENTRIES", 4)
    for i in range(5):
        _touch(tmp_path / "wide" / f"s{i}.nii.gz")
    with pytest.raises(InputError, match="holds more than 4 files and folders"):
        find_cases([tmp_path / "wide"])


def test_unreadable_folders_are_skipped_with_a_note(tmp_path: Path, monkeypatch) -> None:
    from viewer.cli import batch_folders

    _touch(tmp_path / "in" / "a.nii.gz")
    locked = tmp_path / "in" / "locked"
    _touch(locked / "b.nii.gz")
    real_scandir = os.scandir

    def scandir(path):  # what a mode-000 folder gives a user who is not root
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(batch_folders.os, "scandir", scandir)
    cases, notes = find_cases([tmp_path / "in"])
    assert [c.id for c in cases] == ["a"]
    assert f"1 folder(s) cannot be read (permission denied) and were skipped (e.g. {locked})." in notes
