"""The attribution graph pane in the real window on the real demo: opened with G, driven
with clicks, shift-clicks, double-clicks and the node menu, and checked against the
engine (``viewer.explain.graph``) called directly."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from PySide6 import QtCore, QtGui, QtWidgets

from tests.ui.conftest import settle, wait_final
from viewer.explain.graph import AttributionGraph, GraphEdge, GraphNode, ablate, attribution_graph, concept_relevance
from viewer.io.colormaps import symmetric_limit
from viewer.session.graph_compute import NODE_METHOD
from viewer.ui.slice_view import plane

pytestmark = pytest.mark.timeout(900)
LEFT = QtCore.Qt.MouseButton.LeftButton
SHIFT = QtCore.Qt.KeyboardModifier.ShiftModifier
NOMOD = QtCore.Qt.KeyboardModifier.NoModifier


def press_g(qtbot, window) -> None:
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_G)
    settle(qtbot)


def wait_graph(qtbot, window, timeout: float = 600.0):
    pane = window.graph.pane
    qtbot.waitUntil(lambda: pane.drawn is not None and window.session.graph() is pane.drawn,
                    timeout=int(timeout * 1000))
    settle(qtbot)
    return pane.drawn


def click_node(qtbot, window, nid: str, modifier=NOMOD, double: bool = False) -> None:
    view = window.graph.pane.view
    pos = view.mapFromScene(window.graph.pane.items[nid].scenePos())
    if double:
        qtbot.mouseDClick(view.viewport(), LEFT, modifier, pos)
    else:
        qtbot.mouseClick(view.viewport(), LEFT, modifier, pos)
    settle(qtbot)


def close_boxes() -> int:
    boxes = [w for w in QtWidgets.QApplication.topLevelWidgets()
             if isinstance(w, QtWidgets.QMessageBox) and w.isVisible()]
    for box in boxes:
        box.close()
    return len(boxes)


def api(window):
    """``(x, to_scan, target, preset, params)`` as the engine sees the open case."""
    s = window.session
    x, to_scan = s.model.prepare(s.scan)
    target = int(s.model.predict(x).mean(0).argmax())
    preset, params = s.graph_lrp()
    return x, to_scan, target, preset, params


def node_map(window, nid: str) -> np.ndarray:
    """The node's conditional heatmap from the engine, on the scan grid."""
    x, to_scan, target, preset, params = api(window)
    layer, channel = nid.rsplit(":", 1)
    cr = concept_relevance(window.session.model.module, x, layer, [int(channel)], target, preset, **params)
    return to_scan(cr.maps[0])


def assert_views_show(window, volume: np.ndarray) -> None:
    scale = float(np.abs(volume).max())
    for name, view in window.views.views.items():
        if not view.isVisible():
            continue
        np.testing.assert_allclose(view.overlay_slice(), plane(volume, view.orient, view.slice_index), rtol=1e-4,
                                   atol=1e-6 * scale, err_msg=name)


@pytest.fixture
def demo2d(make_main_window, qtbot):
    w = make_main_window()
    assert w.session.open_demo(three_d=False)
    wait_final(qtbot, w)
    return w


def test_g_opens_the_graph_and_a_clicked_node_becomes_the_overlay_in_every_view(make_main_window, qtbot):
    w = make_main_window()
    assert w.open_demo()  # the 3D demo
    wait_final(qtbot, w)
    s, pane = w.session, w.graph.pane
    press_g(qtbot, w)
    assert w.actions_["graph"].isChecked() and w.graph.dock.isVisible() and s.graph_enabled
    result = wait_graph(qtbot, w)
    assert set(pane.items) == {n.id for n in result.graph.nodes}
    assert "lesion left" in pane.status.text() and "features.3" in pane.status.text()

    first, second = [n.id for n in result.graph.level(1)[:2]]
    click_node(qtbot, w, first)
    expected = node_map(w, first)
    assert s.cursor.ijk == tuple(int(v) for v in np.unravel_index(np.argmax(expected), expected.shape))
    assert_views_show(w, expected)
    limit = w.views.views["axial"]._overlay_limit
    assert limit == pytest.approx(symmetric_limit(expected, 99.5), rel=1e-4)
    layer, channel = first.split(":")
    bar = w.overlay_panel.colorbar
    assert f"{layer} · {channel}" in bar.title and bar.limit == pytest.approx(limit)
    assert "Views show: features.3" in pane.node_panel.shown.text()
    value = float(expected[s.cursor.ijk])
    assert f"{layer} · {channel} {value:.4g}" in w.status_label.text()  # the status bar reads the shown map

    click_node(qtbot, w, second, SHIFT)  # shift-click: the sum of both maps
    assert s.graph_selection == (first, second)
    assert_views_show(w, expected + node_map(w, second))

    click_node(qtbot, w, "output")  # the target: back to the explanation
    assert s.graph_selection == ()
    assert_views_show(w, s.result(0).on_scan)

    press_g(qtbot, w)
    assert not w.graph.dock.isVisible() and not s.graph_enabled


