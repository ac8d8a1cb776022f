"""A second model (B) for the same scan, headless: panels on A or B, the cache, session
files, the trust question, a B that cannot take the scan, and "changes vs B" of the graph.

Model A is the shipped shortcut demo, model B a revised copy made here by
``lrp-viewer revise``; every map and share is checked against the engine called directly.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.session.revised_demo import CARD, CASE, MARKER, make_revised, untrusted_copy
from viewer.explain import explain, lrp
from viewer.explain.graph import attribution_graph, channel_relevance
from viewer.io import load_scan
from viewer.models import load_model
from viewer.models.demo import DEMO
from viewer.session import Session

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def revised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_revised(tmp_path_factory.mktemp("revised"))


class Counting:
    """The real ``explain``, counting the calls per (method, model)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, module: Any, x: torch.Tensor, method: str = "lrp", **kw: Any) -> Any:
        with self.lock:
            self.calls.append((method, id(module)))
        return explain(module, x, method=method, **kw)


def on_scan(model: Any, scan: Any, **params: Any) -> np.ndarray:
    x, to_scan = model.prepare(scan)
    return np.asarray(to_scan(lrp(model.module, x, **params).relevance), dtype=np.float32)


def two_models(revised: Path, **kw: Any) -> Session:
    s = Session(**kw)
    assert s.open_scan(CASE) and s.open_model(CARD)
    assert s.open_compare_model(revised)
    return s


