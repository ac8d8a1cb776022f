"""The comparison pane: two to four explanation methods side by side, plus their metrics.

Each panel has its own method, model (A, or the second model B when one is open) and
colour limits (FSLeyes-style per-pane display state, held by the session per panel) but
follows the shared cursor, and all panels' ViewBoxes are linked so zoom and pan move
together. Below them: relevance mass accuracy and the
pointing game when a mask is loaded, rank correlation between the panels' maps, and on
request the perturbation curves of every panel in one plot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from viewer.io.view_geometry import VIEWS
from viewer.session.graph_compute import NODE_METHOD
from viewer.ui.colorbar import ColorBar, limit_title, overlay_lut
from viewer.ui.comparison_metrics import MetricsRow
from viewer.ui.dialogs import show_error
from viewer.ui.profile_plot import release_plot_menus
from viewer.ui.slice_view import SliceView

MAX_PANELS = 4


def node_choice(state: Any) -> tuple[str, str, dict[str, Any]]:
    """A graph-node panel's entry: "node features.3 · 27" (several nodes joined by +)."""
    nodes = [str(n).replace(":", " · ") for n in dict(state.params).get("nodes", ())]
    return (("nodes " if len(nodes) > 1 else "node ") + " + ".join(nodes), state.method, dict(state.params))


def method_choices(session: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, method, params) for the panel menus: every LRP preset, then other methods."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    for name, label, available, _reason in session.available_methods():
        if not available:
            continue
        if name == "lrp":
            for p in session.lrp_presets():
                out.append((f"LRP {p.label or p.name}", "lrp", {"preset": p.name}))
        else:
            out.append((label, name, {}))
    return out


class ComparisonPanel(QtWidgets.QWidget):
    """One method: a title, choice boxes (method; model A or B), a slice view and its own colour bar."""

    def __init__(self, index: int, plane: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = index
        self.combo = QtWidgets.QComboBox()
        self.combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo = QtWidgets.QComboBox()  # shown while a model B is open
        self.model_combo.addItems(["A", "B"])
        self.model_combo.setToolTip("Which model this panel explains: A (File → Open model) or B "
                                    "(File → Compare with model…)")
        self.title = QtWidgets.QLabel("")
        self.title.setStyleSheet("font-weight: bold")
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(6)
        self.view = SliceView(plane)
        self.colorbar = ColorBar("horizontal")
        self.caption = QtWidgets.QLabel("")
        self.caption.setStyleSheet("color: #aaa")
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(2)
        choose = QtWidgets.QHBoxLayout()
        choose.setSpacing(2)
        choose.addWidget(self.combo, 1)
        choose.addWidget(self.model_combo)
        lay.addWidget(self.title)
        lay.addLayout(choose)
        lay.addWidget(self.progress)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.colorbar)
        lay.addWidget(self.caption)


