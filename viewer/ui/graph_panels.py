"""The graph pane's side panels: the clicked node, what-if (switched-off features), and
the node's reference examples. Each reads the session when told to refresh and sends
the user's choices straight back to it; none holds state of its own.
"""

from __future__ import annotations

import html
from typing import Any, Callable

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from viewer.io import colormaps
from viewer.ui.graph_items import node_tooltip

THUMB = 96
COLUMNS = 4


def _button(text: str, slot: Callable[[], Any]) -> QtWidgets.QPushButton:
    b = QtWidgets.QPushButton(text)
    b.clicked.connect(lambda _c=False: slot())
    return b


class NodePanel(QtWidgets.QWidget):
    """Numbers of the focused node and what to do with it."""

    def __init__(self, session: Any, guard: Callable[[str, Callable[[], Any]], None],
                 compare: Callable[[], Any]) -> None:
        super().__init__()
        self.session, self.guard = session, guard
        self.focus: str | None = None
        self.details = QtWidgets.QLabel("Click a node to show its map on the views; shift-click to add nodes; "
                                        "double-click to grow the graph below it; right-click to switch it off.")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.shown = QtWidgets.QLabel("")
        self.shown.setWordWrap(True)
        self.shown.setStyleSheet("color: #e0c060")
        self.compare_button = _button("Send to comparison", lambda: guard("Send to comparison", compare))
        self.off_button = _button("Switch off", self._toggle_off)
        self.expand_button = _button("Expand below", lambda: guard("Expand", lambda: session.expand_graph_node(
            self.focus)))
        self.back_button = _button("Show explanation", session.clear_graph_selection)
        self.compare_button.setToolTip("Add the selected nodes' map as a comparison panel")
        self.off_button.setToolTip("Switch this feature off (or back on) in a copy of the model and see the "
                                   "new prediction in What if")
        self.expand_button.setToolTip("Grow the graph one level below this node (or double-click it)")
        self.back_button.setToolTip("Clear the selection: the views show the explanation again")
        grid = QtWidgets.QGridLayout()  # two columns; labels stay whole in a narrow panel
        for i, b in enumerate((self.compare_button, self.off_button, self.expand_button, self.back_button)):
            b.setSizePolicy(QtWidgets.QSizePolicy.Policy.Minimum, QtWidgets.QSizePolicy.Policy.Fixed)
            grid.addWidget(b, i // 2, i % 2)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.details)
        lay.addWidget(self.shown)
        lay.addLayout(grid)
        lay.addStretch(1)

    def _toggle_off(self) -> None:
        nid = self.focus
        if nid is None:
            return
        if nid in self.session.ablations:
            self.session.restore_feature(nid)
        else:
            self.guard("Switch off", lambda: self.session.switch_off(nid))

    def refresh(self) -> None:
        s = self.session
        result = s.graph()
        nodes = {n.id: n for n in result.graph.nodes} if result is not None else {}
        if self.focus not in nodes:
            self.focus = s.graph_selection[-1] if s.graph_selection else None
        node = nodes.get(self.focus)
        if node is not None:
            self.details.setText("<b>" + html.escape(node_tooltip(node, result.labels)).replace("\n", "</b><br>", 1)
                                 .replace("\n", "<br>"))
        shown = s.graph_overlay()
        self.shown.setText("" if shown is None else f"Views show: {shown.label}")
        has = node is not None and node.id != "output"
        self.off_button.setText("Restore" if has and node.id in s.ablations else "Switch off")
        for b in (self.off_button, self.expand_button):
            b.setEnabled(has)
        self.compare_button.setEnabled(bool(s.graph_selection))
        self.back_button.setEnabled(bool(s.graph_selection))


class WhatIfPanel(QtWidgets.QWidget):
    """Switched-off features and the prediction of the model without them, beside the old one."""

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session
        self.list = QtWidgets.QListWidget()
        self.list.setMaximumHeight(90)
        self.restore_button = _button("Restore", self._restore_selected)
        self.restore_all_button = _button("Restore all", session.restore_all_features)
        self.show_map = QtWidgets.QCheckBox("Views show the map of the model without these features")
        self.show_map.setChecked(True)
        self.show_map.toggled.connect(session.set_show_ablated_map)
        self.status = QtWidgets.QLabel("Right-click a node → Switch off this feature.")
        self.status.setWordWrap(True)
        self.table = QtWidgets.QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Class", "Before", "Switched off", "Change"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.restore_button)
        buttons.addWidget(self.restore_all_button)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.list)
        lay.addLayout(buttons)
        lay.addWidget(self.show_map)
        lay.addWidget(self.status)
        lay.addWidget(self.table, 1)

    def _restore_selected(self) -> None:
        for item in self.list.selectedItems():
            self.session.restore_feature(item.data(QtCore.Qt.ItemDataRole.UserRole))

    def refresh(self) -> None:
        s = self.session
        self.list.clear()
        for nid in s.ablations:
            item = QtWidgets.QListWidgetItem(nid.replace(":", " · channel "))
            item.setData(QtCore.Qt.ItemDataRole.UserRole, nid)
            self.list.addItem(item)
        self.show_map.blockSignals(True)
        self.show_map.setChecked(s.show_ablated_map)
        self.show_map.blockSignals(False)
        for b in (self.restore_button, self.restore_all_button):
            b.setEnabled(bool(s.ablations))
        result = s.ablation_result()
        if not s.ablations:
            self.status.setText("Right-click a node → Switch off this feature.")
        elif s.ablation_error:
            self.status.setText(f"Failed: {s.ablation_error}")
        elif result is None:
            self.status.setText("Computing the prediction without these features…")
        else:
            t = result.target_index
            name = result.before.label(t) if t is not None else "the target"
            self.status.setText(f"Logit of {name}: {result.logit_before:.4g} → {result.logit_after:.4g}"
                                if result.logit_before is not None else "")
        self._fill_table(result if s.ablations else None)

    def _fill_table(self, result: Any) -> None:
        if result is None:
            self.table.setRowCount(0)
            return
        before, after = result.before, result.after
        self.table.setRowCount(len(before.probabilities))
        for r in range(len(before.probabilities)):
            p0, p1 = float(before.probabilities[r]), float(after.probabilities[r])
            for c, text in enumerate((before.label(r), f"{100 * p0:.1f} %", f"{100 * p1:.1f} %",
                                      f"{100 * (p1 - p0):+.1f} pp")):
                item = QtWidgets.QTableWidgetItem(text)
                if r == after.predicted and c == 2:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                self.table.setItem(r, c, item)