def test_a_panel_on_model_b_shows_bs_map_and_b_predicts(revised: Path) -> None:
    s = two_models(revised)
    try:
        i = s.add_compare_panel()
        assert i == 1 and [p.model for p in s.panels] == ["A", "B"]
        assert s.panels[1].method == "lrp" and dict(s.panels[1].params) == dict(s.panels[0].params)
        assert s.wait_idle(120)
        a, b = load_model(CARD), load_model(revised)
        scan = load_scan(CASE)
        preset = s.panels[0].preset
        np.testing.assert_allclose(s.result(1).on_scan, on_scan(b, scan, preset=preset), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(s.result(0).on_scan, on_scan(a, scan, preset=preset), rtol=1e-5, atol=1e-7)
        assert np.abs(s.result(0).on_scan - s.result(1).on_scan).max() > 1e-3  # the models differ
        assert s.result(1).request.model_token == s.compare_token != s.result(0).request.model_token
        x, _ = b.prepare(scan)
        np.testing.assert_allclose(s.compare_prediction.probabilities, b.predict(x).mean(0).numpy(), rtol=1e-5)
        assert s.prediction.label(s.prediction.predicted) == "lesion right"  # the marker fools A
        assert s.model_label("A") == "demo2d_shortcut" and s.model_label("B") == "demo2d_shortcut_revised"
        # the metrics compare the two panels like any two methods
        marker = load_scan(MARKER).data != 0
        s.set_mask(marker)
        assert s.wait_idle(60)
        from viewer.explain.metrics import relevance_mass_accuracy, spearman

        report = s.metrics
        assert report.per_panel[1].mass_accuracy == pytest.approx(relevance_mass_accuracy(s.result(1).on_scan, marker))
        assert report.correlations[(0, 1)] == pytest.approx(
            spearman(s.result(0).on_scan, s.result(1).on_scan, spatial_ndim=3))
    finally:
        s.close()


def test_switching_a_panel_a_b_a_uses_the_cache(revised: Path) -> None:
    counting = Counting()
    s = two_models(revised, explain_fn=counting, preview=False)
    try:
        s.add_compare_panel()
        assert s.wait_idle(120)
        first_a, first_b = s.result(0), s.result(1)
        calls = len(counting.calls)
        assert calls == 2  # one LRP per model
        s.set_panel_model(1, "A")  # the main panel's request: a cache hit
        assert s.wait_idle(30) and s.result(1) is first_a
        s.set_panel_model(1, "B")
        assert s.wait_idle(30) and s.result(1) is first_b
        s.set_panel_model(1, "A")
        assert s.wait_idle(30) and s.result(1) is first_a
        assert len(counting.calls) == calls
        s.set_panel_method(1, "gradcam")  # a new method on A: computed once, on A's module
        assert s.wait_idle(60) and len(counting.calls) == calls + 1
        assert counting.calls[-1] == ("gradcam", id(s.model.module))
    finally:
        s.close()


def test_session_file_round_trip_keeps_model_b_and_each_panels_choice(revised: Path, tmp_path: Path) -> None:
    s = two_models(revised)
    try:
        s.add_compare_panel()
        s.add_panel("gradcam")
        s.set_panel_model(2, "B")
        assert s.wait_idle(120)
        maps = [s.result(i).on_scan for i in range(3)]
        path = s.save_session(tmp_path / "two.lrpv")
    finally:
        s.close()
    doc = json.loads(path.read_text())
    assert doc["compare_model"]["path"] == str(revised) and [p.get("model", "A") for p in doc["panels"]] == \
        ["A", "B", "B"]
    t = Session()
    try:
        assert t.open_session(path) == []
        assert t.compare_model_path == str(revised) and [p.model for p in t.panels] == ["A", "B", "B"]
        assert [p.method for p in t.panels] == ["lrp", "lrp", "gradcam"]
        assert t.wait_idle(120)
        for i in range(3):
            np.testing.assert_allclose(t.result(i).on_scan, maps[i], rtol=1e-6, atol=1e-8)
        # a file without model B closes B, and its panels explain A
        doc.pop("compare_model")
        for p in doc["panels"]:
            p.pop("model", None)
        older = tmp_path / "older.lrpv"
        older.write_text(json.dumps(doc))
        assert t.open_session(older) == []
        assert t.compare_model is None and [p.model for p in t.panels] == ["A", "A", "A"]
        # a model B that is gone: named, and the panels fall back to A
        doc["compare_model"] = {"path": str(tmp_path / "gone.toml")}
        doc["panels"][1]["model"] = "B"
        gone = tmp_path / "gone.lrpv"
        gone.write_text(json.dumps(doc))
        problems = t.open_session(gone)
        assert problems == [f"Model B not found: {tmp_path / 'gone.toml'}; its panels explain model A."]
        assert [p.model for p in t.panels] == ["A", "A", "A"]
    finally:
        t.close()


def test_an_untrusted_model_b_asks_the_trust_question(revised: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    card = untrusted_copy(revised, tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.delitem(sys.modules, "userrevised", raising=False)
    s = Session()
    try:
        assert s.open_scan(CASE) and s.open_model(CARD)
        errors: list[tuple[str, str]] = []
        s.error.connect(lambda title, message: errors.append((title, message)))
        asked: list[tuple[str, str]] = []
        s.trust_prompt = lambda path, reason: asked.append((path, reason)) or False
        assert s.open_compare_model(card) is False
        assert s.compare_model is None
        assert asked[0][0] == str(card.absolute()) and "userrevised" in asked[0][1]
        assert errors[-1][0] == "Model B not opened: it needs your trust"
        s.trust_prompt = lambda path, reason: asked.append((path, reason)) or True
        assert s.open_compare_model(card) is True and len(asked) == 2
        assert type(s.compare_model.module).__module__ == "userrevised"
        s.trust_prompt = None  # headless: refused unless trust is given
        assert s.open_compare_model(card) is False
        assert s.open_compare_model(card, trust=True) is True and len(asked) == 2
        s.add_compare_panel()
        assert s.wait_idle(120)
        np.testing.assert_allclose(s.result(1).on_scan, on_scan(load_model(revised), load_scan(CASE),
                                                                preset=s.panels[0].preset), rtol=1e-5, atol=1e-7)
    finally:
        s.close()


def test_model_b_that_cannot_take_the_scan_says_so_and_stays_open() -> None:
    s = Session()
    try:
        errors: list[tuple[str, str]] = []
        s.error.connect(lambda title, message: errors.append((title, message)))
        volume = DEMO / "case_left_large.nii.gz"
        assert s.open_scan(volume) and s.open_model(CARD)
        assert s.open_compare_model(DEMO / "demo3d.toml")
        s.add_compare_panel()
        assert s.wait_idle(300)
        assert s.compare_prediction is not None and s.result(1) is not None and errors == []
        assert s.open_scan(CASE)  # a 2D slice: the 2D model A takes it, the 3D model B cannot
        assert s.wait_idle(120)
        assert s.compare_model is not None and s.prediction is not None and s.result(0) is not None
        message = "Model B (demo3d): This is a 3D model but the image is 2D (shape 48×56)"
        assert s.compare_prediction is None and s.compare_prediction_error.startswith(message)
        assert s.panel_error(1) == s.compare_prediction_error and s.result(1) is None
        assert errors == [("This model cannot take this scan", s.compare_prediction_error)]  # said once
        assert s.open_scan(volume)  # B fits again
        assert s.wait_idle(300)
        assert s.compare_prediction is not None and s.compare_prediction_error is None and s.result(1) is not None
    finally:
        s.close()


def test_model_b_needs_as_many_classes_and_closing_it_returns_panels_to_a(revised: Path) -> None:
    from tests.session.conftest import FakeModel

    s = two_models(revised)
    try:
        errors: list[tuple[str, str]] = []
        s.error.connect(lambda title, message: errors.append((title, message)))
        s.add_compare_panel()
        assert s.set_compare_model(FakeModel(task="segmentation")) is False  # two classes against three
        assert errors[-1][0] == "Cannot compare these models" and "Model B has 2 classes" in errors[-1][1]
        assert s.model_label("B") == "demo2d_shortcut_revised"  # the open B stays
        parts: list[str] = []
        s.compare_changed.connect(parts.append)
        s.clear_compare_model()
        assert s.compare_model is None and s.compare_token == "" and "model" in parts
        assert [p.model for p in s.panels] == ["A", "A"]
        with pytest.raises(ValueError, match="open one first"):
            s.set_panel_model(1, "B")
        with pytest.raises(ValueError, match="A.*or.*B"):
            s.set_panel_model(1, "C")
    finally:
        s.close()


def test_graph_changes_vs_b_are_the_engines_share_differences(revised: Path) -> None:
    s = two_models(revised)
    try:
        s.set_graph_enabled(True)
        with Session() as other, pytest.raises(ValueError, match="Compare with model"):
            other.set_graph_changes(True)  # no model B
        s.set_graph_changes(True)
        assert s.wait_idle(300)
        graph, changes = s.graph(), s.graph_changes()
        assert graph is not None and changes is not None and changes.request.compare_token == s.compare_token
        layers = tuple(graph.graph.layers)
        a, b = load_model(CARD), load_model(revised)
        x, _ = a.prepare(load_scan(CASE))
        target = graph.graph.target
        preset, params = s.graph_lrp()
        expected = {}
        for name, model in (("a", a), ("b", b)):
            sums = channel_relevance(model.module, x, list(layers), target=target, preset=preset, **params)
            expected[name] = {k: (v / v.abs().sum()).numpy() for k, v in sums.items()}
        rows = [(f"{layer}:{c}", float(expected["b"][layer][c] - expected["a"][layer][c]))
                for layer in layers for c in range(len(expected["a"][layer]))]
        rows.sort(key=lambda r: -abs(r[1]))
        top = changes.top()
        assert [r.nid for r in top] == [nid for nid, _ in rows[:10]]
        np.testing.assert_allclose([r.delta for r in top], [d for _, d in rows[:10]], rtol=1e-6, atol=1e-9)
        # the shares are the graph's own: A's nodes, and the nodes of B's graph built by the engine
        for n in graph.graph.nodes[1:]:
            assert changes.change(n.id).share_a == pytest.approx(n.share, rel=1e-5, abs=1e-9)
        g_b = attribution_graph(b.module, x, target=target, layers=list(layers), width=graph.graph.width,
                                preset=preset, heatmaps=False, **params)
        for n in g_b.nodes[1:]:
            assert changes.change(n.id).share_b == pytest.approx(n.share, rel=1e-5, abs=1e-9)
        # switching it off, or closing B, clears it; a cached request comes back at once
        s.set_graph_changes(False)
        assert s.graph_changes() is None
        s.set_graph_changes(True)
        assert s.graph_changes() is not None and s.graph_changes().top() == top
        s.clear_compare_model()
        assert s.wait_idle(30) and s.graph_changes() is None
    finally:
        s.close()
