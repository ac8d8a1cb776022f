"""The session with the real pieces: demo scan, demo models, the LRP engine, Grad-CAM."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from viewer.session import Session


@pytest.fixture
def demo():
    from viewer.models.demo import demo_paths

    paths = demo_paths()
    if not paths.model3d.exists():
        pytest.skip("demo assets not built")
    return paths


def _errors(session: Session) -> list:
    errors: list = []
    session.error.connect(lambda *a: errors.append(a))
    return errors


def test_demo_lrp_presets_match_direct_engine_calls(demo) -> None:
    from viewer.explain import lrp

    before = set(threading.enumerate())
    s = Session()
    errors = _errors(s)
    try:
        assert s.open_demo()
        assert s.wait_idle(120)
        assert errors == []
        p = s.prediction
        assert p is not None and p.labels == ("no lesion", "lesion left", "lesion right")
        assert p.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert s.mask is not None and s.mask.shape == s.scan.shape and s.mask.any()
        assert s.mask[tuple(int(round(v)) for v in s.cursor.ijk)], "the demo opens on its lesion"
        first = s.result(0)
        assert first.request.method == "lrp" and first.request.preset == s.model.preset and not first.preview
        s.set_panel_params(0, preset="epsilon-plus")
        assert s.wait_idle(120)
        plus = s.result(0)
        assert plus.request.preset == "epsilon-plus" and not plus.preview
        assert plus.on_scan.shape == s.scan.shape and plus.on_scan.dtype == np.float32
        c = plus.conservation
        assert abs(c.explained - c.input_sum - c.absorbed) <= 1e-3 * max(1.0, abs(c.explained))

        s.set_panel_params(0, preset="epsilon-gamma-box")
        assert s.wait_idle(120)
        gamma = s.result(0)
        assert gamma.request.preset == "epsilon-gamma-box"
        params = gamma.request.params_dict
        assert (params["low"], params["high"]) == (0.0, 1.0)  # the card's input range for ZBox
        assert not np.allclose(gamma.on_scan, plus.on_scan)

        x, to_scan = s.model.prepare(s.scan)
        direct = lrp(s.model.module, x, **params)
        np.testing.assert_allclose(gamma.on_scan, to_scan(direct.relevance), rtol=1e-4, atol=1e-6)
        assert gamma.relevance.target.index == int(np.argmax(p.probabilities))

        # switching back is served from the cache, synchronously
        s.set_panel_params(0, preset="epsilon-plus")
        assert s.result(0) is plus
        # metrics against the lesion mask
        assert s.wait_idle(60)
        m = s.metrics
        assert m is not None and 0.0 <= m.per_panel[0].mass_accuracy <= 1.0
    finally:
        s.close()
    assert set(threading.enumerate()) == before


def test_demo_2d_model_gradcam_panel_and_perturbation(demo) -> None:
    from viewer.explain import explain
    from viewer.explain.metrics import perturbation_curve

    s = Session(preview=False)
    errors = _errors(s)
    try:
        assert s.open_demo(three_d=False)
        assert s.scan.is_2d and s.model.spatial_dims == 2
        i = s.add_panel("gradcam")
        assert s.wait_idle(60) and errors == []
        cam = s.result(i)
        assert cam.request.params_dict == {"layer": s.model.gradcam_layer}
        x, to_scan = s.model.prepare(s.scan)
        direct = explain(s.model.module, x, method="gradcam", layer=s.model.gradcam_layer)
        np.testing.assert_allclose(cam.on_scan, to_scan(direct.relevance), rtol=1e-4, atol=1e-6)
        assert (0, 1) in s.metrics.correlations
        progress = []
        s.progress.connect(lambda k, f: progress.append((k, f)))
        assert s.request_perturbation(0, patch=8, steps=5)
        assert s.wait_idle(60) and errors == []
        curve = s.perturbation(0)
        ref = perturbation_curve(s.model.module, x, s.result(0).relevance, patch=8, steps=5)
        np.testing.assert_allclose(curve.morf, ref.morf, rtol=1e-5)
        assert progress and all(k == 0 for k, _ in progress)
    finally:
        s.close()


def test_demo_cancel_real_occlusion(demo) -> None:
    s = Session(preview=False)
    try:
        assert s.open_demo(three_d=False) and s.wait_idle(60)
        progressed = threading.Event()
        busy: list = []
        cancelled_at: list = []
        s.progress.connect(lambda i, f: progressed.set())
        s.busy.connect(lambda i, b: busy.append(b))
        s.set_panel_method(0, "occlusion", patch=2, stride=1, batch_size=4)  # thousands of passes
        assert progressed.wait(60)
        s.cancel(0)
        assert s.wait_idle(30)
        assert busy[-2:] == [True, False]
        assert s.result(0) is None and not s.is_busy(0)
        s.set_panel_method(0, "lrp")  # back to LRP: served at once from the cache
        assert s.result(0) is not None and s.result(0).request.method == "lrp"
    finally:
        s.close()


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_demo_on_cuda_matches_cpu(demo) -> None:
    s = Session(preview=False)
    try:
        assert s.open_demo(three_d=False) and s.wait_idle(60)
        cpu = s.result(0).on_scan
        assert s.set_device("cuda")
        assert s.wait_idle(60)
        r = s.result(0)
        assert r.request.device == "cuda" and r.relevance.relevance.device.type == "cpu"
        np.testing.assert_allclose(r.on_scan, cpu, rtol=1e-3, atol=1e-5 * float(np.abs(cpu).max()))
    finally:
        s.close()
