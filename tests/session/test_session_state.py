"""Session files: a saved session reopens with identical settings; a missing scan
restores everything else and says so."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from viewer.io.session_file import load_session
from viewer.session import Session


@pytest.fixture
def demo_copy(tmp_path: Path) -> tuple[Path, Path, Path]:
    from viewer.models.demo import demo_paths

    paths = demo_paths("case2d_right")
    if not paths.model2d.exists():
        pytest.skip("demo assets not built")
    scan = shutil.copy(paths.scan, tmp_path / "case.nii.gz")
    mask = shutil.copy(paths.mask, tmp_path / "case_mask.nii.gz")
    return Path(scan), Path(mask), paths.model2d


def configured(scan: Path, mask: Path, model: Path) -> Session:
    s = Session()
    with s.batch():
        assert s.open_scan(scan) and s.open_model(model) and s.open_mask(mask)
        s.set_panel_params(0, preset="epsilon-gamma-box", epsilon=0.01, gamma=0.5)
        s.set_overlay(0, colormap="coldnhot", percentile=98.0, opacity=0.4, threshold=0.1, sign="positive")
        s.add_panel("saliency", abs=True)
        s.set_overlay(1, limit_mode="fixed", fixed_limit=0.02, visible=False)
        s.set_target((1, 2))
        s.set_window(0.4, 0.9)
        s.set_view(radiological=False, layout="one-large", show_crosshair=False)
        s.set_cursor((3, 40, 0))
        s.set_views({"axial": {"zoom": 2.0, "pan": [1.5, -2.0]}})
        s.set_comparison_open(True)
    return s


def test_round_trip_restores_identical_settings(demo_copy, tmp_path: Path) -> None:
    scan, mask, model = demo_copy
    a = configured(scan, mask, model)
    try:
        saved = a.to_state()
        path = a.save_session(tmp_path / "study.lrpsession")
        assert load_session(path) == saved
        assert a.recent.entries[0].kind == "session"
    finally:
        a.close()
    b = Session()
    errors: list = []
    b.error.connect(lambda *e: errors.append(e))
    try:
        assert b.open_session(path) == []
        assert errors == []
        assert b.to_state() == saved
        assert b.panels[0].overlay.colormap == "coldnhot" and b.panels[1].params == {"abs": True}
        assert b.window_preset == "Custom" and (b.window.centre, b.window.width) == (0.4, 0.9)
        assert b.cursor.ijk == (3, 40, 0) and b.view.radiological is False
        assert b.wait_idle(60) and errors == []
        assert b.result(0).request.preset == "epsilon-gamma-box"
        t = b.result(0).relevance.target
        assert (t.kind, t.index, t.other) == ("contrast", 1, 2)
    finally:
        b.close()


def test_missing_scan_restores_the_rest(demo_copy, tmp_path: Path) -> None:
    scan, mask, model = demo_copy
    a = configured(scan, mask, model)
    saved = a.to_state()
    path = a.save_session(tmp_path / "study.lrpsession")
    a.close()
    scan.unlink()
    b = Session()
    errors: list = []
    b.error.connect(lambda *e: errors.append(e))
    try:
        problems = b.open_session(path)
        assert any("Scan not found" in p for p in problems)
        assert any("Mask" in p for p in problems)  # the mask needs the scan
        assert [e[0] for e in errors] == ["Session restored with problems"]
        assert b.scan is None and b.model is not None and b.model_path == str(model)
        got = b.to_state()
        same = ("model_path", "panels", "target", "device", "precision", "views", "comparison_open")
        for name in same:
            assert getattr(got, name) == getattr(saved, name), name
        without_window = lambda view: {k: v for k, v in view.items() if k != "window_preset"}  # noqa: E731
        assert without_window(got.view) == without_window(saved.view)  # a window needs its scan
        assert got.scan_path is None and got.window is None and got.cursor is None
        assert b.wait_idle(10)
        assert b.result(0) is None  # nothing to explain without a scan
    finally:
        b.close()


def test_bad_session_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.lrpsession"
    bad.write_text("{ truncated")
    s = Session()
    errors: list = []
    s.error.connect(lambda *e: errors.append(e))
    try:
        problems = s.open_session(bad)
        assert problems and errors[0][0] == "Cannot open session"
    finally:
        s.close()


def test_state_of_an_empty_session_is_neutral() -> None:
    s = Session()
    try:
        state = s.to_state()
        assert (state.scan_path, state.model_path, state.target, state.cursor, state.window) == (None,) * 5
        assert state.panels[0].method == "lrp" and state.panels[0].params == {"preset": "epsilon-plus"}
        assert dataclasses.asdict(state)["view"]["radiological"] is True
    finally:
        s.close()
