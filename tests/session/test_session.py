"""The session with a tiny model and a counting explain function (no real LRP needed)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from tests.session.conftest import SHAPE, FakeExplain, FakeModel, write_nifti
from viewer.session import Session
from viewer.session.profile import relevance_profile


class Events:
    """Collects (signal name, args) from a session, thread-safely."""

    def __init__(self, session: Session, *names: str) -> None:
        self.items: list[tuple] = []
        self.lock = threading.Lock()
        for name in names:
            getattr(session, name).connect(lambda *a, name=name: self._add(name, a))

    def _add(self, name: str, args: tuple) -> None:
        with self.lock:
            self.items.append((name, *args))

    def of(self, name: str) -> list[tuple]:
        with self.lock:
            return [i[1:] for i in self.items if i[0] == name]


def direct_map(session: Session, preset: str = "epsilon-plus", method: str = "lrp", target=None) -> np.ndarray:
    """What the fake explain returns for the open scan, mapped to the scan grid by hand."""
    model = session.model
    x, to_scan = model.prepare(session.scan)
    params = {"preset": preset} if method == "lrp" else {}
    return to_scan(FakeExplain()(model.module, x, method=method, target=target, **params).relevance)


def test_open_predict_explain_on_the_worker(loaded: Session, fake_explain: FakeExplain) -> None:
    s = loaded
    assert s.prediction is not None
    assert s.prediction.labels == ("normal", "lesion left", "lesion right")
    assert s.prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    r = s.result(0)
    assert r is not None and not r.preview and r.request.method == "lrp" and r.request.preset == "epsilon-plus"
    assert r.on_scan.dtype == np.float32 and r.on_scan.shape == SHAPE
    np.testing.assert_allclose(r.on_scan, direct_map(s), rtol=1e-5, atol=1e-7)
    assert fake_explain.threads == {"lrp-viewer-worker"}  # never on the caller's thread
    c = r.conservation
    assert c is not None and c.error == pytest.approx(0.0, abs=1e-5)


def test_grad_cam_preview_comes_first_then_lrp(loaded: Session) -> None:
    s = loaded
    seen = []
    s.result_ready.connect(lambda i: seen.append((i, s.result(i).request.method, s.result(i).preview)))
    events = Events(s, "busy")
    s.set_panel_params(0, preset="epsilon-gamma-box")
    assert s.wait_idle(10)
    assert seen == [(0, "gradcam", True), (0, "lrp", False)]
    assert events.of("busy") == [(0, True), (0, False)]


def test_switching_back_is_instant_from_cache(loaded: Session, fake_explain: FakeExplain) -> None:
    s = loaded
    s.set_panel_params(0, preset="epsilon-gamma-box")
    assert s.wait_idle(10)
    gamma = s.result(0).on_scan
    np.testing.assert_allclose(gamma, direct_map(s, "epsilon-gamma-box"), rtol=1e-5, atol=1e-7)
    n = fake_explain.count()
    events = Events(s, "result_ready", "busy")
    s.set_panel_params(0, preset="epsilon-plus")
    # synchronously: no waiting, no model call
    assert s.result(0).request.preset == "epsilon-plus"
    assert events.of("result_ready") == [(0,)] and (0, True) not in events.of("busy")
    assert fake_explain.count() == n
    assert not np.allclose(s.result(0).on_scan, gamma)


def test_stale_result_is_never_delivered(loaded: Session, fake_explain: FakeExplain) -> None:
    s = loaded
    gate = threading.Event()
    fake_explain.gates["lrp"] = gate
    fake_explain.started.clear()
    shown = []
    s.result_ready.connect(lambda i: shown.append((s.result(i).request.method, s.result(i).request.preset)))
    s.set_panel_params(0, preset="epsilon-gamma-box")  # A: blocks on the worker
    while fake_explain.count("lrp") < 2:  # A's LRP call has started
        assert fake_explain.started.wait(10)
        fake_explain.started.clear()
    s.set_panel_params(0, preset="epsilon-alpha2-beta1")  # B
    del fake_explain.gates["lrp"]
    gate.set()
    assert s.wait_idle(10)
    assert ("lrp", "epsilon-gamma-box") not in shown
    assert shown[-1] == ("lrp", "epsilon-alpha2-beta1")
    assert s.result(0).request.preset == "epsilon-alpha2-beta1"
    assert not s.is_busy(0)


def test_cancel_long_method(loaded: Session, fake_explain: FakeExplain) -> None:
    s = loaded
    events = Events(s, "busy", "progress", "result_ready")
    fake_explain.started.clear()
    s.set_panel_method(0, "occlusion")
    assert fake_explain.started.wait(10)
    assert s.is_busy(0)
    s.cancel(0)
    assert s.wait_idle(5)
    assert events.of("busy")[-1] == (0, False)
    assert s.result(0) is None and not s.is_busy(0)
    assert events.of("result_ready") == []
    # the same settings again computes anew (nothing stale was cached)
    s.set_panel_method(0, "saliency")
    assert s.wait_idle(10) and s.result(0).request.method == "saliency"


def test_explanation_error_goes_to_error_signal(loaded: Session) -> None:
    s = loaded
    events = Events(s, "error", "busy")
    s.set_panel_method(0, "occlusion", stride=999)
    assert s.wait_idle(10)
    assert events.of("error") and "stride too large" in events.of("error")[0][1]
    assert events.of("busy")[-1] == (0, False)


def test_failed_open_keeps_previous_scan(loaded: Session, tmp_path: Path) -> None:
    s = loaded
    before, path, result = s.scan, s.scan_path, s.result(0)
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    events = Events(s, "error", "scan_changed")
    assert s.open_scan(bad) is False
    assert s.open_scan(tmp_path / "missing.nii") is False
    assert [e[0] for e in events.of("error")] == ["Cannot open scan", "Cannot open scan"]
    assert events.of("scan_changed") == []
    assert s.scan is before and s.scan_path == path and s.result(0) is result
    assert s.open_model(tmp_path / "missing.toml") is False
    assert events.of("error")[-1][0] == "Cannot open model"
    assert s.model is not None


def test_mask_alignment_and_metrics(loaded: Session, mask_file: Path, tmp_path: Path) -> None:
    from viewer.explain.metrics import pointing_game, relevance_mass_accuracy, spearman

    s = loaded
    assert s.open_mask(mask_file)
    assert s.mask.dtype == bool and s.mask.sum() == 4 * 4 * 3
    events = Events(s, "error")
    wrong = write_nifti(tmp_path / "wrong.nii.gz", np.ones((5, 5, 5)))
    assert not s.open_mask(wrong)
    assert "same shape" in events.of("error")[0][1] and s.mask.sum() == 48
    i = s.add_panel("saliency")
    assert i == 1
    assert s.wait_idle(10)
    m = s.metrics
    assert m is not None and len(m.per_panel) == 2
    a, b = s.result(0).on_scan, s.result(1).on_scan
    assert m.per_panel[0].mass_accuracy == pytest.approx(relevance_mass_accuracy(a, s.mask))
    assert m.per_panel[1].pointing_game == pointing_game(b, s.mask)
    assert m.correlations[(0, 1)] == pytest.approx(spearman(a, b, spatial_ndim=3))
    s.remove_panel(1)
    assert len(s.panels) == 1 and s.wait_idle(10)
    s.open_scan(write_nifti(tmp_path / "other.nii.gz", np.ones(SHAPE)))
    assert s.mask is None and s.mask_path is None  # the mask belonged to the previous scan


def test_target_changes_reexplain(loaded: Session) -> None:
    s = loaded
    s.set_target(2)
    assert s.wait_idle(10)
    assert s.result(0).relevance.target.index == 2
    np.testing.assert_allclose(s.result(0).on_scan, direct_map(s, target=2), rtol=1e-5, atol=1e-7)
    s.set_target((1, 2))
    assert s.wait_idle(10)
    t = s.result(0).relevance.target
    assert (t.kind, t.index, t.other) == ("contrast", 1, 2)
    with pytest.raises(ValueError):
        s.set_target(7)
    with pytest.raises(ValueError):
        s.set_target({"kind": "region", "index": 1})  # a classifier has no regions


def test_display_state_and_cursor(loaded: Session) -> None:
    s = loaded
    events = Events(s, "cursor_changed", "display_changed", "window_changed", "result_ready")
    assert s.cursor.ijk == (6, 5, 4)
    s.set_cursor((100, -5, 3.4))
    assert s.cursor.ijk == (11, 0, 3) and events.of("cursor_changed") == [((11, 0, 3),)]
    s.move_cursor(2, 10)
    assert s.cursor.ijk == (11, 0, 7)
    s.set_overlay(0, percentile=90.0, colormap="seismic")
    assert events.of("display_changed") == [(0,)]
    on_scan = s.result(0).on_scan
    nz = np.abs(on_scan[on_scan != 0])
    assert s.panel_limit(0) == pytest.approx(np.percentile(nz, 90.0))
    s.set_overlay(0, limit_mode="fixed", fixed_limit=0.25)
    assert s.panel_limit(0) == 0.25
    assert events.of("result_ready") == []  # display changes never recompute
    s.set_window(10, 20)
    assert (s.window.low, s.window.high, s.window_preset) == (0.0, 20.0, "Custom")
    s.reset_window()
    assert s.window_preset == "Default" and s.window.width == pytest.approx(s.scan.robust_window()[1])
    p = s.profile(0, axis=1)
    q = relevance_profile(on_scan, 1)
    np.testing.assert_allclose(p.positive, q.positive)
    np.testing.assert_allclose(p.negative, q.negative)


def test_device_and_precision(loaded: Session) -> None:
    import torch

    s = loaded
    events = Events(s, "error")
    if not torch.cuda.is_available():
        assert s.set_device("cuda") is False
        assert s.device == "cpu" and events.of("error")[0][0] == "CUDA unavailable"
    s.set_precision("bfloat16")
    assert s.wait_idle(20)
    r = s.result(0)
    assert r.request.precision == "bfloat16" and r.on_scan.dtype == np.float32
    assert np.corrcoef(r.on_scan.ravel(), direct_map(s).ravel())[0, 1] > 0.95
    with pytest.raises(ValueError):
        s.set_precision("int8")


def test_comparison_panels_are_limited_and_follow_one_cursor(loaded: Session) -> None:
    s = loaded
    for method in ("saliency", "input_x_gradient", "gradcam"):
        s.add_panel(method)
    with pytest.raises(ValueError, match="At most 4"):
        s.add_panel("saliency")
    with pytest.raises(ValueError):
        s.remove_panel(0)
    assert s.wait_idle(20)
    assert [s.result(i).request.method for i in range(4)] == ["lrp", "saliency", "input_x_gradient", "gradcam"]
    assert len(s.metrics.correlations) == 6  # every pair, no mask needed


def test_untrusted_structure_falls_back(session: Session, scan_file: Path) -> None:
    session.open_scan(scan_file)
    session.set_model(FakeModel(structured=False))
    assert session.panels[0].method == "saliency"
    assert session.wait_idle(10)
    assert session.result(0).request.method == "saliency"
    with pytest.raises(ValueError, match="unavailable"):
        session.set_panel_method(0, "lrp")
    assert dict((n, ok) for n, _, ok, _ in session.available_methods())["gradcam"] is False


def test_close_leaves_no_threads(fake_explain: FakeExplain, scan_file: Path) -> None:
    before = set(threading.enumerate())
    s = Session(explain_fn=fake_explain)
    s.open_scan(scan_file)
    s.set_model(FakeModel())
    s.set_panel_method(0, "occlusion")
    s.close()
    s.close()  # idempotent
    assert set(threading.enumerate()) == before


def test_region_target_on_a_segmentation_model(session: Session, scan_file: Path, mask_file: Path) -> None:
    s = session
    s.open_scan(scan_file)
    s.set_model(FakeModel(task="segmentation"))
    assert s.open_mask(mask_file)
    s.set_target({"kind": "region", "index": 1})
    assert s.wait_idle(10)
    t = s.result(0).relevance.target
    assert t.kind == "region" and t.index == 1
    np.testing.assert_array_equal(np.asarray(t.mask), s.mask)  # the model grid is the scan grid here
    p = s.prediction
    assert p.task == "segmentation" and p.probabilities.shape == (2,)
    assert p.probabilities.sum() == pytest.approx(1.0, abs=1e-5)  # mean of per-voxel softmax
    first = s.result(0).request
    s.clear_mask()  # the region becomes the channel's own predicted region: a new request
    assert s.wait_idle(10)
    assert s.result(0).request != first and s.result(0).request.mask_token is None
    assert s.to_state().target == {"kind": "region", "index": 1}