def test_switching_a_feature_off_shows_the_prediction_the_api_computes(demo2d, qtbot):
    w, s, pane = demo2d, demo2d.session, demo2d.graph.pane
    press_g(qtbot, w)
    result = wait_graph(qtbot, w)
    node = result.graph.level(1)[0]
    menu = pane.node_menu(node.id)
    off = next(a for a in menu.actions() if a.text() == "Switch off this feature")
    off.trigger()
    menu.deleteLater()
    qtbot.waitUntil(lambda: s.ablation_result() is not None and pane.whatif_panel.table.rowCount() == 3,
                    timeout=600_000)
    settle(qtbot)
    x, to_scan, target, preset, params = api(w)
    twin = ablate(s.model.module, {node.layer: [node.channel]}, channel_dim=result.graph.channel_dims)
    with torch.no_grad():
        probs = torch.softmax(twin(x), dim=1).mean(0).numpy()
        logit = float(twin(x)[:, target].mean())
    before = s.model.predict(x).mean(0).numpy()
    table = pane.whatif_panel.table
    for r in range(3):
        assert table.item(r, 0).text() == s.model.labels[r]
        assert table.item(r, 1).text() == f"{100 * before[r]:.1f} %"
        assert table.item(r, 2).text() == f"{100 * probs[r]:.1f} %"
    assert f"→ {logit:.4g}" in pane.whatif_panel.status.text()
    assert pane.whatif_panel.list.count() == 1 and node.id in s.ablations
    from viewer.explain import lrp

    assert_views_show(w, to_scan(lrp(twin, x, target=target, preset=preset, **params).relevance))
    assert pane.items[node.id].cross is not None and pane.items[node.id].cross.isVisible()

    menu = pane.node_menu(node.id)
    restore = next(a for a in menu.actions() if a.text() == "Restore this feature")
    restore.trigger()
    menu.deleteLater()
    settle(qtbot)
    assert s.ablations == () and table.rowCount() == 0
    assert_views_show(w, s.result(0).on_scan)


def test_switching_preset_while_the_graph_computes_never_shows_a_stale_graph(demo2d, qtbot, monkeypatch):
    import threading

    import viewer.session.graph as graph_module
    from viewer.explain.progress import Progress

    w, s, pane = demo2d, demo2d.session, demo2d.graph.pane
    drawn: list[tuple] = []
    original = pane._draw

    def recording(result):
        drawn.append((None if result is None else result.request, s.graph_request, s.panels[0].preset))
        original(result)

    started, release = threading.Event(), threading.Event()
    real = graph_module.build_graph

    def held(ctx, req, mask, cached, progress):
        """The ε+ build waits mid-way until the preset has changed, then finishes anyway
        (deaf to its cancel flag): a finished stale graph must still never be shown."""
        if req.preset == "epsilon-plus":
            started.set()
            release.wait(120)
            return real(ctx, req, mask, cached, Progress())
        return real(ctx, req, mask, cached, progress)

    monkeypatch.setattr(pane, "_draw", recording)
    monkeypatch.setattr(graph_module, "build_graph", held)
    press_g(qtbot, w)
    qtbot.waitUntil(started.is_set, timeout=300_000)
    settle(qtbot)
    assert pane.drawn is None and "Building" in pane.status.text()
    w.explain_panel.root.child("preset").setValue("epsilon-alpha2-beta1")
    qtbot.waitUntil(lambda: s.graph_request is not None and s.graph_request.preset == "epsilon-alpha2-beta1",
                    timeout=60_000)
    release.set()
    qtbot.waitUntil(lambda: pane.drawn is not None, timeout=600_000)
    wait_final(qtbot, w)
    assert s.wait_idle(600)
    settle(qtbot)
    shown = [(req, current, preset) for req, current, preset in drawn if req is not None]
    assert shown and all(req == current and req.preset == preset == "epsilon-alpha2-beta1"
                         for req, current, preset in shown)
    x, _to_scan, target, preset, params = api(w)
    g = attribution_graph(s.model.module, x, target=target, preset="epsilon-alpha2-beta1", **params)
    assert set(pane.items) == {n.id for n in g.nodes}


