"""Exports under faults: errors name the file and reason, the previous file survives, modes follow the umask,
and temporary files a killed export left behind are cleaned up by the next run."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from viewer.io import ExportError, Scan, save_nifti
from viewer.io.atomic import TEMP_PREFIX, atomic_path, atomic_write

ROOT = Path(__file__).resolve().parents[2]


def small_scan(shape=(4, 5, 6)) -> Scan:
    return Scan(np.zeros(shape, np.float32), np.eye(4), (1.0, 1.0, 1.0))


def run_python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=120)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX))


@pytest.mark.parametrize("umask,expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_exports_get_the_mode_of_any_new_file(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        save_nifti(np.ones((4, 5, 6), np.float32), like=small_scan(), path=tmp_path / "r.nii.gz")
        with atomic_write(tmp_path / "t.csv", "w") as fh:
            fh.write("a,b\n")
        with atomic_path(tmp_path / "w.safetensors") as tmp:  # safetensors writes its files 0600 itself
            save_file({"w": torch.zeros(3)}, str(tmp))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.nii.gz").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "t.csv").stat().st_mode) == expected
    assert stat.S_IMODE((tmp_path / "w.safetensors").stat().st_mode) == expected


def test_file_too_large_is_an_export_error_and_the_previous_file_survives(tmp_path):
    """A write that the operating system refuses half-way (here RLIMIT_FSIZE, like a full disk)."""
    target = tmp_path / "map.nii"
    out = run_python(f"""
        import resource, signal, numpy as np
        from viewer.io import ExportError, Scan, save_nifti
        scan = Scan(np.zeros((4, 5, 6), np.float32), np.eye(4), (1.0, 1.0, 1.0))
        save_nifti(np.full((4, 5, 6), 7.0, np.float32), like=scan, path={str(target)!r})  # the previous file
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        big = Scan(np.zeros((40, 50, 60), np.float32), np.eye(4), (1.0, 1.0, 1.0))
        try:
            save_nifti(np.ones((40, 50, 60), np.float32), like=big, path={str(target)!r})
        except ExportError as exc:
            print("ExportError:", exc)
    """)
    assert out.returncode == 0, out.stderr
    message = out.stdout.strip()
    assert message.startswith(f"ExportError: Could not write {target}: File too large.")
    assert "A previous file of that name is unchanged" in message
    np.testing.assert_array_equal(np.asarray(nib.load(str(target)).dataobj), np.full((4, 5, 6), 7.0, np.float32))
    assert leftovers(tmp_path) == []


def test_read_only_folder_is_an_export_error_naming_the_path(tmp_path):
    if os.geteuid() == 0:  # root writes anywhere chmod allows nothing; sysfs refuses new files even to root
        folder = Path("/sys/fs")
        if not folder.is_dir():
            pytest.skip("no sysfs to stand in for a read-only folder")
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        (folder / "map.nii.gz").write_bytes(b"previous")
        folder.chmod(0o555)
    target = folder / "map.nii.gz"
    try:
        with pytest.raises(ExportError) as info:
            save_nifti(np.ones((4, 5, 6), np.float32), like=small_scan(), path=target)
    finally:
        if folder.parent == tmp_path:
            folder.chmod(0o755)
    assert str(info.value).startswith(f"Could not write {target}: Permission denied.")
    assert "read-only or you may not write there; choose another folder" in str(info.value)
    if folder.parent == tmp_path:
        assert (folder / "map.nii.gz").read_bytes() == b"previous"


def test_a_folder_in_the_way_is_an_export_error(tmp_path):
    (tmp_path / "out.csv").mkdir()
    with pytest.raises(ExportError, match="out.csv: Is a directory. A folder has that name"):
        with atomic_write(tmp_path / "out.csv", "w") as fh:
            fh.write("x")
    assert leftovers(tmp_path) == []


def test_errors_of_the_writer_pass_unchanged_and_leave_nothing(tmp_path):
    (tmp_path / "keep.txt").write_text("old")
    with pytest.raises(ValueError, match="boom"):
        with atomic_write(tmp_path / "keep.txt", "w") as fh:
            fh.write("new")
            raise ValueError("boom")
    assert (tmp_path / "keep.txt").read_text() == "old" and leftovers(tmp_path) == []


KILLED_EXPORT = """
    import os, signal
    from viewer.io.atomic import atomic_write
    with atomic_write({target!r}) as fh:
        fh.write(b"x" * 100_000)
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_temporary_file_of_a_killed_export_is_removed_by_the_next_run(tmp_path):
    target = tmp_path / "relevance.nii.gz"
    killed = run_python(KILLED_EXPORT.format(target=str(target)))
    assert killed.returncode == -9
    stale = leftovers(tmp_path)
    assert len(stale) == 1 and stale[0].endswith("-relevance.nii.gz")
    assert (tmp_path / stale[0]).stat().st_size == 100_000 and not target.exists()

    # a temporary file of a process that is still running (this test) must survive, as must other hidden files
    live = tmp_path / f"{TEMP_PREFIX}{os.getpid()}-0123456789abcdef-other.nii.gz"
    live.write_bytes(b"in flight")
    (tmp_path / ".relevance.nii.gz.abc.tmp").write_bytes(b"not ours")

    nxt = run_python(f"""
        import numpy as np
        from viewer.io import Scan, save_nifti
        scan = Scan(np.zeros((4, 5, 6), np.float32), np.eye(4), (1.0, 1.0, 1.0))
        save_nifti(np.ones((4, 5, 6), np.float32), like=scan, path={str(tmp_path / 'next.nii.gz')!r})
    """)
    assert nxt.returncode == 0, nxt.stderr
    assert leftovers(tmp_path) == [live.name]
    assert (tmp_path / ".relevance.nii.gz.abc.tmp").exists() and (tmp_path / "next.nii.gz").exists()


def test_this_runs_own_temporary_files_are_never_taken_for_stale(tmp_path):
    from viewer.io.atomic import remove_stale_temporaries

    with atomic_write(tmp_path / "a.bin") as fh:
        fh.write(b"1")
        mine = leftovers(tmp_path)
        assert len(mine) == 1
        assert remove_stale_temporaries(tmp_path) == [] and leftovers(tmp_path) == mine
    assert (tmp_path / "a.bin").read_bytes() == b"1"
