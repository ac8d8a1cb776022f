"""The graph pane's "Changes vs B" tab: which nodes model B weighs differently from model A.

With a second model open (File → Compare with model…), ticking the box compares the
current graph's layers between A and B (:mod:`viewer.session.graph_changes`): the table
lists the channels whose share of their layer's |relevance| changed most, a click on a
row that is in the graph selects that node (its map goes on the views), and in the
drawing each node gets its Δshare as a third label line, the most changed ones a dashed
outline in the colour of the change's sign.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from PySide6 import QtCore, QtGui, QtWidgets

from viewer.ui.graph_items import LABEL_BRUSH, Palette, label_font

OUTLINE_WIDTH = 3.0
NOT_IN_GRAPH = QtGui.QColor(140, 140, 140)


def delta_text(delta: float) -> str:
    """A share change in percentage points of the layer's |relevance|: "Δ +2.8 pp"."""
    return f"Δ {100 * delta:+.1f} pp"


class ChangesPanel(QtWidgets.QWidget):
    """The tick box, a status line and the table of the most changed channels."""

    def __init__(self, session: Any, select: Callable[[str], Any]) -> None:
        super().__init__()
        self.session, self.select = session, select
        self.enable_box = QtWidgets.QCheckBox("Show changes vs model B")
        self.enable_box.setToolTip("Compare each channel's share of its layer's relevance between model A and "
                                   "model B (same case, target, layers and LRP preset)")
        self.enable_box.toggled.connect(self._on_toggle)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.table = QtWidgets.QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Node", "A %", "B %", "Δ pp"])
        for c, tip in enumerate(("Layer · channel (grey: not in the drawn graph)", "Share of the layer's |relevance| "
                                 "in model A, %", "Share in model B, %", "Change from A to B, percentage points")):
            self.table.horizontalHeaderItem(c).setToolTip(tip)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.cellClicked.connect(self._on_row)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.enable_box)
        lay.addWidget(self.status)
        lay.addWidget(self.table, 1)
        self.shown: list[Any] = []  # the NodeChange rows in the table, top first

    def _on_toggle(self, on: bool) -> None:
        try:
            self.session.set_graph_changes(on)
        except ValueError as exc:
            self.status.setText(str(exc))
        self.refresh()

    def _on_row(self, row: int, _column: int) -> None:
        graph = self.session.graph()
        if 0 <= row < len(self.shown) and graph is not None and self.shown[row].nid in graph.maps:
            self.select(self.shown[row].nid)

    def changes(self) -> Any | None:
        """The session's changes when they belong on screen (box ticked, model B open)."""
        s = self.session
        on = s.graph_changes_enabled and s.compare_model is not None
        return s.graph_changes() if on else None

    def refresh(self) -> None:
        s = self.session
        two = s.compare_model is not None
        self.enable_box.setEnabled(two)
        self.enable_box.blockSignals(True)
        self.enable_box.setChecked(two and s.graph_changes_enabled)
        self.enable_box.blockSignals(False)
        changes = self.changes()
        if not two:
            text = "Open a second model (File → Compare with model…) to see which nodes it weighs differently."
        elif not s.graph_changes_enabled:
            text = f"Tick the box to compare this graph's layers with model B ({s.model_label('B')})."
        elif s.graph_changes_error:
            text = f"Failed: {s.graph_changes_error}"
        elif changes is None:
            text = "Comparing the layers of A and B… (one LRP pass per model)"
        else:
            layers = ", ".join(changes.request.layers)
            text = (f"Channels of {layers} whose share of the layer's |relevance| changed most from A "
                    f"({s.model_label('A')}) to B ({s.model_label('B')}); click one in the graph to show it.")
        self.status.setText(text)
        self.shown = changes.top() if changes is not None else []
        graph = s.graph()
        in_graph = set(graph.maps) if graph is not None else set()
        self.table.setRowCount(len(self.shown))
        for r, row in enumerate(self.shown):
            cells = (row.nid.replace(":", " · "), f"{100 * row.share_a:+.2f}", f"{100 * row.share_b:+.2f}",
                     f"{100 * row.delta:+.1f}")
            for c, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                if row.nid not in in_graph:
                    item.setForeground(QtGui.QBrush(NOT_IN_GRAPH))
                    item.setToolTip(f"{row.nid} is not in the drawn graph (it is among the layer's other channels)")
                self.table.setItem(r, c, item)

    def mark(self, items: Mapping[str, Any], palette: Palette) -> None:
        """Δ labels on the drawn nodes and dashed outlines on the most changed ones (none
        when the changes are off); a selected node keeps its selection outline."""
        changes = self.changes()
        top = {row.nid: row.delta for row in changes.top()} if changes is not None else {}
        selected = set(self.session.graph_selection)
        for nid, item in items.items():
            change = changes.change(nid) if changes is not None and nid != "output" else None
            label = getattr(item, "delta_label", None)
            if change is None:
                if label is not None:
                    label.setVisible(False)
                continue
            if label is None:
                label = QtWidgets.QGraphicsSimpleTextItem("", item)
                label.setFont(label_font())
                label.setBrush(LABEL_BRUSH)
                item.delta_label = label
            label.setText(delta_text(change.delta))
            last = item.labels[-1]
            box = label.boundingRect()
            label.setPos(-box.width() / 2, last.pos().y() + last.boundingRect().height())
            label.setVisible(True)
            if nid in top and nid not in selected:
                pen = QtGui.QPen(palette.sign(top[nid]), OUTLINE_WIDTH, QtCore.Qt.PenStyle.DashLine)
                item.setPen(pen)
