"""The comparison pane: two to four explanation methods side by side, plus their metrics.

Each panel has its own method and colour limits (FSLeyes-style per-pane display state,
held by the session per panel) but follows the shared cursor, and all panels' ViewBoxes
are linked so zoom and pan move together. Below them: relevance mass accuracy and the
pointing game when a mask is loaded, rank correlation between the panels' maps, and on
request the perturbation curves of every panel in one plot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from viewer.io.view_geometry import VIEWS
from viewer.ui.colorbar import ColorBar, overlay_lut
from viewer.ui.profile_plot import release_plot_menus
from viewer.ui.slice_view import SliceView

MAX_PANELS = 4
CURVE_COLOURS = ((230, 90, 70), (80, 160, 240), (240, 200, 60), (120, 220, 120))


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
    """One method: a choice box, a slice view and its own colour bar."""

    def __init__(self, index: int, plane: str, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = index
        self.combo = QtWidgets.QComboBox()
        self.combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
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
        lay.addWidget(self.combo)
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
        self._choices: list[tuple[str, str, dict[str, Any]]] = []
        self._scan: Any = None
        self._radiological = True
        self._levels = (0.0, 1.0)
        self._mask: np.ndarray | None = None
        self._cursor: tuple[int, int, int] | None = None

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
        bar.addStretch(1)
        bar.addWidget(self.add_button)
        bar.addWidget(self.remove_button)
        bar.addWidget(self.curves_button)

        self.row = QtWidgets.QHBoxLayout()
        self.row.setSpacing(4)
        self.metrics_table = QtWidgets.QTableWidget(0, 4)
        self.metrics_table.setHorizontalHeaderLabels(["Panel", "Mass acc.", "Pointing", "AOPC"])
        self.metrics_table.verticalHeader().setVisible(False)
        header = self.metrics_table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.metrics_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.corr_table = QtWidgets.QTableWidget(0, 0)
        self.corr_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.curves = pg.PlotWidget()
        self.curves.setLabel("bottom", "fraction of most relevant voxels removed")
        self.curves.setLabel("left", "target score")
        self.curves.addLegend(offset=(-4, 4), labelTextSize="8pt", brush=(20, 20, 20, 170))
        self.curves.setMinimumHeight(150)
        def titled(title: str, widget: QtWidgets.QWidget) -> QtWidgets.QWidget:
            box = QtWidgets.QWidget()
            v = QtWidgets.QVBoxLayout(box)
            v.setContentsMargins(0, 0, 0, 0)
            v.addWidget(QtWidgets.QLabel(title))
            v.addWidget(widget, 1)
            return box

        metrics = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        metrics.addWidget(titled("<b>Metrics</b> (mass accuracy and pointing game against the mask)", self.metrics_table))
        metrics.addWidget(titled("<b>Rank correlation</b> (Spearman)", self.corr_table))
        metrics.addWidget(titled("<b>Perturbation</b> (most relevant first)", self.curves))
        metrics.setSizes([340, 230, 430])
        panels = QtWidgets.QWidget()
        panels.setLayout(self.row)
        body = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        body.addWidget(panels)
        body.addWidget(metrics)
        body.setStretchFactor(0, 3)
        body.setStretchFactor(1, 1)
        self.row.setContentsMargins(0, 0, 0, 0)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(bar)
        lay.addWidget(body, 1)

    # -- panels ---------------------------------------------------------------------------
    def ensure_default_panels(self) -> None:
        """Opening the pane with one explanation adds Grad-CAM beside it."""
        if len(self.session.panels) < 2 and self.session.model is not None:
            self.session.add_panel("gradcam")

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
            p.setParent(None)
            p.deleteLater()
        while len(self.panels) < len(states):
            self._make_panel(len(self.panels))
        self._choices = method_choices(s) if s.model is not None else []
        for p, state in zip(self.panels, states):
            p.combo.blockSignals(True)
            p.combo.clear()
            p.combo.addItems([c[0] for c in self._choices])
            current = next((k for k, c in enumerate(self._choices)
                            if c[1] == state.method and c[2].get("preset") == dict(state.params).get("preset")), -1)
            p.combo.setCurrentIndex(current)
            p.combo.blockSignals(False)
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
        v.hovered.connect(self.hovered)
        v.windowDragged.connect(self.windowDragged)
        v.sliceStepped.connect(lambda step, view=v: self.sliceStepped.emit(view.orient.slice_axis, step))
        p.combo.currentIndexChanged.connect(lambda k, i=index: self._on_choice(i, k))
        if self.panels:
            v.vb.setXLink(self.panels[0].view.vb)
            v.vb.setYLink(self.panels[0].view.vb)
        self.panels.append(p)
        self.row.addWidget(p, 1)
        if self._scan is not None:
            self._setup_view(v)
        return p

    def _on_choice(self, i: int, k: int) -> None:
        if 0 <= k < len(self._choices):
            _label, method, params = self._choices[k]
            self.session.set_panel_method(i, method, **params)

    # -- content ------------------------------------------------------------------------------
    def _setup_view(self, v: SliceView) -> None:
        scan = self._scan
        v.name = self.plane
        v.set_geometry(scan.shape, scan.spacing, planar=scan.planar, radiological=self._radiological)
        v.set_volume(scan.data)
        v.set_levels(*self._levels)
        v.set_mask(self._mask)
        if self._cursor is not None:
            v.set_cursor(self._cursor)

    def set_scan(self, scan: Any, radiological: bool) -> None:
        self._scan = scan
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

    def set_crosshair_visible(self, visible: bool) -> None:
        for p in self.panels:
            p.view.set_crosshair_visible(visible)

    def reset_views(self) -> None:
        for p in self.panels:
            p.view.reset_view()

    def showEvent(self, ev) -> None:  # noqa: N802
        super().showEvent(ev)
        QtCore.QTimer.singleShot(0, self.reset_views)  # fit once the panels have their real size

    def refresh_display(self, i: int) -> None:
        if i >= len(self.panels) or i >= len(self.session.panels):
            return
        ov = self.session.panels[i].overlay
        limit = self.session.panel_limit(i) or 1.0
        p = self.panels[i]
        p.view.set_overlay_style(overlay_lut(ov.colormap, ov.opacity, ov.threshold, ov.sign), limit, ov.visible)
        p.colorbar.set_map(ov.colormap, limit)

    def refresh_result(self, i: int) -> None:
        if i >= len(self.panels):
            return
        res = self.session.result(i)
        p = self.panels[i]
        self.refresh_display(i)
        p.view.set_overlay(None if res is None else res.on_scan)
        if res is None:
            p.caption.setText("…" if self.session.is_busy(i) else "")
        else:
            c = res.conservation
            text = f"Σ R = {res.relevance.input_sum:.3g}" if res.relevance.input_sum is not None else ""
            if c is not None:
                text += f"  (f(x) = {c.explained:.3g}, absorbed {c.absorbed:.3g})"
            p.caption.setText(text + ("  — preview" if res.preview else ""))

    def set_progress(self, i: int, fraction: float) -> None:
        if i < len(self.panels):
            self.panels[i].progress.setValue(int(round(1000 * fraction)))

    def set_busy(self, i: int, busy: bool) -> None:
        if i < len(self.panels):
            self.panels[i].progress.setValue(0)
            self.panels[i].progress.setVisible(True)

    # -- metrics ------------------------------------------------------------------------------
    def refresh_metrics(self) -> None:
        report = getattr(self.session, "metrics", None)
        n = len(self.panels)
        self.metrics_table.setRowCount(n)
        per = list(getattr(report, "per_panel", []) or []) if report is not None else []
        for i in range(n):
            name = self.panels[i].combo.currentText() or f"panel {i + 1}"
            row = per[i] if i < len(per) else None
            curve = self.session.perturbation(i)
            cells = [f"{i + 1}: {name}", getattr(row, "mass_accuracy", None), getattr(row, "pointing_game", None),
                     getattr(curve, "aopc_morf", None)]
            for c, v in enumerate(cells):
                if isinstance(v, bool):
                    text = "hit" if v else "miss"
                else:
                    text = v if isinstance(v, str) else ("—" if v is None else f"{float(v):.3f}")
                self.metrics_table.setItem(i, c, QtWidgets.QTableWidgetItem(text))
        corr = dict(getattr(report, "correlations", {}) or {}) if report is not None else {}
        self.corr_table.setRowCount(n)
        self.corr_table.setColumnCount(n)
        labels = [f"{i + 1}" for i in range(n)]
        self.corr_table.setHorizontalHeaderLabels(labels)
        self.corr_table.setVerticalHeaderLabels(labels)
        for a in range(n):
            for b in range(n):
                v = 1.0 if a == b else corr.get((a, b), corr.get((b, a)))
                ok = v is not None and np.isfinite(v)
                self.corr_table.setItem(a, b, QtWidgets.QTableWidgetItem(f"{v:.2f}" if ok else "—"))
        self.corr_table.resizeColumnsToContents()

    def request_perturbation(self) -> None:
        for i in range(len(self.session.panels)):
            self.session.request_perturbation(i)

    def refresh_perturbation(self, i: int | None = None) -> None:
        self.curves.clear()
        legend = self.curves.getPlotItem().legend
        if legend is not None:
            legend.clear()
        for k in range(len(self.session.panels)):
            curve = self.session.perturbation(k)
            if curve is None:
                continue
            x, y = _curve_xy(curve)
            self.curves.plot(x, y, pen=pg.mkPen(CURVE_COLOURS[k % 4], width=2), name=str(k + 1))
            if k == 0 and getattr(curve, "random", None) is not None:
                self.curves.plot(x, np.asarray(curve.random, dtype=float), name="random",
                                 pen=pg.mkPen((150, 150, 150), width=1, style=QtCore.Qt.PenStyle.DashLine))
        self.refresh_metrics()  # AOPC column


def _curve_xy(curve: Any) -> tuple[np.ndarray, np.ndarray]:
    """Fractions and scores of a perturbation curve, whatever its container."""
    if isinstance(curve, dict):
        x = curve.get("fractions", curve.get("x"))
        y = curve.get("scores", curve.get("y"))
    else:
        x = next((getattr(curve, a) for a in ("fractions", "x", "steps") if hasattr(curve, a)), None)
        y = next((getattr(curve, a) for a in ("morf", "scores", "y", "values") if hasattr(curve, a)), None)
    y = np.asarray(y if y is not None else curve, dtype=float).ravel()
    x = np.linspace(0, 1, len(y)) if x is None else np.asarray(x, dtype=float).ravel()
    return x, y