class ComparisonPane(QtWidgets.QWidget):
    """Panels side by side above a metrics row, all driven by the session."""

    cursorRequested = QtCore.Signal(object)
    hovered = QtCore.Signal(object)
    sliceStepped = QtCore.Signal(int, int)
    windowDragged = QtCore.Signal(float, float, bool)

    def __init__(self, session: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.plane = "axial"
        self.panels: list[ComparisonPanel] = []
        self._choices: list[list[tuple[str, str, dict[str, Any]]]] = []  # per panel
        self._scan: Any = None
        self._radiological = True
        self._levels = (0.0, 1.0)
        self._mask: np.ndarray | None = None
        self._cursor: tuple[int, int, int] | None = None
        self.hover_view: SliceView | None = None  # the panel view under the mouse (status bar)
        self._crosshair = (True, True)  # visible, gap
        self._outline = (True, 1.0)  # visible, opacity

        self.plane_combo = QtWidgets.QComboBox()
        self.plane_combo.addItems([v.capitalize() for v in VIEWS])
        self.plane_combo.currentIndexChanged.connect(self._on_plane)
        self.add_button = QtWidgets.QPushButton("Add panel")
        self.add_button.clicked.connect(self._add_panel)
        self.remove_button = QtWidgets.QPushButton("Remove panel")
        self.remove_button.clicked.connect(self._remove_panel)
        self.curves_button = QtWidgets.QPushButton("Perturbation curves")
        self.curves_button.clicked.connect(self.request_perturbation)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Plane:"))
        bar.addWidget(self.plane_combo)
        self.models_label = QtWidgets.QLabel("")  # both models' predictions while a model B is open
        self.models_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        bar.addWidget(self.models_label)
        bar.addStretch(1)
        bar.addWidget(self.add_button)
        bar.addWidget(self.remove_button)
        bar.addWidget(self.curves_button)

        self.row = QtWidgets.QHBoxLayout()
        self.row.setSpacing(4)
        self.metrics = MetricsRow(session, self.panel_name)
        self.metrics_table, self.corr_table = self.metrics.metrics_table, self.metrics.corr_table
        self.curves, self.curves_legend = self.metrics.curves, self.metrics.curves_legend
        panels = QtWidgets.QWidget()
        panels.setLayout(self.row)
        body = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        body.addWidget(panels)
        body.addWidget(self.metrics)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 1)
        self.row.setContentsMargins(0, 0, 0, 0)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(body, 1)

    # -- panels ---------------------------------------------------------------------------
    def ensure_default_panels(self) -> None:
        """Opening the pane with one explanation adds a different method beside it
        (Grad-CAM beside LRP, LRP beside anything else)."""
        if len(self.session.panels) < 2 and self.session.model is not None:
            choice = self.session.comparison_choice()
            if choice is not None:
                self.session.add_panel(choice[0], **choice[1])

    def _add_panel(self) -> None:
        if len(self.session.panels) < MAX_PANELS:
            used = {(p.method, dict(p.params).get("preset")) for p in self.session.panels}
            for _label, method, params in method_choices(self.session):
                if (method, params.get("preset")) not in used:
                    self.session.add_panel(method, **params)
                    return
            self.session.add_panel("gradcam")

    def _remove_panel(self) -> None:
        n = len(self.session.panels)
        if n > 1:
            self.session.remove_panel(n - 1)

    def refresh_panels(self) -> None:
        """Match the panel widgets to the session's panels (count, method choice)."""
        s = self.session
        states = s.panels
        changed = len(self.panels) != len(states)
        while len(self.panels) > len(states):
            p = self.panels.pop()
            release_plot_menus(p.colorbar)
            self.row.removeWidget(p)
            p.hide()  # the pane keeps owning it until Qt deletes it on this (GUI) thread
            p.deleteLater()
        while len(self.panels) < len(states):
            self._make_panel(len(self.panels))
        base = method_choices(s) if s.model is not None else []
        self._choices = [base + ([node_choice(state)] if state.method == NODE_METHOD else []) for state in states]
        two = getattr(s, "compare_model", None) is not None
        for p, state, choices in zip(self.panels, states, self._choices):
            p.combo.blockSignals(True)
            p.combo.clear()
            p.combo.addItems([c[0] for c in choices])
            current = next((k for k, c in enumerate(choices) if c[1] == state.method and (
                c[2] == dict(state.params) if state.method == NODE_METHOD
                else c[2].get("preset") == dict(state.params).get("preset"))), -1)
            p.combo.setCurrentIndex(current)
            p.combo.blockSignals(False)
            p.model_combo.blockSignals(True)
            p.model_combo.setCurrentIndex(1 if state.model == "B" else 0)
            p.model_combo.blockSignals(False)
            p.model_combo.setVisible(two)
            p.title.setVisible(two)
            p.title.setText(f"{p.index + 1}: {self.panel_name(p.index)}")
            self.refresh_display(p.index)
            self.refresh_result(p.index)
        if changed:
            QtCore.QTimer.singleShot(0, self.reset_views)
        self.add_button.setEnabled(len(states) < MAX_PANELS)
        self.remove_button.setEnabled(len(states) > 1)

    def _make_panel(self, index: int) -> ComparisonPanel:
        p = ComparisonPanel(index, self.plane)
        v = p.view
        v.cursorRequested.connect(self.cursorRequested)
        v.hovered.connect(lambda ijk, view=v: self._on_hover(view, ijk))
        v.windowDragged.connect(self.windowDragged)
        v.sliceStepped.connect(lambda step, view=v: self.sliceStepped.emit(view.orient.slice_axis, step))
        p.combo.currentIndexChanged.connect(lambda k, i=index: self._on_choice(i, k))
        p.model_combo.currentIndexChanged.connect(lambda k, i=index: self._on_model_choice(i, k))
        if self.panels:
            v.vb.setXLink(self.panels[0].view.vb)
            v.vb.setYLink(self.panels[0].view.vb)
        self.panels.append(p)
        self.row.addWidget(p, 1)
        if self._scan is not None:
            self._setup_view(v)
        return p

    def _on_hover(self, view: SliceView, ijk) -> None:
        if ijk is not None:
            self.hover_view = view
        elif self.hover_view is view:
            self.hover_view = None
        self.hovered.emit(ijk)

    def _on_choice(self, i: int, k: int) -> None:
        choices = self._choices[i] if i < len(self._choices) else []
        if 0 <= k < len(choices):
            _label, method, params = choices[k]
            if method != NODE_METHOD:  # the node entry names the panel's own nodes: nothing to switch
                self.session.set_panel_method(i, method, **params)

    def _on_model_choice(self, i: int, k: int) -> None:
        try:
            self.session.set_panel_model(i, "B" if k == 1 else "A")
        except ValueError as exc:  # e.g. model B hides the layers this method needs
            show_error(self, "Cannot explain with this model", str(exc))
            self.refresh_panels()

    # -- content ------------------------------------------------------------------------------
    def _setup_view(self, v: SliceView) -> None:
        scan = self._scan
        v.name = self.plane
        v.set_geometry(scan.shape, scan.spacing, planar=scan.planar, radiological=self._radiological)
        v.set_volume(scan.data)
        v.set_levels(*self._levels)
        v.set_mask(self._mask)
        v.set_outline_visible(*self._outline)
        v.set_crosshair_visible(self._crosshair[0])
        v.set_crosshair_gap(self._crosshair[1])
        if self._cursor is not None:
            v.set_cursor(self._cursor)

    def set_scan(self, scan: Any, radiological: bool) -> None:
        self._scan = scan
        self.hover_view = None
        self._radiological = radiological
        self.plane_combo.setEnabled(not scan.is_2d)
        if scan.is_2d and self.plane != "axial":
            self.plane = "axial"
        for p in self.panels:
            self._setup_view(p.view)

    def _on_plane(self, k: int) -> None:
        self.plane = VIEWS[k]
        if self._scan is not None:
            for p in self.panels:
                self._setup_view(p.view)

    def set_levels(self, low: float, high: float) -> None:
        self._levels = (low, high)
        for p in self.panels:
            p.view.set_levels(low, high)

    def set_mask(self, mask: np.ndarray | None) -> None:
        self._mask = mask
        for p in self.panels:
            p.view.set_mask(mask)

    def set_cursor(self, ijk) -> None:
        self._cursor = tuple(ijk)
        for p in self.panels:
            p.view.set_cursor(ijk)

    def set_crosshair_visible(self, visible: bool, gap: bool = True) -> None:
        self._crosshair = (visible, gap)
        for p in self.panels:
            p.view.set_crosshair_visible(visible)
            p.view.set_crosshair_gap(gap)

    def set_outline_visible(self, visible: bool, opacity: float = 1.0) -> None:
        self._outline = (visible, opacity)
        for p in self.panels:
            p.view.set_outline_visible(visible, opacity)

    def reset_views(self) -> None:
        for p in self.panels:
            p.view.reset_view()

    def showEvent(self, ev) -> None:  # noqa: N802
        super().showEvent(ev)
        QtCore.QTimer.singleShot(0, self.reset_views)  # fit once the panels have their real size

    def refresh_display(self, i: int) -> None:
        if i >= len(self.panels) or i >= len(self.session.panels):
            return
        ov = self.session.display_overlay(i)
        limit = self.session.panel_limit(i) or 1.0
        p = self.panels[i]
        p.view.set_overlay_style(overlay_lut(ov.colormap, ov.opacity, ov.threshold, ov.sign), limit, ov.visible)
        p.colorbar.set_map(ov.colormap, limit, limit_title(ov, limit))

    def refresh_result(self, i: int) -> None:
        if i >= len(self.panels):
            return
        res = self.session.result(i)
        p = self.panels[i]
        self.refresh_display(i)
        p.view.set_overlay(None if res is None else res.on_scan)
        if res is None:
            error = self.session.panel_error(i)
            p.caption.setText(f"Failed: {error}" if error else "computing…" if self.session.is_busy(i) else "")
            p.caption.setToolTip(error or "")
            p.caption.setStyleSheet("color: #f0a070" if error else "color: #aaa")
        else:
            p.caption.setStyleSheet("color: #aaa")
            p.caption.setToolTip("")
            c = res.conservation
            text = f"Σ R = {res.relevance.input_sum:.3g}" if res.relevance.input_sum is not None else ""
            if c is not None:
                text += f"  (f(x) = {c.explained:.3g}, absorbed {c.absorbed:.3g})"
            p.caption.setText(text + (f"  — PREVIEW ({res.method}), refining…" if res.preview else ""))

    def set_progress(self, i: int, fraction: float) -> None:
        if i < len(self.panels):
            self.panels[i].progress.setValue(int(round(1000 * fraction)))

    def set_busy(self, i: int, busy: bool) -> None:
        if i < len(self.panels):
            self.panels[i].progress.setValue(0)
            self.panels[i].progress.setVisible(True)
            if not busy and i < len(self.session.panels):
                self.refresh_result(i)  # the caption says done, failed (and why) or cancelled

    # -- metrics ------------------------------------------------------------------------------
    def panel_name(self, k: int) -> str:
        """The method a panel shows, as its choice box names it (a graph-node panel: its nodes),
        and while a model B is open, which model: "LRP ε+ · B: demo2d_shortcut_revised"."""
        s = self.session
        state = s.panels[k] if k < len(s.panels) else None
        text = self.panels[k].combo.currentText() if k < len(self.panels) else ""
        if state is not None and state.method == NODE_METHOD:
            text = node_choice(state)[0]
        text = text or (state.method if state is not None else "")
        if state is not None and getattr(s, "compare_model", None) is not None:
            text += f" · {state.model}: {s.model_label(state.model)}"
        return text

    def refresh_metrics(self) -> None:
        self.metrics.refresh_metrics(len(self.panels))

    def refresh_perturbation(self, i: int | None = None) -> None:
        self.metrics.refresh_perturbation(len(self.panels))

    def request_perturbation(self) -> None:
        for i in range(len(self.session.panels)):
            self.session.request_perturbation(i)
