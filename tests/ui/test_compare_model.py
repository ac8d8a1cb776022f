"""A second model in the real window, driven as a user does: Ctrl+Shift+M (File → Compare
with model…), the panels' A/B boxes, the trust question, the graph's "Changes vs B" tab,
and graph-node panels named by their nodes. Maps and shares are checked against the engine.
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
from PySide6 import QtCore, QtWidgets

from tests.session.revised_demo import CARD, CASE, make_revised, untrusted_copy
from tests.ui.conftest import settle, wait_final
from viewer.explain import explain, lrp
from viewer.explain.graph import channel_relevance
from viewer.io import load_scan
from viewer.models import load_model
from viewer.ui.graph_changes import NOT_IN_GRAPH
from viewer.ui.slice_view import plane
from viewer.ui.trust_dialog import OPEN_ANYWAY

pytestmark = pytest.mark.timeout(600)
LEFT = QtCore.Qt.MouseButton.LeftButton


@pytest.fixture(scope="module")
def revised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_revised(tmp_path_factory.mktemp("revised"))


class Counting:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, module: Any, x: torch.Tensor, method: str = "lrp", **kw: Any) -> Any:
        with self.lock:
            self.calls.append(method)
        return explain(module, x, method=method, **kw)


def lrp_on_scan(path: Path, preset: str) -> np.ndarray:
    model = load_model(path)
    x, to_scan = model.prepare(load_scan(CASE))
    return np.asarray(to_scan(lrp(model.module, x, preset=preset).relevance), dtype=np.float32)


def assert_panel_shows(window: Any, i: int, volume: np.ndarray) -> None:
    view = window.comparison.panels[i].view
    np.testing.assert_allclose(view.overlay_slice(), plane(volume, view.orient, view.slice_index), rtol=1e-4,
                               atol=1e-6 * float(np.abs(volume).max()))


def choose_file(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(path), "")))


def press(qtbot: Any, window: Any, key: QtCore.Qt.Key, modifiers=QtCore.Qt.KeyboardModifier.NoModifier) -> None:
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=3000)
    qtbot.keyClick(window, key, modifiers)
    settle(qtbot)


def two_models(qtbot: Any, make_main_window: Any, revised: Path, monkeypatch: pytest.MonkeyPatch,
               **kw: Any) -> Any:
    w = make_main_window(**kw)
    assert w.files.open_scan(str(CASE)) and w.files.open_model(str(CARD))
    wait_final(qtbot, w)
    choose_file(monkeypatch, revised)
    press(qtbot, w, QtCore.Qt.Key.Key_M, QtCore.Qt.KeyboardModifier.ControlModifier
          | QtCore.Qt.KeyboardModifier.ShiftModifier)
    assert w.session.compare_model_path == str(revised)
    wait_final(qtbot, w, panel=1)
    return w


def test_ctrl_shift_m_explains_model_b_beside_a_and_the_ab_box_switches_from_the_cache(
        qtbot: Any, make_main_window: Any, revised: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    counting = Counting()
    w = two_models(qtbot, make_main_window, revised, monkeypatch, explain_fn=counting, preview=False)
    s, pane = w.session, w.comparison
    assert s.comparison_open and pane.isVisible()
    preset = s.panels[0].preset
    map_a, map_b = lrp_on_scan(CARD, preset), lrp_on_scan(revised, preset)
    assert_panel_shows(w, 0, map_a)
    assert_panel_shows(w, 1, map_b)
    a, b = pane.panels
    assert b.model_combo.isVisible() and b.model_combo.currentText() == "B" and a.model_combo.currentText() == "A"
    assert a.title.text() == "1: LRP Epsilon + ZPlus · A: demo2d_shortcut"
    assert b.title.text() == "2: LRP Epsilon + ZPlus · B: demo2d_shortcut_revised"
    names = [pane.metrics_table.item(r, 0).text() for r in range(pane.metrics_table.rowCount())]
    assert names == [a.title.text(), b.title.text()]
    # the bar names both models with their predictions
    x, _ = load_model(CARD).prepare(load_scan(CASE))
    pb = load_model(revised).predict(x)[0]
    top_b = ["no lesion", "lesion left", "lesion right"][int(pb.argmax())]
    text = pane.models_label.text()
    assert f"<b>A:</b> demo2d_shortcut → lesion right {100 * s.prediction.probabilities.max():.0f} %" in text
    assert f"<b>B:</b> demo2d_shortcut_revised → {top_b} {100 * float(pb.max()):.0f} %" in text
    assert ("Ctrl+Shift+M", "Compare with model (a second model B)") in w.shortcut_rows
    # A → B → A with the panel's model box: every map comes from the cache
    calls = len(counting.calls)
    assert calls == 2
    for choice, expected in (("A", map_a), ("B", map_b), ("A", map_a)):
        b.model_combo.setCurrentIndex(b.model_combo.findText(choice))
        settle(qtbot)
        wait_final(qtbot, w, panel=1)
        assert s.panels[1].model == choice
        assert_panel_shows(w, 1, expected)
    assert len(counting.calls) == calls
    # File → Export → Metrics says which model each row explains
    b.model_combo.setCurrentIndex(1)
    wait_final(qtbot, w, panel=1)
    w.files.export_metrics(str(tmp_path / "metrics.json"))
    rows = json.loads((tmp_path / "metrics.json").read_text())
    assert [(r["model"], r["model_name"]) for r in rows] == [("A", "demo2d_shortcut"), ("B", "demo2d_shortcut_revised")]
    assert rows[1]["explained"] == pytest.approx(s.result(1).relevance.explained)
    # closing model B hides the boxes and returns the panel to A
    w.actions_["close_compare_model"].trigger()
    settle(qtbot, 100)
    assert s.compare_model is None and s.panels[1].model == "A"
    assert not b.model_combo.isVisible() and not pane.models_label.isVisible()


def _answer_trust_later(qtbot: Any, button_text: str, seen: list[str]) -> None:
    def answer() -> None:
        box = next((w for w in QtWidgets.QApplication.topLevelWidgets()
                    if w.objectName() == "trustDialog" and w.isVisible()), None)
        if box is None:
            QtCore.QTimer.singleShot(20, answer)
            return
        seen.append(box.text())
        next(b for b in box.buttons() if b.text() == button_text).click()

    QtCore.QTimer.singleShot(20, answer)


def test_an_untrusted_model_b_asks_before_it_opens(qtbot: Any, make_main_window: Any, revised: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    card = untrusted_copy(revised, tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    monkeypatch.delitem(sys.modules, "userrevised", raising=False)
    w = make_main_window()
    assert w.files.open_scan(str(CASE)) and w.files.open_model(str(CARD))
    wait_final(qtbot, w)
    choose_file(monkeypatch, card)
    seen: list[str] = []
    _answer_trust_later(qtbot, "Don't open", seen)
    w.actions_["compare_model"].trigger()
    settle(qtbot)
    assert len(seen) == 1 and str(card.absolute()) in seen[0] and w.session.compare_model is None
    errors = [b for b in QtWidgets.QApplication.topLevelWidgets() if b.objectName() == "errorDialog" and b.isVisible()]
    assert [b.text() for b in errors] == ["Model B not opened: it needs your trust"]
    for box in errors:
        box.close()
    _answer_trust_later(qtbot, OPEN_ANYWAY, seen)
    w.actions_["compare_model"].trigger()
    wait_final(qtbot, w, panel=1)
    assert len(seen) == 2 and w.session.compare_model_path == str(card.absolute())
    assert_panel_shows(w, 1, lrp_on_scan(revised, w.session.panels[0].preset))


def test_the_graph_lists_the_nodes_that_changed_most_vs_b(qtbot: Any, make_main_window: Any, revised: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    w = two_models(qtbot, make_main_window, revised, monkeypatch)
    s, pane = w.session, w.graph.pane
    press(qtbot, w, QtCore.Qt.Key.Key_G)
    qtbot.waitUntil(lambda: pane.drawn is not None and s.graph() is pane.drawn, timeout=300_000)
    panel = pane.changes_panel
    pane.tabs.setCurrentWidget(panel)
    settle(qtbot)
    assert panel.enable_box.isEnabled() and not panel.enable_box.isChecked()
    qtbot.mouseClick(panel.enable_box, LEFT, pos=QtCore.QPoint(8, panel.enable_box.height() // 2))
    qtbot.waitUntil(lambda: panel.table.rowCount() == 10, timeout=300_000)
    settle(qtbot)
    graph = s.graph().graph
    x, _ = s.model.prepare(s.scan)
    preset, params = s.graph_lrp()
    shares = []
    for path in (CARD, revised):
        sums = channel_relevance(load_model(path).module, x, list(graph.layers), target=graph.target, preset=preset,
                                 **params)
        shares.append({k: (v / v.abs().sum()).numpy() for k, v in sums.items()})
    rows = sorted(((f"{layer}:{c}", float(shares[1][layer][c] - shares[0][layer][c])) for layer in graph.layers
                   for c in range(len(shares[0][layer]))), key=lambda r: -abs(r[1]))[:10]
    in_graph = {n.id for n in graph.nodes}
    assert [panel.table.item(r, 0).text() for r in range(10)] == [nid.replace(":", " · ") for nid, _ in rows]
    assert [panel.table.item(r, 3).text() for r in range(10)] == [f"{100 * d:+.1f}" for _, d in rows]
    grey = [panel.table.item(r, 0).foreground().color() == NOT_IN_GRAPH for r in range(10)]
    assert grey == [nid not in in_graph for nid, _ in rows] and any(grey) and not all(grey)
    # every drawn feature node carries its Δ; the most changed ones in the graph are outlined
    for n in graph.nodes[1:]:
        delta = float(shares[1][n.layer][n.channel] - shares[0][n.layer][n.channel])
        assert pane.items[n.id].delta_label.text() == f"Δ {100 * delta:+.1f} pp"
    outlined = {nid for nid, item in pane.items.items() if item.pen().style() == QtCore.Qt.PenStyle.DashLine}
    assert outlined == {nid for nid, _ in rows} & in_graph
    # a click on a listed node that the graph has shows it on the views
    r = next(k for k, (nid, _) in enumerate(rows) if nid in in_graph)
    rect = panel.table.visualItemRect(panel.table.item(r, 0))
    qtbot.mouseClick(panel.table.viewport(), LEFT, pos=rect.center())
    settle(qtbot)
    assert s.graph_selection == (rows[r][0],)


def test_a_graph_node_panel_is_named_by_its_node(qtbot: Any, make_main_window: Any) -> None:
    w = make_main_window()
    assert w.files.open_scan(str(CASE)) and w.files.open_model(str(CARD))
    wait_final(qtbot, w)
    s = w.session
    s.set_graph_enabled(True)
    qtbot.waitUntil(lambda: s.graph() is not None, timeout=300_000)
    first, second = [n.id for n in s.graph().graph.level(1)[:2]]
    index = w.graph.send_to_comparison([first])
    both = w.graph.send_to_comparison([first, second])
    wait_final(qtbot, w, panel=both)
    pane = w.comparison
    one = f"node {first.replace(':', ' · ')}"
    two = f"nodes {first.replace(':', ' · ')} + {second.replace(':', ' · ')}"
    assert pane.panels[index].combo.currentText() == one and pane.panels[both].combo.currentText() == two
    names = [pane.metrics_table.item(r, 0).text() for r in range(pane.metrics_table.rowCount())]
    assert names[index] == f"{index + 1}: {one}" and names[both] == f"{both + 1}: {two}"


def test_a_session_saved_with_two_models_reopens_on_the_comparison(qtbot: Any, make_main_window: Any, revised: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    w = two_models(qtbot, make_main_window, revised, monkeypatch)
    maps = [w.session.result(i).on_scan for i in range(2)]
    path = w.session.save_session(tmp_path / "two.lrpv")
    other = make_main_window()
    assert other.files.open_session(str(path))
    wait_final(qtbot, other, panel=1)
    s, pane = other.session, other.comparison
    assert s.compare_model_path == str(revised) and [p.model for p in s.panels] == ["A", "B"]
    assert pane.isVisible() and not other.views.isVisible()  # the comparison is in front, as it was saved
    assert [p.model_combo.currentText() for p in pane.panels] == ["A", "B"]
    for i in range(2):
        assert_panel_shows(other, i, maps[i])