def thumbnail(image: np.ndarray | None, heat: np.ndarray | None, cmap: str) -> QtGui.QPixmap:
    """The crop in grey with its heatmap over it; x along the scan's first axis, anterior up."""
    if image is None:
        return QtGui.QPixmap()
    g = np.asarray(image, dtype=np.float32).T[::-1]
    lo, hi = float(g.min()), float(g.max())
    grey = (g - lo) / (hi - lo) if hi > lo else np.zeros_like(g)
    rgb = np.repeat(grey[..., None] * 255.0, 3, axis=2)
    if heat is not None:
        h = np.asarray(heat, dtype=np.float32).T[::-1]
        rgba = colormaps.colorize(h, colormaps.symmetric_limit(h), cmap, threshold=0.05).astype(np.float32)
        a = rgba[..., 3:4] / 255.0
        rgb = rgb * (1 - a) + rgba[..., :3] * a
    arr = np.ascontiguousarray(rgb.astype(np.uint8))
    qimg = QtGui.QImage(arr.data, arr.shape[1], arr.shape[0], 3 * arr.shape[1], QtGui.QImage.Format.Format_RGB888)
    return QtGui.QPixmap.fromImage(qimg.copy()).scaled(THUMB, THUMB, QtCore.Qt.AspectRatioMode.KeepAspectRatio)


class ExamplesPanel(QtWidgets.QWidget):
    """The reference regions where the focused node carries most relevance; a click opens one."""

    def __init__(self, session: Any, choose_folder: Callable[[], Any]) -> None:
        super().__init__()
        self.session = session
        self.folder_label = QtWidgets.QLabel("")
        self.folder_label.setWordWrap(True)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.buttons: list[QtWidgets.QToolButton] = []
        self.grid = QtWidgets.QGridLayout()
        box = QtWidgets.QWidget()
        box.setLayout(self.grid)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(box)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.folder_label, 1)
        top.addWidget(_button("Set reference cases…", choose_folder))
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.status)
        lay.addWidget(scroll, 1)
        self._shown: Any = None

    def refresh(self, cmap: str = colormaps.DEFAULT) -> None:
        s = self.session
        folder = s.reference_folder
        self.folder_label.setText(f"Reference cases: {folder or 'the demo cases'}")
        result, nid = s.examples_result(), s.examples_node
        if nid is None:
            self.status.setText("Click a node: its best-matching regions in the reference cases appear here.")
        elif s.examples_error:
            self.status.setText(f"Failed: {s.examples_error}")
        elif result is None:
            self.status.setText(f"Finding where {nid} responds in the reference cases… (cached after the first "
                                "time per layer)")
        else:
            skipped = f" Skipped: {'; '.join(result.skipped)}" if result.skipped else ""
            self.status.setText(f"Top {len(result.examples)} regions for {nid}; click one to open that case there."
                                + skipped)
        if result is self._shown:
            return
        self._shown = result
        for b in self.buttons:
            self.grid.removeWidget(b)
            b.deleteLater()
        self.buttons = []
        for i, ex in enumerate(result.examples if result is not None else ()):
            b = QtWidgets.QToolButton()
            b.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
            b.setIcon(QtGui.QIcon(thumbnail(ex.image, ex.heatmap, cmap)))
            b.setIconSize(QtCore.QSize(THUMB, THUMB))
            where = f"slice {ex.scan_ijk[2]}" if ex.slice_index is not None else f"voxel {ex.scan_ijk}"
            b.setText(f"{ex.name}\n{where} · {ex.score:+.3g}")
            b.setToolTip(f"{ex.path}\nvoxel {ex.scan_ijk}; relevance {ex.score:+.4g}. Click to open it there.")
            b.clicked.connect(lambda _c=False, e=ex: s.open_reference_example(e))
            self.grid.addWidget(b, i // COLUMNS, i % COLUMNS)
            self.buttons.append(b)
