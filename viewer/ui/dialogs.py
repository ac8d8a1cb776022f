"""Small dialogs: errors, choosing a DICOM series, the shortcut list.

Error boxes are window-modal but opened with ``open()`` (not ``exec()``), so the event
loop keeps running: background results still arrive, and tests can find and close them.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from PySide6 import QtCore, QtWidgets


def show_error(parent: QtWidgets.QWidget | None, title: str, message: str) -> QtWidgets.QMessageBox:
    """Show a warning box without blocking; returns it (it deletes itself when closed)."""
    box = QtWidgets.QMessageBox(parent)
    box.setObjectName("errorDialog")
    box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
    box.setWindowTitle(title or "lrp-viewer")
    box.setText(title or "Something went wrong")
    box.setInformativeText(message)
    box.setStandardButtons(QtWidgets.QMessageBox.StandardButton.Ok)
    box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def _series_text(entry: Any) -> tuple[str, str]:
    """(uid, description) of one entry of ``scan.meta["other_series"]`` (dict or tuple)."""
    if isinstance(entry, dict):
        uid = str(entry.get("uid") or entry.get("series_uid") or entry.get("SeriesInstanceUID") or "")
        parts = [str(entry[k]) for k in ("modality", "description", "series_description") if entry.get(k)]
        n = entry.get("images") or entry.get("files") or entry.get("count") or entry.get("slices")
        if n:
            parts.append(f"{n} images")
        if entry.get("rows") and entry.get("columns"):
            parts.append(f"{entry['columns']} × {entry['rows']}")
        return uid, " — ".join(parts) or uid
    if isinstance(entry, (tuple, list)) and entry:
        return str(entry[0]), " — ".join(str(e) for e in entry[1:]) or str(entry[0])
    return str(entry), str(entry)


class SeriesDialog(QtWidgets.QDialog):
    """Pick one series of a DICOM folder that holds several."""

    def __init__(self, current: str, series: Iterable[Any], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a DICOM series")
        self.list = QtWidgets.QListWidget()
        self.uids: list[str] = []
        current_item = QtWidgets.QListWidgetItem(f"{current} (opened)")
        self.list.addItem(current_item)
        self.uids.append("")
        for entry in series:
            uid, text = _series_text(entry)
            self.list.addItem(text)
            self.uids.append(uid)
        self.list.setCurrentRow(0)
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.list.itemDoubleClicked.connect(lambda _item: self.accept())
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(QtWidgets.QLabel("This folder holds several series. Which one should be shown?"))
        lay.addWidget(self.list)
        lay.addWidget(buttons)
        self.resize(520, 300)

    def chosen_uid(self) -> str | None:
        """The UID picked, or None to keep the series already opened."""
        row = self.list.currentRow()
        return self.uids[row] or None if row >= 0 else None


class ShortcutsDialog(QtWidgets.QDialog):
    """Help → Shortcuts: every key and mouse gesture in one table."""

    def __init__(self, rows: Sequence[tuple[str, str]], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard and mouse shortcuts")
        table = QtWidgets.QTableWidget(len(rows), 2)
        table.setHorizontalHeaderLabels(["Key / gesture", "Action"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        for r, (key, action) in enumerate(rows):
            table.setItem(r, 0, QtWidgets.QTableWidgetItem(key))
            table.setItem(r, 1, QtWidgets.QTableWidgetItem(action))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        self.table = table
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(table)
        lay.addWidget(buttons)
        self.resize(560, 520)
