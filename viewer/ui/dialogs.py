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


def _first(entry: dict, *keys: str) -> Any:
    return next((entry[k] for k in keys if entry.get(k) not in (None, "")), None)


def _series_time(value: Any) -> str:
    """DICOM TM ("142233.5") as "14:22:33"; other text unchanged."""
    text = str(value)
    digits = text.split(".")[0]
    if len(digits) >= 4 and digits.isdigit():
        return ":".join(digits[i:i + 2] for i in range(0, min(len(digits), 6), 2))
    return text


def _uid_short(uid: str) -> str:
    """The UID's first characters and its last ones: UIDs of one site share a long root,
    so the end is what tells two series apart."""
    return uid if len(uid) <= 22 else f"{uid[:10]}…{uid[-10:]}"


def series_parts(entry: dict) -> list[str]:
    """What tells two series of one study apart, without patient fields: number, time,
    modality, description, image count and size, and the first characters of the UID."""
    parts = []
    number = _first(entry, "series_number", "SeriesNumber", "number")
    if number is not None:
        parts.append(f"#{number}")
    time = _first(entry, "series_time", "SeriesTime", "time", "AcquisitionTime")
    if time is not None:
        parts.append(_series_time(time))
    for keys in (("modality", "Modality"), ("description", "series_description", "SeriesDescription")):
        value = _first(entry, *keys)
        if value is not None:
            parts.append(str(value))
    n = _first(entry, "images", "files", "count", "slices")
    if n:
        parts.append(f"{n} images")
    rows, cols = _first(entry, "rows", "Rows"), _first(entry, "columns", "Columns")
    if rows and cols:
        parts.append(f"{cols} × {rows}")
    uid = _first(entry, "uid", "series_uid", "SeriesInstanceUID", "series")
    if uid:
        parts.append(f"UID {_uid_short(str(uid))}")
    return parts


def current_series_text(meta: dict, modality: str | None = None) -> str:
    """The opened series described like the others in the chooser (from ``scan.meta``)."""
    entry = dict(meta or {})
    if modality and not entry.get("Modality"):
        entry["modality"] = modality
    return " — ".join(series_parts(entry))


def _series_text(entry: Any) -> tuple[str, str]:
    """(uid, description) of one entry of ``scan.meta["other_series"]`` (dict or tuple)."""
    if isinstance(entry, dict):
        uid = str(entry.get("uid") or entry.get("series_uid") or entry.get("SeriesInstanceUID") or "")
        return uid, " — ".join(series_parts(entry)) or uid
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
