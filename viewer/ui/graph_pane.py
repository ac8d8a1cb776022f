"""The attribution graph pane: the graph of the current explanation, and what to do with it.

The drawing is a QGraphicsScene (one item per node and edge, laid out by
:func:`viewer.ui.graph_items.layout`), redrawn only when the session hands over another
graph object, so selecting nodes or switching features off only restyles items. What
is drawn is always ``session.graph()``: while a new graph is computed the scene is
empty and says so, so a graph built for other settings is never on screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6 import QtCore, QtGui, QtWidgets

from viewer.io import colormaps
from viewer.ui.dialogs import show_error
from viewer.ui.graph_changes import ChangesPanel
from viewer.ui.graph_items import LABEL_H, LABEL_W, R_MAX, ROOT, NodeItem, Palette, edge_item, layout
from viewer.ui.graph_panels import ExamplesPanel, NodePanel, WhatIfPanel

BACKGROUND = QtGui.QColor(30, 30, 30)
MAX_FIT_SCALE = 1.4


class GraphView(QtWidgets.QGraphicsView):
    """The scene's view: click, shift-click, double-click and right-click on nodes; wheel zooms,
    dragging the background pans."""

    nodeClicked = QtCore.Signal(str, bool)  # node id, shift held
    nodeDoubleClicked = QtCore.Signal(str)
    nodeMenuRequested = QtCore.Signal(str, QtCore.QPoint)  # node id, global position

    def __init__(self, scene: QtWidgets.QGraphicsScene) -> None:
        super().__init__(scene)
        self.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        self.setBackgroundBrush(BACKGROUND)
        self.setDragMode(QtWidgets.QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QtWidgets.QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QtWidgets.QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.auto_fit = True  # follow the pane's size until the user zooms

    def node_at(self, pos: QtCore.QPoint) -> str | None:
        for item in self.items(pos):
            while item is not None and not isinstance(item, NodeItem):
                item = item.parentItem()
            if item is not None:
                return item.node_id
        return None

    def mousePressEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802
        nid = self.node_at(ev.position().toPoint())
        if nid is not None and ev.button() == QtCore.Qt.MouseButton.LeftButton:
            self.nodeClicked.emit(nid, bool(ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier))
            ev.accept()
            return
        super().mousePressEvent(ev)

    def mouseDoubleClickEvent(self, ev: QtGui.QMouseEvent) -> None:  # noqa: N802
        nid = self.node_at(ev.position().toPoint())
        if nid is not None:
            self.nodeDoubleClicked.emit(nid)
            ev.accept()
            return
        super().mouseDoubleClickEvent(ev)

    def contextMenuEvent(self, ev: QtGui.QContextMenuEvent) -> None:  # noqa: N802
        nid = self.node_at(ev.pos())
        if nid is not None:
            self.nodeMenuRequested.emit(nid, ev.globalPos())
            ev.accept()

    def wheelEvent(self, ev: QtGui.QWheelEvent) -> None:  # noqa: N802
        factor = 1.15 ** (ev.angleDelta().y() / 120.0)
        self.scale(factor, factor)
        self.auto_fit = False
        ev.accept()

    def resizeEvent(self, ev: QtGui.QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(ev)
        if self.auto_fit:
            self.fit()

    def fit(self) -> None:
        rect = self.sceneRect()
        self.fitInView(rect, QtCore.Qt.AspectRatioMode.KeepAspectRatio)
        if self.transform().m11() > MAX_FIT_SCALE:  # a small graph stays readable, not huge
            self.resetTransform()
            self.scale(MAX_FIT_SCALE, MAX_FIT_SCALE)
            self.centerOn(rect.center())


class GraphPane(QtWidgets.QWidget):
    """Controls (layers, width, keep 80 %, refresh, cancel, export), the graph, and side panels."""

    def __init__(self, session: Any, choose_reference: Callable[[], Any] | None = None,
                 compare: Callable[[Any], Any] | None = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.compare = compare or session.send_to_comparison  # ids (None: the selection) -> a comparison panel
        self.items: dict[str, NodeItem] = {}
        self.drawn: Any = None  # the GraphResult on screen (None: nothing drawn)
        self.draw_log: list[Any] = []  # requests of the graphs drawn, newest last (tests, debugging)
        self.cmap = colormaps.DEFAULT

        self.layers_button = QtWidgets.QToolButton()
        self.layers_button.setText("Layers: automatic")
        self.layers_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        self.layers_menu = QtWidgets.QMenu(self.layers_button)
        self.layers_menu.aboutToShow.connect(self._fill_layers_menu)
        self.layers_button.setMenu(self.layers_menu)
        self.width_edit = QtWidgets.QLineEdit("6,3")
        self.width_edit.setMaximumWidth(70)
        self.width_edit.setToolTip("Nodes at level 1, then children per node at each further level")
        self.width_edit.setValidator(QtGui.QRegularExpressionValidator(QtCore.QRegularExpression(r"[0-9, ]*")))
        self.width_edit.editingFinished.connect(self._on_width)
        self.keep_box = QtWidgets.QCheckBox("Keep 80 % of flow")
        self.keep_box.setToolTip("Show only the nodes that carry 80 % of the relevance flow to the target")
        self.keep_box.toggled.connect(lambda on: self._guard("Keep 80 %", lambda: session.set_graph_settings(keep=on)))
        self.refresh_button = QtWidgets.QPushButton("Build again")
        self.refresh_button.clicked.connect(lambda _c=False: session.refresh_graph())
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda _c=False: session.cancel_graph())
        self.export_button = QtWidgets.QToolButton()
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QtWidgets.QMenu(self.export_button)
        menu.addAction("Graph as PNG…").triggered.connect(lambda _c=False: self._ask_export("png"))
        menu.addAction("Graph as SVG…").triggered.connect(lambda _c=False: self._ask_export("svg"))
        menu.addAction("Graph as JSON…").triggered.connect(lambda _c=False: self._ask_export("json"))
        self.export_button.setMenu(menu)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(160)
        self.progress.setTextVisible(False)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        bar = QtWidgets.QHBoxLayout()
        for w in (self.layers_button, QtWidgets.QLabel("Width:"), self.width_edit, self.keep_box,
                  self.refresh_button, self.cancel_button, self.export_button, self.progress):
            bar.addWidget(w)
        bar.addStretch(1)

        self.scene = QtWidgets.QGraphicsScene(self)
        # a few hundred items: a linear search is cheaper than keeping a BSP index up to date
        self.scene.setItemIndexMethod(QtWidgets.QGraphicsScene.ItemIndexMethod.NoIndex)
        self.view = GraphView(self.scene)
        self.view.nodeClicked.connect(self._on_click)
        self.view.nodeDoubleClicked.connect(lambda nid: self._guard("Expand", lambda: session.expand_graph_node(nid)))
        self.view.nodeMenuRequested.connect(lambda nid, pos: self.node_menu(nid).exec(pos))
        self.node_panel = NodePanel(session, self._guard, lambda: self.compare(None))
        self.whatif_panel = WhatIfPanel(session)
        self.examples_panel = ExamplesPanel(session, choose_reference or (lambda: None))
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(self.node_panel, "Node")
        self.tabs.addTab(self.whatif_panel, "What if")
        self.tabs.addTab(self.examples_panel, "Reference examples")
        self.changes_panel = ChangesPanel(session, lambda nid: self._guard("Select", lambda: session.select_graph_nodes(
            [nid])))
        self.tabs.addTab(self.changes_panel, "Changes vs B")
        self.tabs.currentChanged.connect(lambda _i: self._want_examples())
        split = QtWidgets.QSplitter()
        split.addWidget(self.view)
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self.view.setMinimumWidth(320)
        self.tabs.setMinimumWidth(260)
        split.setSizes([3000, 1300])  # proportions; the splitter scales them to its width
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(self.status)
        lay.addWidget(split, 1)

    # -- user → session ---------------------------------------------------------------------
    def _guard(self, title: str, fn: Callable[[], Any]) -> None:
        """Run a user's request; a refusal (bad width, unknown layer, ...) is shown, never raised."""
        try:
            fn()
        except ValueError as exc:
            show_error(self, title, str(exc))
            self.refresh("settings")

    def _on_click(self, nid: str, shift: bool) -> None:
        if nid == ROOT:
            self.session.clear_graph_selection()
            return
        self.node_panel.focus = nid
        self._guard("Select", lambda: self.session.select_graph_nodes([nid], add=shift))
        self._want_examples()

    def _want_examples(self) -> None:
        """Reference examples are searched for the focused node while their tab is open."""
        if self.tabs.currentWidget() is self.examples_panel and self.node_panel.focus not in (None, ROOT):
            self.session.request_examples(self.node_panel.focus)

    def _on_width(self) -> None:
        text = self.width_edit.text()
        try:
            width = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
        except ValueError:
            width = ()
        self._guard("Width", lambda: self.session.set_graph_settings(width=width))

    def _fill_layers_menu(self) -> None:
        menu, s = self.layers_menu, self.session
        menu.clear()
        chosen = s.graph_settings.layers
        auto = menu.addAction("Automatic (the model's last blocks)")
        auto.setCheckable(True)
        auto.setChecked(chosen is None)
        auto.triggered.connect(lambda _c=False: self._guard("Layers", lambda: s.set_graph_settings(layers=None)))
        menu.addSeparator()
        for name in s.graph_layer_choices():
            act = menu.addAction(name)
            act.setCheckable(True)
            act.setChecked(chosen is not None and name in chosen)
            act.triggered.connect(lambda on, n=name: self.toggle_layer(n, on))

    def toggle_layer(self, name: str, on: bool) -> None:
        """Add a layer to the chosen ones (leaving the automatic choice) or take it out."""
        current = list(self.session.graph_settings.layers or ())
        if on and name not in current:
            current.append(name)
        elif not on and name in current:
            current.remove(name)
        self._guard("Layers", lambda: self.session.set_graph_settings(layers=tuple(current) or None))

    def node_menu(self, nid: str) -> QtWidgets.QMenu:
        """The node's context menu: switch off / restore, expand, compare, examples."""
        s = self.session
        menu = QtWidgets.QMenu(self)
        menu.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        if nid == ROOT:
            menu.addAction("The target output (switch off its features below)").setEnabled(False)
            return menu
        if nid in s.ablations:
            menu.addAction("Restore this feature").triggered.connect(lambda _c=False: s.restore_feature(nid))
        else:
            menu.addAction("Switch off this feature").triggered.connect(
                lambda _c=False: self._guard("Switch off", lambda: s.switch_off(nid)))
        if s.ablations:
            menu.addAction("Restore all features").triggered.connect(lambda _c=False: s.restore_all_features())
        menu.addSeparator()
        menu.addAction("Expand one level").triggered.connect(
            lambda _c=False: self._guard("Expand", lambda: s.expand_graph_node(nid)))
        menu.addAction("Send to comparison").triggered.connect(
            lambda _c=False: self._guard("Send to comparison", lambda: self.compare(
                s.graph_selection if nid in s.graph_selection else [nid])))
        menu.addAction("Show reference examples").triggered.connect(lambda _c=False: self._show_examples(nid))
        return menu

    def _show_examples(self, nid: str) -> None:
        self.node_panel.focus = nid
        self.tabs.setCurrentWidget(self.examples_panel)
        self.session.request_examples(nid)

    # -- session → screen -----------------------------------------------------------------------
    def refresh(self, part: str = "graph") -> None:
        """Redraw what ``part`` of the session's graph state changed ("graph", "selection",
        "settings", "ablation", "examples")."""
        s = self.session
        if part in ("graph", "settings"):
            self._refresh_controls()
            result = s.graph()
            if result is not self.drawn:
                self._draw(result)
            self._refresh_status()
        if part == "examples":
            self.examples_panel.refresh(self.cmap)
            return
        self._restyle()
        self.node_panel.refresh()
        self.changes_panel.refresh()
        self.whatif_panel.refresh()
        self.examples_panel.refresh(self.cmap)

    def set_colormap(self, name: str) -> None:
        if name != self.cmap:
            self.cmap = name
            self._draw(self.drawn)

    def set_progress(self, part: str, fraction: float) -> None:
        if part == "graph":
            self.progress.setValue(int(round(1000 * fraction)))

    def set_busy(self, part: str, busy: bool) -> None:
        if part == "graph":
            self.progress.setValue(0)
            self._refresh_status()
        elif part == "ablation":
            self.whatif_panel.refresh()
        elif part == "examples":
            self.examples_panel.refresh(self.cmap)

    def _refresh_controls(self) -> None:
        st = self.session.graph_settings
        self.layers_button.setText("Layers: automatic" if st.layers is None else f"Layers: {', '.join(st.layers)}")
        if not self.width_edit.hasFocus():
            self.width_edit.setText(",".join(str(w) for w in st.width))
        self.keep_box.blockSignals(True)
        self.keep_box.setChecked(st.keep)
        self.keep_box.blockSignals(False)

    def _refresh_status(self) -> None:
        s, result = self.session, self.drawn
        busy = s.graph_busy_now()
        self.cancel_button.setEnabled(busy)
        self.export_button.setEnabled(result is not None)
        if s.graph_error:
            text = f"The graph could not be built: {s.graph_error}"
        elif result is None:
            text = ("Building the attribution graph… (the views keep the explanation meanwhile)" if busy else
                    "Open a scan and a model to see the graph." if s.model is None or s.scan is None else
                    "The graph was cancelled; press Build again." if s.graph_enabled else "")
        else:
            g = result.graph
            name = g.target.describe(list(result.labels) or None)
            notes = " ".join(g.meta.get("notes", ()))
            text = (f"{name} · LRP {g.preset} · {len(g.nodes) - 1} features, {len(g.edges)} flows · layers "
                    f"{', '.join(g.layers)}" + (f" · pruned to {100 * g.keep:.0f} % of flow" if g.keep else "")
                    + (f" — {notes}" if notes else ""))
        self.status.setText(text)

    def _draw(self, result: Any) -> None:
        self.scene.clear()
        self.items = {}
        self.drawn = result
        if result is None:
            return
        self.draw_log.append(result.request)
        g = result.graph
        placed = layout(g)
        palette = Palette(self.cmap)
        biggest = max((abs(e.share) for e in g.edges if e.source != ROOT), default=1.0) or 1.0
        for e in g.edges:
            if e.source in placed and e.target in placed:
                self.scene.addItem(edge_item(e, placed[e.source], placed[e.target], palette, biggest))
        for n in g.nodes:
            item = NodeItem(n, placed[n.id], palette, result.labels)
            self.scene.addItem(item)
            self.items[n.id] = item
        xs = [p.x for p in placed.values()]
        ys = [p.y for p in placed.values()]
        half = LABEL_W / 2 + R_MAX
        self.scene.setSceneRect(QtCore.QRectF(min(xs) - half, min(ys) - R_MAX - 20, max(xs) - min(xs) + 2 * half,
                                              max(ys) - min(ys) + 2 * R_MAX + LABEL_H + 40))
        self._restyle()
        self.view.auto_fit = True
        self.view.fit()

    def _restyle(self) -> None:
        s = self.session
        selected, off = set(s.graph_selection), set(s.ablations)
        for nid, item in self.items.items():
            item.set_state(nid in selected, nid in off)
        self.changes_panel.mark(self.items, Palette(self.cmap))  # Δshare vs model B, when asked for

    # -- export --------------------------------------------------------------------------------
    def _ask_export(self, kind: str) -> None:
        filters = {"png": "PNG image (*.png)", "svg": "SVG drawing (*.svg)", "json": "Graph (*.json)"}
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, f"Export the graph as {kind.upper()}",
                                                        f"graph.{kind}", filters[kind])
        if path:
            try:
                self.export(path, kind)
            except Exception as exc:  # noqa: BLE001 - a failed export is reported, the app carries on
                show_error(self, "Export failed", str(exc))

    def export(self, path: str | Path, kind: str | None = None) -> Path:
        """Write the drawn graph as PNG or SVG (the picture on screen) or JSON (the numbers),
        atomically; ``kind`` defaults to the file's suffix."""
        from viewer.ui.graph_export import export_json, export_picture

        path = Path(path)
        kind = (kind or path.suffix.lstrip(".")).lower()
        if self.drawn is None:
            raise ValueError("There is no graph to export yet; wait until it is built.")
        if kind == "json":
            return export_json(self.session, self.drawn, path)
        if kind in ("png", "svg"):
            return export_picture(self.scene, path, kind)
        raise ValueError(f"Export the graph as png, svg or json, not {kind!r}.")
