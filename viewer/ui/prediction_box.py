"""Which model answered, what it answered, and whether the answer can be trusted.

A probability bar reads as a confident answer whatever the input was. So the model is
named above it (with the card's description on hover), and when the input does not fit
the model (intensities clipped, NaNs, a constant image, coarse voxels, an oblique scan;
see :mod:`viewer.models.input_fit`) a warning sits directly above the bars. A failed
prediction says so and why, instead of leaving the table empty.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

WARNING_STYLE = ("QLabel { background: #5a2a12; color: #ffd9b0; border: 1px solid #b0602a; "
                 "border-radius: 3px; padding: 4px; }")


def model_header(model: Any, path: str | None) -> tuple[str, str]:
    """(rich text, tooltip) naming the model, its file and task; ("No model", "") without one."""
    if model is None:
        return "<b>Model:</b> none — File → Open model (Ctrl+M)", ""
    name = html.escape(str(getattr(model, "name", "model")))
    task = getattr(model, "task", "classification")
    labels = list(getattr(model, "labels", []) or [])
    bits = [Path(path).name if path else None, task, f"{len(labels)} classes" if labels else None]
    detail = " · ".join(html.escape(b) for b in bits if b)
    card = getattr(model, "card", None)
    description = str(getattr(card, "description", "") or "")
    tip = description
    describe = getattr(model, "describe", None)
    if callable(describe):
        try:
            tip = describe()
        except Exception:  # noqa: BLE001 - a tooltip must never break the panel
            tip = description
    return f"<b>Model:</b> {name}<br><span style='color:#aaa'>{detail}</span>", tip


class PredictionBox(QtWidgets.QWidget):
    """Model name, input warnings, class probabilities, or why the prediction failed."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_label = QtWidgets.QLabel("")
        self.model_label.setWordWrap(True)
        self.model_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.warning_label = QtWidgets.QLabel("")
        self.warning_label.setObjectName("inputWarning")
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet(WARNING_STYLE)
        self.warning_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.warning_label.setVisible(False)
        self.error_label = QtWidgets.QLabel("")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(WARNING_STYLE)
        self.error_label.setVisible(False)
        self.table = QtWidgets.QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Class", "Probability"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.table.setMaximumHeight(130)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.model_label)
        lay.addWidget(QtWidgets.QLabel("<b>Prediction</b>"))
        lay.addWidget(self.warning_label)
        lay.addWidget(self.error_label)
        lay.addWidget(self.table, 1)

    def show_model(self, model: Any, path: str | None) -> None:
        text, tip = model_header(model, path)
        self.model_label.setText(text)
        self.model_label.setToolTip(tip)

    def show_prediction(self, pred: Any, error: str | None) -> None:
        warnings = tuple(getattr(pred, "warnings", ()) or ()) if pred is not None else ()
        if warnings:
            items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
            self.warning_label.setText("<b>⚠ The input does not fit this model — read the prediction with "
                                       f"caution:</b><ul style='margin: 0px; -qt-list-indent: 1;'>{items}</ul>")
        self.warning_label.setVisible(bool(warnings))
        self.error_label.setText(f"Prediction failed: {error}" if error else "")
        self.error_label.setVisible(bool(error) and pred is None)
        table = self.table
        if pred is None:
            table.setRowCount(0)
            return
        rows = pred.top(min(10, len(pred.probabilities)))
        table.setRowCount(len(rows))
        for r, (label, p) in enumerate(rows):
            item = QtWidgets.QTableWidgetItem(str(label))
            if r == 0:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            table.setItem(r, 0, item)
            bar = QtWidgets.QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(int(round(1000 * float(p))))
            bar.setFormat(f"{100 * float(p):.1f} %" + (" ⚠" if warnings and r == 0 else ""))
            bar.setTextVisible(True)
            table.setCellWidget(r, 1, bar)
        table.resizeRowsToContents()
