"""The batch command under faults: a second run on the same output, a full disk, hostile inputs."""

from __future__ import annotations

import csv
import errno
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from viewer.cli.batch import main
from viewer.cli.batch_lock import LOCK_NAME, OutputLocked, output_lock

ROOT = Path(__file__).resolve().parents[2]


def _summary(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return {row["case"]: row for row in csv.DictReader(fh)}


def _reaped() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


# -- one run per output folder ---------------------------------------------------------------------------------
def test_a_second_run_on_a_held_output_folder_is_refused(tmp_path: Path, tiny_card: Path, write_case,
                                                         capsys) -> None:
    path = write_case(tmp_path / "in" / "a.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    with output_lock(out) as note:
        assert note is None
        assert (out / LOCK_NAME).read_text() == f"{os.getpid()} {socket.gethostname()}\n"
        assert main(["--model", str(tiny_card), str(path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"Another lrp-viewer batch run (PID {os.getpid()}) is writing to {out}" in err
        assert "choose another --out" in err and "Traceback" not in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written by the refused run
        with pytest.raises(OutputLocked):
            with output_lock(out):
                pass
    assert not (out / LOCK_NAME).exists()  # released and removed
    assert main(["--model", str(tiny_card), str(path), "--out", str(out), "--quiet"]) == 0
    assert not (out / LOCK_NAME).exists()


def test_a_live_run_in_another_process_holds_the_folder_until_it_is_killed(tmp_path: Path, tiny_card: Path,
                                                                           write_case, capsys) -> None:
    path = write_case(tmp_path / "in" / "a.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from viewer.cli.batch_lock import output_lock\n"
         f"with output_lock(Path({str(out)!r})):\n    print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["--model", str(tiny_card), str(path), "--out", str(out)]) == 2
        assert f"(PID {holder.pid})" in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)  # like kill -9: the lock file stays, naming a dead process
        holder.wait(timeout=60)
    assert (out / LOCK_NAME).read_text().split()[0] == str(holder.pid)
    assert main(["--model", str(tiny_card), str(path), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"note: took over the lock of an earlier run (PID {holder.pid}) that ended without releasing it" in err
    assert _summary(out)["a"]["status"] == "ok"
    assert not (out / LOCK_NAME).exists()


def test_without_kernel_locks_the_pid_decides(tmp_path: Path, monkeypatch) -> None:
    """File systems without flock (some network mounts): a live PID on this host holds, a dead one does not."""
    from viewer.cli import batch_lock

    monkeypatch.setattr(batch_lock, "_lock_fd", lambda fd: None)
    out = tmp_path / "out"
    out.mkdir()
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (out / LOCK_NAME).write_text(f"{sleeper.pid} {host}\n")
        with pytest.raises(OutputLocked, match=f"PID {sleeper.pid}"):
            with output_lock(out):
                pass
    finally:
        sleeper.kill()
        sleeper.wait(timeout=60)
    dead = _reaped()
    (out / LOCK_NAME).write_text(f"{dead} {host}\n")
    with output_lock(out) as note:
        assert note == f"took over the lock of an earlier run (PID {dead}) that ended without releasing it"
        assert (out / LOCK_NAME).read_text() == f"{os.getpid()} {host}\n"
    (out / LOCK_NAME).write_text(f"{dead} another-host\n")  # cannot tell whether it lives: keep out
    with pytest.raises(OutputLocked, match=f"PID {dead} on another-host"):
        with output_lock(out):
            pass


def test_runs_one_after_the_other_with_different_inputs_keep_every_row(tmp_path: Path, tiny_card: Path,
                                                                       write_case) -> None:
    first = [write_case(tmp_path / "in1" / f"a{i}.nii.gz", seed=i) for i in range(2)]
    second = [write_case(tmp_path / "in2" / f"b{i}.nii.gz", seed=10 + i) for i in range(2)]
    out = tmp_path / "out"
    assert main(["--model", str(tiny_card), "--method", "saliency", *map(str, first), "--out", str(out),
                 "--quiet"]) == 0
    assert main(["--model", str(tiny_card), "--method", "saliency", *map(str, second), "--out", str(out),
                 "--quiet"]) == 0
    rows = _summary(out)
    assert sorted(rows) == ["a0", "a1", "b0", "b1"] and {r["status"] for r in rows.values()} == {"ok"}


# -- a full disk -----------------------------------------------------------------------------------------------
def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_maps_that_cannot_be_written_fail_their_cases_with_the_reason(tmp_path: Path, tiny_card: Path, write_case,
                                                                      monkeypatch, capsys) -> None:
    import nibabel

    for i in range(2):
        write_case(tmp_path / "in" / f"c{i}.nii.gz", seed=i)
    out = tmp_path / "out"
    monkeypatch.setattr(nibabel, "save", _no_space)  # every map write fails; summary.csv still fits
    assert main(["--model", str(tiny_card), str(tmp_path / "in"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "2 cases: 0 ok, 0 skipped, 2 failed" in err
    rows = _summary(out)
    for case in ("c0", "c1"):
        assert rows[case]["status"] == "failed"
        assert rows[case]["error"] == (f"ExportError: {out / case / 'lrp-epsilon-plus.nii.gz'} could not be written "
                                       "(No space left on device). Free disk space or fix the output folder's "
                                       "permissions, then run the same command again.")
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["summary.csv"]  # no temporary files left

    monkeypatch.undo()  # space again: the same command finishes the job
    assert main(["--model", str(tiny_card), str(tmp_path / "in"), "--out", str(out), "--quiet"]) == 0
    assert {r["status"] for r in _summary(out).values()} == {"ok"}


def test_when_nothing_can_be_written_the_run_stops_cleanly(tmp_path: Path, tiny_card: Path, write_case,
                                                           monkeypatch, capsys) -> None:
    import nibabel

    from viewer.cli import batch_run, batch_summary

    for i in range(3):
        write_case(tmp_path / "in" / f"c{i}.nii.gz", seed=i)
    out = tmp_path / "out"
    real_atomic_write = batch_summary.atomic_write
    writes = []

    def summary_write(path, *args, **kwargs):
        writes.append(path)
        if len(writes) > 1:  # the first (empty) summary fits; then the disk is full
            _no_space()
        return real_atomic_write(path, *args, **kwargs)

    explained = []
    real_run = batch_run.Runner.run
    monkeypatch.setattr(batch_run.Runner, "run", lambda self, group: explained.extend(group) or real_run(self, group))
    monkeypatch.setattr(nibabel, "save", _no_space)
    monkeypatch.setattr(batch_summary, "atomic_write", summary_write)
    assert main(["--model", str(tiny_card), str(tmp_path / "in"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert (f"lrp-viewer batch: error: Stopped: {out / 'summary.csv'} cannot be written (No space left on device), "
            "so no further result could be kept.") in err
    assert "run the same command again: finished cases are skipped" in err
    assert len(explained) == 1  # stopped after the first case instead of computing the rest for nothing
    assert _summary(out) == {}  # the last good summary: written before the disk filled up
    assert not (out / LOCK_NAME).exists()


def test_an_output_folder_that_takes_no_lock_file_is_exit_1(tmp_path: Path, tiny_card: Path, write_case,
                                                            monkeypatch, capsys) -> None:
    from viewer.cli import batch_lock

    path = write_case(tmp_path / "in" / "a.nii.gz")
    monkeypatch.setattr(batch_lock.os, "ftruncate", _no_space)
    assert main(["--model", str(tiny_card), str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"Cannot write in the output folder {tmp_path / 'out'} (No space left on device)" in err
    assert "Traceback" not in err


# -- hostile inputs are usage errors, never a hang or a traceback ---------------------------------------------
def test_hostile_inputs_are_usage_errors(tmp_path: Path, tiny_card: Path, write_case, capsys) -> None:
    write_case(tmp_path / "data" / "x.nii.gz", mask=True)
    os.mkfifo(tmp_path / "data" / "fifo.nii.gz")
    out = tmp_path / "out"
    cases = {
        "fifo.csv": ("path\ndata/x.nii.gz\ndata/fifo.nii.gz\n", "fifo.csv, line 3: the path"),
        "nul.csv": ("path\ndata/x.nii.gz\x00\n", "nul.csv, line 2: a NUL byte"),
        "mask.csv": ("path,mask\ndata/x.nii.gz,data/x_mask.nii.gz\ndata/x_mask.nii.gz,\n",
                     "mask.csv, line 3: x_mask.nii.gz is listed as a case but is also the mask of x.nii.gz"),
    }
    for name, (text, words) in cases.items():
        (tmp_path / name).write_text(text)
        assert main(["--model", str(tiny_card), str(tmp_path / name), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, name
    assert main(["--model", str(tiny_card), "--mask-pattern", "{stem:999999999}", str(tmp_path / "data"),
                 "--out", str(out)]) == 2
    assert "--mask-pattern '{stem:999999999}' is not valid: {stem:999999999} has a format" in capsys.readouterr().err
    assert main(["--model", str(tiny_card), str(tmp_path / "data" / "fifo.nii.gz"), "--out", str(out)]) == 2
    assert "is a FIFO (named pipe)" in capsys.readouterr().err
    assert not out.exists()