def test_double_click_expands_and_the_pickers_rebuild_the_graph(demo2d, qtbot):
    w, s, pane = demo2d, demo2d.session, demo2d.graph.pane
    press_g(qtbot, w)
    result = wait_graph(qtbot, w)
    low = result.graph.level(2)[0].id
    click_node(qtbot, w, low, double=True)
    grown = wait_graph(qtbot, w)
    qtbot.waitUntil(lambda: s.graph() is not None and s.graph() is not result, timeout=600_000)
    grown = wait_graph(qtbot, w)
    children = [e.target for e in grown.graph.children(low)]
    assert len(children) == 3 and all(c.startswith("features.1:") and c in pane.items for c in children)

    pane.keep_box.click()  # keep 80 % of the flow
    qtbot.waitUntil(lambda: s.graph() is not None and s.graph().request.keep == 0.8, timeout=600_000)
    kept = wait_graph(qtbot, w)
    assert set(pane.items) == {n.id for n in kept.graph.nodes} and len(pane.items) < len(grown.graph.nodes)
    assert "pruned to 80 %" in pane.status.text()

    pane.keep_box.click()
    pane.width_edit.setText("3,2")
    pane.width_edit.editingFinished.emit()
    qtbot.waitUntil(lambda: s.graph() is not None and s.graph().request.width == (3, 2), timeout=600_000)
    narrow = wait_graph(qtbot, w)
    assert len(narrow.graph.level(1)) == 3 and all(len(narrow.graph.children(n.id)) <= 2
                                                   for n in narrow.graph.level(1))
    pane._fill_layers_menu()
    names = [a.text() for a in pane.layers_menu.actions()]
    assert "features.1" in names and "features.3" in names
    pane.toggle_layer("features.1", True)
    settle(qtbot)
    assert s.graph_settings.layers == ("features.1",) and pane.layers_button.text() == "Layers: features.1"
    pane.width_edit.setText("0")
    pane.width_edit.editingFinished.emit()
    assert close_boxes() == 1 and s.graph_settings.width == (3, 2) and pane.width_edit.text() == "3,2"


def test_send_to_comparison_and_export_from_the_pane(demo2d, qtbot, tmp_path):
    w, s, pane = demo2d, demo2d.session, demo2d.graph.pane
    press_g(qtbot, w)
    result = wait_graph(qtbot, w)
    nid = result.graph.level(1)[0].id
    click_node(qtbot, w, nid)
    pane.node_panel.compare_button.click()
    settle(qtbot)
    assert s.comparison_open and s.panels[-1].method == NODE_METHOD
    i = len(s.panels) - 1
    qtbot.waitUntil(lambda: s.result(i) is not None, timeout=600_000)
    settle(qtbot)
    np.testing.assert_allclose(s.result(i).on_scan, result.maps[nid], rtol=1e-4,
                               atol=1e-6 * np.abs(result.maps[nid]).max())
    assert w.comparison.panels[i].view.overlay_slice() is not None

    png, svg, js = (pane.export(tmp_path / f"graph.{k}") for k in ("png", "svg", "json"))
    image = QtGui.QImage(str(png))
    assert not image.isNull() and image.width() > 400
    tree = ET.parse(svg)
    assert sum(1 for el in tree.iter() if el.tag.endswith("path")) >= len(result.graph.edges)
    doc = json.loads(js.read_text())
    assert doc["selected"] == [nid] and doc["model"]["name"] == s.model.name
    back = AttributionGraph.from_json(js)
    assert [n.id for n in back.nodes] == [n.id for n in result.graph.nodes]


