"""``lrp-viewer`` itself: --version, --help listing every subcommand, dispatch, and what
the desktop's ``%F`` (several files) opens."""

from __future__ import annotations

import importlib
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import viewer
from viewer.cli.gui import launch_files, parse
from viewer.cli.main import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]


def pyproject_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def test_version_comes_from_the_package_metadata():
    assert viewer.__version__ == metadata.version("lrp-viewer") == pyproject_version(), (
        "the installed metadata is stale: reinstall with 'pip install -e .'")


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"lrp-viewer {pyproject_version()}\n"


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--version" in out and "SCAN" in out
    listing = out[out.index("commands (lrp-viewer COMMAND --help for each):"):]
    for command in COMMANDS:
        assert f"  {command.name}" in listing and command.summary in listing
    assert {c.name for c in COMMANDS} >= {"batch", "notices"}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_subcommand_dispatches_and_has_help(command, capsys):
    assert callable(importlib.import_module(command.module).main)
    try:
        code = main([command.name, "--help"])
    except SystemExit as exc:  # argparse's own exit, for commands that do not catch it
        code = exc.code
    assert code == 0
    assert f"lrp-viewer {command.name}" in capsys.readouterr().out


def test_notices_subcommand_checks_licences(capsys):
    assert main(["notices", "--check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Third-party software in lrp-viewer {viewer.__version__}")
    assert "PySide6" in out and "LGPL" in out


def test_desktop_hands_several_files(tmp_path):
    scans = [str(tmp_path / n) for n in ("a.nii.gz", "b.nii.gz", "c_mask.nii.gz")]
    model = str(tmp_path / "card.toml")
    files = launch_files([scans[0], model, scans[1], scans[2]])
    assert files.scan == scans[0]
    assert files.model == model
    assert files.pending == (scans[1], scans[2])
    assert files.session is None


def test_model_flag_wins_and_extra_models_are_offered(tmp_path):
    files = launch_files(["x.toml", "scan.nii"], model="given.toml")
    assert (files.scan, files.model, files.pending) == ("scan.nii", "given.toml", ("x.toml",))


def test_a_lone_session_file_reopens_the_session():
    files = launch_files(["case.lrpv"])
    assert (files.session, files.scan, files.pending) == ("case.lrpv", None, ())
    both = launch_files(["case.lrpv", "scan.nii"])  # with a scan, the scan opens and the session is offered
    assert (both.session, both.scan, both.pending) == (None, "scan.nii", ("case.lrpv",))


def test_a_folder_is_a_scan(tmp_path):
    folder = tmp_path / "series.toml"  # a folder, whatever its name says
    folder.mkdir()
    assert launch_files([str(folder)]).scan == str(folder)


def test_parse_sets_what_the_launcher_reads(tmp_path):
    args = parse(["one.nii", "two.nii", "--mask", "m.nii.gz"])
    assert (args.scan, args.mask, args.model, args.session) == ("one.nii", "m.nii.gz", None, None)
    assert args.files.pending == ("two.nii",)
    assert parse([]).files.scan is None


def test_outputs_record_the_same_version(tmp_path):
    from viewer.cli.batch_summary import PROVENANCE_COLUMNS
    from viewer.io.session_file import SessionState, to_document

    assert to_document(SessionState(), base=tmp_path)["software"] == f"lrp-viewer {pyproject_version()}"
    assert "lrp_viewer_version" in PROVENANCE_COLUMNS  # summary.csv's column (filled in tests/cli/test_batch_summary.py)
