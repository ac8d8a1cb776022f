"""The attribution graph as session state, on the real 2D demo model and case.

Every number the session hands to the UI is checked against the engine called
directly (``viewer.explain.graph``): the graph, the node maps on the scan grid, the
prediction of the model with features switched off, the comparison panel of a node.
"""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
import torch

from viewer.explain.graph import GraphError, ablate, attribution_graph
from viewer.session.graph_compute import NODE_METHOD
from viewer.session.session import Session

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def session():
    s = Session()
    assert s.open_demo(three_d=False)
    yield s
    s.close()


def engine(s: Session, preset: str | None = None, **kw):
    """The engine's graph for the open case: ``(graph, x, to_scan, target)``."""
    x, to_scan = s.model.prepare(s.scan)
    p, params = s.graph_lrp()
    target = int(s.model.predict(x).mean(0).argmax())
    g = attribution_graph(s.model.module, x, target=target, preset=preset or p, **params, **kw)
    return g, x, to_scan, target


def built(s: Session):
    s.set_graph_enabled(True)
    assert s.wait_idle(600)
    assert s.graph_error is None
    result = s.graph()
    assert result is not None
    return result


def same_graph(a, b) -> None:
    assert [n.id for n in a.nodes] == [n.id for n in b.nodes]
    np.testing.assert_allclose([n.relevance for n in a.nodes], [n.relevance for n in b.nodes], rtol=1e-5)
    assert [(e.source, e.target) for e in a.edges] == [(e.source, e.target) for e in b.edges]


def test_graph_equals_the_engine_and_selected_nodes_become_the_shown_map(session):
    s = session
    assert s.graph() is None and not s.graph_busy_now()  # nothing is built while the pane is closed
    result = built(s)
    g, x, to_scan, target = engine(s)
    same_graph(result.graph, g)
    assert result.graph.target.index == target
    for nid in g.heatmaps:
        np.testing.assert_allclose(result.maps[nid], to_scan(g.heatmaps[nid]), rtol=1e-5, atol=1e-7)
        assert result.maps[nid].shape == s.scan.shape

    first, second = [n.id for n in g.level(1)[:2]]
    s.select_graph_nodes([first])
    shown = s.graph_overlay()
    assert shown.kind == "nodes" and "features.3 · " in shown.label
    np.testing.assert_array_equal(shown.on_scan, result.maps[first])
    peak = np.unravel_index(np.argmax(result.maps[first]), s.scan.shape)
    assert s.cursor.ijk == tuple(int(v) for v in peak)  # the crosshair jumped to the node's peak

    s.select_graph_nodes([second], add=True)  # shift-click: the sum
    assert s.graph_selection == (first, second)
    np.testing.assert_allclose(s.graph_overlay().on_scan, result.maps[first] + result.maps[second], rtol=1e-6)
    s.select_graph_nodes([first], add=True)  # shift-click again takes it out
    assert s.graph_selection == (second,)
    s.clear_graph_selection()
    assert s.graph_overlay() is None
    with pytest.raises(ValueError, match="not in the current graph"):
        s.select_graph_nodes(["features.3:9999"])


def test_the_graph_waits_for_the_panel_and_follows_its_preset(session):
    s = session
    order: list[str] = []
    s.result_ready.connect(lambda i: order.append(f"panel {i}"))
    s.graph_changed.connect(lambda part: order.append("graph") if part == "graph" and s.graph() else None)
    s.set_graph_enabled(True)
    s.set_panel_params(0, preset="epsilon-alpha2-beta1")
    assert s.wait_idle(600)
    assert order.index("panel 0") < order.index("graph")  # the explanation first, then the graph
    assert s.graph().request.preset == "epsilon-alpha2-beta1"
    same_graph(s.graph().graph, engine(s, "epsilon-alpha2-beta1")[0])


def test_a_preset_change_while_building_never_shows_the_old_graph(session):
    s = session
    running = threading.Event()
    seen: list[tuple[str, str]] = []

    def on_progress(part, _f):
        if part == "graph":
            running.set()

    def on_changed(part):
        g = s.graph()
        if g is not None:
            seen.append((g.request.preset, s.panels[0].preset))

    s.graph_progress.connect(on_progress)
    s.graph_changed.connect(on_changed)
    s.set_graph_enabled(True)
    assert running.wait(300)  # the ε+ graph is being built now
    s.set_panel_params(0, preset="epsilon-alpha2-beta1")
    assert s.wait_idle(600)
    assert s.graph().request.preset == "epsilon-alpha2-beta1"
    assert seen and all(built_for == current for built_for, current in seen)
    assert all(built_for == "epsilon-alpha2-beta1" for built_for, _ in seen)


