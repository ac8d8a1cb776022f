"""Files handed to the program that did not open at start (``lrp-viewer a.nii b.nii c.nii``).

A desktop passes every selected file at once (``Exec=lrp-viewer %F``). Only the first
scan opens; the others wait in this small non-modal list so the user opens them one
after another, in any order, without going back to the file manager. Opening goes
through the window's FileActions, so a file named like a mask opens as the mask of the
scan on screen, a model file as the model, and failures are shown in the usual dialog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from PySide6 import QtCore, QtWidgets


class PendingFilesDialog(QtWidgets.QDialog):
    """A list of paths; Open (or a double click) opens one and removes it from the list."""

    def __init__(self, window: Any, paths: Sequence[str]) -> None:
        super().__init__(window)
        self.window_ = window
        self.setObjectName("pendingFilesDialog")
        self.setWindowTitle("Other files to open")
        self.setModal(False)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        label = QtWidgets.QLabel(f"{len(paths)} more file{'s' if len(paths) != 1 else ''} were given. "
                                 "Open one when you are done with the scan on screen.")
        label.setWordWrap(True)
        self.list = QtWidgets.QListWidget()
        for path in paths:
            item = QtWidgets.QListWidgetItem(Path(path).name or path)
            item.setData(QtCore.Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(str(path))
            self.list.addItem(item)
        self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(lambda _item: self.open_current())
        buttons = QtWidgets.QDialogButtonBox()
        self.open_button = buttons.addButton("Open", QtWidgets.QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QtWidgets.QDialogButtonBox.StandardButton.Close)
        self.open_button.clicked.connect(self.open_current)
        buttons.rejected.connect(self.close)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        self.resize(460, 300)

    def paths(self) -> list[str]:
        return [self.list.item(i).data(QtCore.Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def open_current(self) -> bool:
        """Open the selected file; it leaves the list whether or not it opened (errors show a dialog)."""
        item = self.list.currentItem()
        if item is None:
            return False
        path = item.data(QtCore.Qt.ItemDataRole.UserRole)
        self.list.takeItem(self.list.row(item))
        ok = bool(self.window_.files.open_any(path))
        if self.list.count() == 0:
            self.close()
        return ok


def offer_files(window: Any, paths: Sequence[str]) -> PendingFilesDialog | None:
    """Show the list beside the main window (None when there is nothing to offer)."""
    if not paths:
        return None
    dialog = PendingFilesDialog(window, paths)
    dialog.show()
    return dialog
