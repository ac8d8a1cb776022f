"""The bar above the views that says what the loader had to assume or change.

A loader note (inferred geometry, one frame of many, resampled slices, NaNs kept,
spacing assumed) changes how a reader should trust what they see, so it is shown where
they look — above the images — not only in a log. The bar can be dismissed; it comes
back for the next scan that has notes. "Scan info…" opens the full description.
"""

from __future__ import annotations

import html
from typing import Sequence

from PySide6 import QtCore, QtWidgets


class NotesBar(QtWidgets.QFrame):
    """A dismissable strip listing the open scan's notes."""

    infoRequested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notesBar")
        self.setStyleSheet("#notesBar { background: #4a3f12; border: 1px solid #8a7420; border-radius: 3px; }"
                           "#notesBar QLabel { color: #f3e6b0; }")
        self.label = QtWidgets.QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.info_button = QtWidgets.QPushButton("Scan info…")
        self.info_button.setToolTip("Modality, size, spacing, orientation, value range, source and notes (Ctrl+I)")
        self.info_button.clicked.connect(self.infoRequested)
        self.close_button = QtWidgets.QToolButton()
        self.close_button.setText("✕")
        self.close_button.setToolTip("Hide these notes (they come back for the next scan with notes)")
        self.close_button.clicked.connect(self.dismiss)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.info_button, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        lay.addWidget(self.close_button, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        self.notes: list[str] = []
        self._key: object = None
        self._dismissed: object = None
        self.setVisible(False)

    def set_notes(self, notes: Sequence[str], key: object) -> None:
        """Show ``notes`` for the scan identified by ``key`` (unless dismissed for that scan)."""
        self.notes = [str(n) for n in notes]
        self._key = key
        if not self.notes:
            self.label.setText("")
            self.setVisible(False)
            return
        head = "Note about this scan:" if len(self.notes) == 1 else f"{len(self.notes)} notes about this scan:"
        items = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        self.label.setText(f"<b>⚠ {head}</b><ul style='margin: 0px; -qt-list-indent: 1;'>{items}</ul>")
        self.setVisible(self._dismissed != key)

    def dismiss(self) -> None:
        self._dismissed = self._key
        self.setVisible(False)