def test_switching_back_is_instant_from_the_cache_and_cancel_stops_a_build(session):
    s = session
    first = built(s)
    s.set_panel_params(0, preset="epsilon-alpha2-beta1")
    assert s.wait_idle(600)
    s.set_panel_params(0, preset="epsilon-plus")
    assert s.graph() is first and not s.graph_busy_now()  # delivered synchronously, no work queued

    running = threading.Event()
    s.graph_progress.connect(lambda part, f: running.set() if part == "graph" else None)
    s.set_graph_settings(width=(5, 2))
    assert running.wait(300)
    s.cancel_graph()
    assert s.wait_idle(300)
    assert s.graph() is None and s.graph_request is None and not s.graph_busy_now()
    s.refresh_graph()
    assert s.wait_idle(600)
    assert s.graph().request.width == (5, 2)


def test_keep_eighty_percent_and_expanding_a_node_match_the_engine(session):
    s = session
    built(s)
    g = engine(s)[0]
    s.set_graph_settings(keep=True)
    assert s.wait_idle(600)
    same_graph(s.graph().graph, g.prune(0.8))
    s.set_graph_settings(keep=False)
    assert s.wait_idle(600)
    lowest = g.level(2)[0].id
    s.expand_graph_node(lowest, width=2)
    assert s.wait_idle(600)
    grown = s.graph()
    same_graph(grown.graph, g.expand(lowest, width=2))
    new = [e.target for e in grown.graph.children(lowest)]
    assert len(new) == 2 and all(n in grown.maps for n in new)
    with pytest.raises(ValueError, match="output"):
        s.expand_graph_node("output")


