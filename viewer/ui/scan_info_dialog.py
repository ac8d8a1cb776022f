"""File → Scan info: what the open scan is, in one table a reader can copy from.

Rows come from :meth:`viewer.session.Session.scan_description` (an allow-list of
technical facts, never patient fields), followed by the loader's notes and, when a model
is open, how the scan was fed to it and what did not fit.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtWidgets


class ScanInfoDialog(QtWidgets.QDialog):
    """A read-only table of the scan's facts, notes and the model input's notes/warnings."""

    def __init__(self, session: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("scanInfoDialog")
        self.setWindowTitle("Scan info")
        rows: list[tuple[str, str]] = list(session.scan_description())
        rows += [("Loader note", n) for n in session.scan_notes()]
        pred = session.prediction
        if pred is not None:
            rows += [("Model input", n) for n in pred.notes]
            rows += [("Input warning", w) for w in pred.warnings]
        if session.scan is None:
            rows = [("Scan", "No scan is open.")]
        self.rows = rows
        table = QtWidgets.QTableWidget(len(rows), 2)
        table.setHorizontalHeaderLabels(["", ""])
        table.horizontalHeader().setVisible(False)
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setWordWrap(True)
        for r, (label, value) in enumerate(rows):
            head = QtWidgets.QTableWidgetItem(label)
            font = head.font()
            font.setBold(True)
            head.setFont(font)
            table.setItem(r, 0, head)
            item = QtWidgets.QTableWidgetItem(value)
            item.setToolTip(value)
            table.setItem(r, 1, item)
        table.resizeColumnToContents(0)
        table.horizontalHeader().setStretchLastSection(True)
        table.resizeRowsToContents()
        self.table = table
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        copy = buttons.addButton("Copy", QtWidgets.QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(self.copy)
        buttons.rejected.connect(self.reject)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(table)
        lay.addWidget(buttons)
        self.resize(680, 460)

    def as_text(self) -> str:
        return "\n".join(f"{label}: {value}" for label, value in self.rows)

    def copy(self) -> None:
        QtWidgets.QApplication.clipboard().setText(self.as_text())

    def showEvent(self, ev) -> None:  # noqa: N802
        super().showEvent(ev)
        QtCore.QTimer.singleShot(0, self.table.resizeRowsToContents)