def test_reference_examples_open_their_case_where_the_feature_responds(demo2d, qtbot, tmp_path, monkeypatch):
    from viewer.models.demo import DEMO

    w, s, pane = demo2d, demo2d.session, demo2d.graph.pane
    folder = tmp_path / "reference"
    folder.mkdir()
    for name in ("case_left_large.nii.gz", "case_right_small.nii.gz"):
        shutil.copy(DEMO / name, folder / name)
    s.examples_cache_dir = str(tmp_path / "cache")
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    w.actions_["reference_cases"].trigger()
    assert s.reference_folder == str(folder)
    press_g(qtbot, w)
    result = wait_graph(qtbot, w)
    nid = result.graph.level(1)[0].id
    click_node(qtbot, w, nid)
    pane.tabs.setCurrentWidget(pane.examples_panel)
    qtbot.waitUntil(lambda: len(pane.examples_panel.buttons) == 2, timeout=600_000)
    example = s.examples_result().examples[0]
    assert example.name in pane.examples_panel.buttons[0].text()
    pane.examples_panel.buttons[0].click()
    qtbot.waitUntil(lambda: s.scan_path is not None and s.scan_path.endswith(f"{example.name}.nii.gz"),
                    timeout=60_000)
    settle(qtbot)
    assert s.cursor.ijk == example.scan_ijk
    assert w.windowTitle().startswith(f"lrp-viewer — {example.name}.nii.gz")


def test_a_saved_session_reopens_the_pane_with_its_selection(demo2d, qtbot, make_main_window, tmp_path):
    w, s = demo2d, demo2d.session
    press_g(qtbot, w)
    result = wait_graph(qtbot, w)
    nid = result.graph.level(1)[1].id
    click_node(qtbot, w, nid)
    path = s.save_session(tmp_path / "graph.lrpsession")
    other = make_main_window()
    assert other.files.open_session(str(path))
    qtbot.waitUntil(lambda: other.graph.dock.isVisible() and other.graph.pane.drawn is not None, timeout=600_000)
    wait_final(qtbot, other)
    settle(qtbot)
    assert other.actions_["graph"].isChecked() and other.session.graph_selection == (nid,)
    assert_views_show(other, other.session.graph().maps[nid])


def test_a_graph_of_150_nodes_is_laid_out_in_rows_without_overlap(qapp):
    from viewer.explain.target import Target
    from viewer.session.graph_requests import GraphRequest, GraphResult, GraphSettings
    from viewer.session.session import Session
    from viewer.ui.graph_items import LABEL_W, MIN_GAP, layout
    from viewer.ui.graph_pane import GraphPane

    rng = np.random.default_rng(0)
    nodes = [GraphNode("output", "output", 0, 0, 10.0, 1.0)]
    edges = []
    for a in range(15):
        nodes.append(GraphNode(f"top:{a}", "top", a, 1, float(rng.normal()), float(rng.uniform(-0.2, 0.2))))
        edges.append(GraphEdge("output", f"top:{a}", nodes[-1].relevance, 0.1))
        for b in range(9):
            c = a * 9 + b
            nodes.append(GraphNode(f"low:{c}", "low", c, 2, float(rng.normal()), float(rng.uniform(-0.1, 0.1))))
            edges.append(GraphEdge(f"top:{a}", f"low:{c}", float(rng.normal()), float(rng.uniform(-1, 1))))
    graph = AttributionGraph(tuple(nodes), tuple(edges), ("top", "low"), (15, 9), Target.cls(0), 10.0,
                             "epsilon-plus", {}, {"top": 1, "low": 1})
    placed = layout(graph)
    assert len(placed) == 151
    for level in (1, 2):
        xs = sorted(placed[n.id].x for n in graph.level(level))
        assert min(np.diff(xs)) >= LABEL_W + MIN_GAP - 1e-9 and {placed[n.id].y for n in graph.level(level)} == {
            level * 120.0}
    # each parent sits over its own children, and the children of two parents never interleave
    blocks = []
    for a in range(15):
        kids = sorted(placed[f"low:{a * 9 + b}"].x for b in range(9))
        assert kids[0] <= placed[f"top:{a}"].x <= kids[-1]
        blocks.append((placed[f"top:{a}"].x, kids[0], kids[-1]))
    blocks.sort()
    assert all(left[2] < right[1] for left, right in zip(blocks, blocks[1:]))
    assert placed["output"].x == pytest.approx(np.mean([placed[f"top:{a}"].x for a in range(15)]))
    session = Session()
    try:
        pane = GraphPane(session)
        request = GraphRequest.make("s", "m", "epsilon-plus", {}, None, GraphSettings())
        pane._draw(GraphResult(request, graph, {}, {}))
        assert len(pane.items) == 151
        assert sum(isinstance(i, QtWidgets.QGraphicsPathItem) and i.parentItem() is None
                   for i in pane.scene.items()) == len(edges)
        pane.deleteLater()
    finally:
        session.close()