def test_switching_features_off_matches_the_api_and_never_touches_the_model(session):
    s = session
    result = built(s)
    g, x, to_scan, target = engine(s)
    module = s.model.module
    weights = {k: v.clone() for k, v in module.state_dict().items()}
    a, b = (n for n in g.level(1)[:2])
    s.switch_off(a.id)
    s.switch_off(b.id)
    assert s.wait_idle(600)
    res = s.ablation_result()
    assert s.ablations == (a.id, b.id) and res is not None and s.ablation_error is None
    twin = ablate(module, {a.layer: [a.channel, b.channel]}, channel_dim=g.channel_dims)
    with torch.no_grad():
        after = torch.softmax(twin(x), dim=1).mean(0).numpy()
        logits = twin(x)[:, target].mean().item()
    np.testing.assert_allclose(res.after.probabilities, after, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(res.before.probabilities, s.model.predict(x).mean(0).numpy(), rtol=1e-5, atol=1e-7)
    assert res.target_index == target and res.logit_after == pytest.approx(logits, rel=1e-5)
    assert res.logit_after < res.logit_before  # the graph's top features carried the decision
    from viewer.explain import lrp

    preset, params = s.graph_lrp()
    expected = to_scan(lrp(twin, x, target=target, preset=preset, **params).relevance)
    np.testing.assert_allclose(res.on_scan, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    shown = s.graph_overlay()
    assert shown.kind == "ablation" and shown.on_scan is res.on_scan
    s.select_graph_nodes([a.id])  # a selected node wins over the ablated map
    assert s.graph_overlay().kind == "nodes"
    s.clear_graph_selection()
    # the user's model is untouched: same weights, no switched-off channels
    for k, v in module.state_dict().items():
        assert torch.equal(v, weights[k])
    assert not any("lrp_viewer_ablated" in name for name, _ in module.named_buffers())
    np.testing.assert_allclose(s.prediction.probabilities, res.before.probabilities, rtol=1e-5)
    s.restore_feature(a.id)
    assert s.wait_idle(600)
    assert s.ablations == (b.id,)
    s.restore_all_features()
    assert s.ablation_result() is None and s.graph_overlay() is None
    assert s.graph() is result


def test_a_node_sent_to_the_comparison_is_a_panel_with_the_graph_node_map(session):
    s = session
    result = built(s)
    top = result.graph.level(1)[0].id
    low = result.graph.level(2)[0].id
    i = s.send_to_comparison([top])
    j = s.send_to_comparison([top, low])
    assert s.comparison_open and s.panels[i].method == NODE_METHOD
    assert s.wait_idle(600)
    panel = s.result(i)
    m = result.maps[top]
    np.testing.assert_allclose(panel.on_scan, m, rtol=1e-4, atol=1e-6 * np.abs(m).max())
    both = result.maps[top] + result.maps[low]
    np.testing.assert_allclose(s.result(j).on_scan, both, rtol=1e-4, atol=1e-6 * np.abs(both).max())
    c = panel.conservation
    assert c is not None and abs(c.error) < 1e-4 * abs(c.explained)
    report = s.metrics  # the demo's mask is open: the node panels are measured like the others
    assert report is not None and report.per_panel[i].mass_accuracy is not None and (0, i) in report.correlations
    with pytest.raises(ValueError, match="Select one or more"):
        s.send_to_comparison([])


def test_session_files_keep_graph_settings_selection_and_switched_off_features(session, tmp_path):
    s = session
    s.set_graph_settings(width=(4, 2), keep=True)
    result = built(s)
    top = result.graph.level(1)[0].id
    s.select_graph_nodes([top])
    s.switch_off(top)
    assert s.wait_idle(600)
    path = s.save_session(tmp_path / "case.lrpsession")
    import json

    doc = json.loads(path.read_text())["graph"]
    assert doc["width"] == [4, 2] and doc["keep"] is True and doc["selected"] == [top] and doc["open"] is True
    assert doc["ablations"] == [[top, 1]]

    other = Session()
    try:
        problems = other.open_session(path)
        assert problems == []
        assert other.graph_settings.width == (4, 2) and other.graph_settings.keep
        assert other.graph_enabled and other.ablations == (top,)
        assert other.wait_idle(600)
        assert other.graph_selection == (top,)
        same_graph(other.graph().graph, result.graph)
        assert other.ablation_result() is not None
        # a file without the graph (an older version) opens with the graph closed and defaults
        del doc
        data = json.loads(path.read_text())
        data.pop("graph")
        data["panels"] = []
        (tmp_path / "old.lrpsession").write_text(json.dumps(data))
        assert other.open_session(tmp_path / "old.lrpsession") == []
        assert not other.graph_enabled and other.graph_settings.width == (6, 3) and other.ablations == ()
        data["graph"] = {"width": [0], "selected": ["nonsense"], "ablations": [["features.3:1", "x"]]}
        (tmp_path / "bad.lrpsession").write_text(json.dumps(data))
        problems = other.open_session(tmp_path / "bad.lrpsession")
        assert any("Graph settings not restored" in p for p in problems)
        assert any("selected" in p for p in problems) and any("ablations" in p for p in problems)
    finally:
        other.close()


def test_bad_graph_requests_say_what_to_do(session, tmp_path):
    s = session
    with pytest.raises(GraphError, match="Valid layer names"):
        s.set_graph_settings(layers=("features.99",))
    with pytest.raises(ValueError, match="whole numbers between 1"):
        s.set_graph_settings(width=(0,))
    with pytest.raises(ValueError, match="layer:channel"):
        s.switch_off("features.3")
    errors = []
    s.error.connect(lambda title, message: errors.append(message))
    assert not s.set_reference_folder(tmp_path)
    assert errors and "No scans" in errors[-1]
    s.set_graph_settings(layers=("features.2", "features.1"))
    result = built(s)
    assert result.graph.layers == ("features.2", "features.1")


def test_reference_examples_match_the_engine_and_open_their_case_there(session, tmp_path):
    from viewer.explain.graph import feature_examples
    from viewer.models.demo import DEMO

    s = session
    folder = tmp_path / "reference"
    folder.mkdir()
    for name in ("case2d_right.nii.gz", "case_left_large.nii.gz", "case_left_large_mask.nii.gz"):
        shutil.copy(DEMO / name, folder / name)
    s.examples_cache_dir = str(tmp_path / "cache")
    assert s.set_reference_folder(folder)
    result = built(s)
    node = result.graph.level(1)[0]
    s.request_examples(node.id)
    assert s.wait_idle(600)
    found = s.examples_result()
    assert found is not None and s.examples_error is None
    from viewer.io import load_scan

    cases = {}
    for name in ("case2d_right", "case_left_large"):  # the mask is not a case
        x, to_scan = s.model.prepare(load_scan(folder / f"{name}.nii.gz"))
        cases[name] = (x, to_scan)
    preset, params = s.graph_lrp()
    direct = feature_examples(s.model.module, node.layer, node.channel, {k: v[0] for k, v in cases.items()},
                              k=8, target=result.graph.target.index, preset=preset,
                              cache_dir=tmp_path / "direct-cache", **params)
    assert [(e.name, e.rank) for e in found.examples] == [(e.case, e.rank) for e in direct]
    np.testing.assert_allclose([e.score for e in found.examples], [e.score for e in direct], rtol=1e-5)
    best = found.examples[0]
    x, to_scan = cases[best.name]
    d = direct[0]
    probe = torch.zeros((x.shape[0], 1, *x.shape[2:]))
    probe[(d.row, 0, *d.center)] = 1.0
    on_scan = np.asarray(to_scan(probe))
    assert on_scan[best.scan_ijk] == on_scan.max() > 0  # the example's voxel is where its peak maps to
    assert list((tmp_path / "cache" / "feature-examples").glob("*.npz"))  # tables cached on disk
    s.request_examples(node.id)
    assert not s.examples_busy() and s.examples_result() is found  # asked again: nothing recomputed
    assert s.open_reference_example(best)
    assert s.scan_path.endswith(f"{best.name}.nii.gz") and s.cursor.ijk == best.scan_ijk
