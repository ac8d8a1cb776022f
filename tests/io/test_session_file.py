"""Session files: round trip, relative paths, versioning, malformed files, missing files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from viewer.io import ExportError, SessionFileError
from viewer.io.session_file import PanelSpec, SessionState, load_session, missing_files, save_session


def _state(folder: Path, outside: Path) -> SessionState:
    return SessionState(
        scan_path=str(folder / "scans" / "case_001.nii.gz"),
        series_uid="1.2.826.0.1.3680043.8.498.1",
        model_path=str(outside / "demo3d.toml"),
        mask_path=str(folder / "case_001_mask.nii.gz"),
        panels=(
            PanelSpec("lrp", {"preset": "epsilon-gamma-box", "gamma": 0.25, "epsilon": 1e-6},
                      {"colormap": "bwr", "limit_mode": "percentile", "percentile": 99.5, "opacity": 0.6,
                       "threshold": 0.1, "sign": "both", "visible": True}),
            PanelSpec("gradcam", {"layer": "features.3"}, {"colormap": "coldnhot", "opacity": 0.4}),
        ),
        target=(1, 0),
        device="cuda",
        precision="bfloat16",
        window=(40.0, 80.0),
        view={"radiological": False, "layout": "one-large", "show_crosshair": True, "mask_outline": False},
        cursor=(12, 20, 7),
        views={"axial": {"zoom": 2.5, "pan": [3.5, -1.25]}, "sagittal": {"zoom": 1.0, "pan": [0.0, 0.0]}},
        comparison_open=True,
    )


def test_round_trip_restores_identical_state(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    folder = tmp_path / "study"
    folder.mkdir()
    state = _state(folder, outside)
    path = save_session(state, folder / "review.lrpsession")
    assert load_session(path) == state


def test_paths_relative_below_session_folder_absolute_otherwise(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    folder = tmp_path / "study"
    folder.mkdir()
    path = save_session(_state(folder, outside), folder / "s.lrpsession")
    doc = json.loads(path.read_text())
    assert doc["format"] == "lrp-viewer-session" and doc["version"] == 1
    assert doc["scan"]["path"] == "scans/case_001.nii.gz"
    assert doc["mask"]["path"] == "case_001_mask.nii.gz"
    assert doc["model"]["path"] == str(outside / "demo3d.toml")
    assert "trust" not in json.dumps(doc)
    # the study folder moves as a whole: relative paths follow it
    moved = tmp_path / "moved"
    folder.rename(moved)
    state = load_session(moved / "s.lrpsession")
    assert state.scan_path == str(moved / "scans" / "case_001.nii.gz")
    assert state.mask_path == str(moved / "case_001_mask.nii.gz")


def test_targets_of_every_kind_survive(tmp_path: Path) -> None:
    for target in (None, 3, (2, 0), {"kind": "region", "index": 1}):
        path = save_session(SessionState(target=target), tmp_path / "t.lrpsession", overwrite=True)
        assert load_session(path).target == target


def test_defaults_round_trip(tmp_path: Path) -> None:
    path = save_session(SessionState(), tmp_path / "empty.lrpsession")
    assert load_session(path) == SessionState()


def test_does_not_overwrite_unless_asked(tmp_path: Path) -> None:
    path = save_session(SessionState(device="cpu"), tmp_path / "s.lrpsession")
    with pytest.raises(ExportError, match="already exists"):
        save_session(SessionState(device="cuda"), path)
    assert load_session(path).device == "cpu"
    save_session(SessionState(device="cuda"), path, overwrite=True)
    assert load_session(path).device == "cuda"
    assert [p.name for p in tmp_path.iterdir()] == ["s.lrpsession"]  # no temporary files left


def test_unplain_values_raise_export_error(tmp_path: Path) -> None:
    state = SessionState(panels=(PanelSpec("lrp", {"preset": object()}),))
    with pytest.raises(ExportError, match="not a plain value"):
        save_session(state, tmp_path / "s.lrpsession")
    assert not (tmp_path / "s.lrpsession").exists()


def test_unknown_version_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "future.lrpsession"
    path.write_text(json.dumps({"format": "lrp-viewer-session", "version": 7}))
    with pytest.raises(SessionFileError, match="version 7.*update lrp-viewer"):
        load_session(path)


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"format": "lrp-viewer-session", "version": 1, "panels": [', "broken JSON"),
        ('{"some": "other json"}', "not an lrp-viewer session file"),
        ('[1, 2, 3]', "not an lrp-viewer session file"),
        ('{"format": "lrp-viewer-session"}', "no valid format version"),
        ('{"format": "lrp-viewer-session", "version": 1, "cursor": [1, 2]}', "cursor"),
        ('{"format": "lrp-viewer-session", "version": 1, "panels": [{"params": {}}]}', r"panels\[0\]"),
        ('{"format": "lrp-viewer-session", "version": 1, "window": {"centre": "a", "width": 1}}', "window.centre"),
        ('{"format": "lrp-viewer-session", "version": 1, "target": {"kind": "banana", "index": 1}}', "target.kind"),
        ('{"format": "lrp-viewer-session", "version": 1, "scan": {"path": 5}}', "scan.path"),
    ],
)
def test_malformed_files_raise_session_file_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.lrpsession"
    path.write_text(content)
    with pytest.raises(SessionFileError, match=message):
        load_session(path)


def test_missing_session_file(tmp_path: Path) -> None:
    with pytest.raises(SessionFileError, match="does not exist"):
        load_session(tmp_path / "nope.lrpsession")


def test_unknown_keys_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "s.lrpsession"
    path.write_text(json.dumps({"format": "lrp-viewer-session", "version": 1, "device": "cuda", "later": [1]}))
    assert load_session(path) == SessionState(device="cuda")


def test_missing_files_reports_only_what_is_gone(tmp_path: Path) -> None:
    scan = tmp_path / "scan.nii.gz"
    model = tmp_path / "model.toml"
    model.write_text("")
    state = SessionState(scan_path=str(scan), model_path=str(model), mask_path=None)
    path = save_session(state, tmp_path / "s.lrpsession")
    problems = missing_files(load_session(path))
    assert problems == [f"Scan not found: {scan}"]
    scan.write_bytes(b"")
    assert missing_files(load_session(path)) == []


def test_model_b_and_each_panels_model_round_trip_and_older_files_read_as_model_a(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    state = SessionState(model_path=str(folder / "shortcut.toml"), compare_model_path=str(folder / "revised.toml"),
                         panels=(PanelSpec("lrp", {"preset": "epsilon-plus"}),
                                 PanelSpec("lrp", {"preset": "epsilon-plus"}, model="B")))
    path = save_session(state, folder / "two.lrpsession")
    doc = json.loads(path.read_text())
    assert doc["compare_model"] == {"path": "revised.toml"}
    assert [p.get("model") for p in doc["panels"]] == [None, "B"]  # "A" is the default, not written
    assert load_session(path) == state
    assert missing_files(state) == [f"Model not found: {folder / 'shortcut.toml'}",
                                    f"Model B not found: {folder / 'revised.toml'}"]
    # an older file (no compare_model, no panel models) reads as model A everywhere
    del doc["compare_model"]
    doc["panels"][1].pop("model")
    path.write_text(json.dumps(doc))
    older = load_session(path)
    assert older.compare_model_path is None and [p.model for p in older.panels] == ["A", "A"]
    doc["panels"][1]["model"] = "C"
    path.write_text(json.dumps(doc))
    with pytest.raises(SessionFileError, match=r"panels\[1\]\.model"):
        load_session(path)
