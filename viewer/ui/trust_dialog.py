"""The question asked before a model file may run code: open it anyway?

Asked for File → Open model, drag-and-drop, recent files and models named by a session
file alike (the session calls :attr:`Session.trust_prompt`). It shows the model's path
and what would run, and defaults to *not* opening: pressing Enter or Esc refuses.
"""

from __future__ import annotations

from PySide6 import QtWidgets

OPEN_ANYWAY = "Open anyway (run its code)"


def ask_trust(parent: QtWidgets.QWidget | None, path: str, reason: str) -> bool:
    """True when the user chooses to load the model although it runs code from its file."""
    box = QtWidgets.QMessageBox(parent)
    box.setObjectName("trustDialog")
    box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
    box.setWindowTitle("Open a model that runs code?")
    box.setText(f"This model would run code from its files:\n{path}")
    box.setInformativeText(
        f"{reason}\n\nOnly open it if you trust where it came from. Opening runs that code with your user "
        "account's rights."
    )
    allow = box.addButton(OPEN_ANYWAY, QtWidgets.QMessageBox.ButtonRole.AcceptRole)
    refuse = box.addButton("Don't open", QtWidgets.QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(refuse)
    box.setEscapeButton(refuse)
    box.exec()
    return box.clickedButton() is allow
