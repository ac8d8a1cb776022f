"""The row under the comparison panels: localisation metrics, rank correlation, perturbation.

Metrics against the mask (relevance mass accuracy, pointing game) and each panel's AOPC
in one table, Spearman rank correlation between the panels' maps in another, and the
region-perturbation curves of all panels in one plot, named by method in a legend
beside the plot (a legend over the curves hid them).
"""

from __future__ import annotations

import html
from typing import Any, Callable

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

CURVE_COLOURS = ((230, 90, 70), (80, 160, 240), (240, 200, 60), (120, 220, 120))


class MetricsRow(QtWidgets.QSplitter):
    """Tables and curves read from the session; ``panel_name(k)`` names panel k's method."""

    def __init__(self, session: Any, panel_name: Callable[[int], str],
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(QtCore.Qt.Orientation.Horizontal, parent)
        self.session = session
        self.panel_name = panel_name
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
        # room above the top tick so its label is not cut in half by the widget's edge
        self.curves.getPlotItem().layout.setContentsMargins(2, 10, 6, 2)
        self.curves.setMinimumHeight(150)
        # the legend names the methods beside the plot, never over the curves
        self.curves_legend = QtWidgets.QLabel("")
        self.curves_legend.setWordWrap(True)
        self.curves_legend.setTextFormat(QtCore.Qt.TextFormat.RichText)
        curves_box = QtWidgets.QWidget()
        cl = QtWidgets.QVBoxLayout(curves_box)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(1)
        cl.addWidget(self.curves_legend)
        cl.addWidget(self.curves, 1)

        def titled(title: str, widget: QtWidgets.QWidget) -> QtWidgets.QWidget:
            box = QtWidgets.QWidget()
            v = QtWidgets.QVBoxLayout(box)
            v.setContentsMargins(0, 0, 0, 0)
            v.addWidget(QtWidgets.QLabel(title))
            v.addWidget(widget, 1)
            return box

        self.addWidget(titled("<b>Metrics</b> (mass accuracy and pointing game against the mask)",
                              self.metrics_table))
        self.addWidget(titled("<b>Rank correlation</b> (Spearman)", self.corr_table))
        self.addWidget(titled("<b>Perturbation</b> (most relevant first)", curves_box))
        self.setSizes([340, 230, 430])

    def refresh_metrics(self, n: int) -> None:
        report = getattr(self.session, "metrics", None)
        self.metrics_table.setRowCount(n)
        per = list(getattr(report, "per_panel", []) or []) if report is not None else []
        for i in range(n):
            name = self.panel_name(i) or f"panel {i + 1}"
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

    def refresh_perturbation(self, n: int) -> None:
        self.curves.clear()
        entries = []
        for k in range(min(n, len(self.session.panels))):
            curve = self.session.perturbation(k)
            if curve is None:
                continue
            x, y = _curve_xy(curve)
            colour = CURVE_COLOURS[k % 4]
            self.curves.plot(x, y, pen=pg.mkPen(colour, width=2))
            hex_colour = "#{:02x}{:02x}{:02x}".format(*colour)
            name = html.escape(f"━ {k + 1}: {self.panel_name(k)}").replace(" ", "&nbsp;")  # wraps as one unit
            entries.append(f"<span style='color: {hex_colour}'>{name}</span>")
            if k == 0 and getattr(curve, "random", None) is not None:
                self.curves.plot(x, np.asarray(curve.random, dtype=float),
                                 pen=pg.mkPen((150, 150, 150), width=1, style=QtCore.Qt.PenStyle.DashLine))
                entries.append("<span style='color: #999'>┄&nbsp;random&nbsp;order</span>")
        self.curves_legend.setText(" &nbsp; ".join(entries))
        self.refresh_metrics(n)  # AOPC column


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
