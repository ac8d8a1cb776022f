"""Help → About: the version, the licences and the patent note.

The version a user reports must be the one outputs record (``viewer.__version__``,
from the package metadata). The installed build bundles LGPL-licensed Qt and many
other packages, so About also names the licences and opens the full third-party
notices; and LRP is reported by its inventors to be patented, which a user of
explanations should be told in the program itself, not only in the documentation.
"""

from __future__ import annotations

import html
import platform
import sys

from PySide6 import QtCore, QtGui, QtWidgets

from viewer.notices import PATENT_NOTE, current_notices

TITLE = "About lrp-viewer"


def about_html() -> str:
    """The About text (rich text, links clickable)."""
    from viewer import __version__

    try:
        import PySide6
        import torch

        versions = f"Qt {QtCore.qVersion()}, PySide6 {PySide6.__version__}, torch {torch.__version__}"
    except ImportError:  # pragma: no cover - torch and PySide6 are requirements
        versions = f"Qt {QtCore.qVersion()}"
    build = "installed build" if getattr(sys, "frozen", False) else "Python package"
    return (
        f"<h3>lrp-viewer {html.escape(__version__)}</h3>"
        "<p>Explain medical-imaging neural networks with Layer-wise Relevance Propagation, slice by slice.</p>"
        "<p>lrp-viewer is free software under the BSD 3-Clause licence. It is a research tool, "
        "not a medical device.</p>"
        f"<p><b>Patent note.</b> {html.escape(PATENT_NOTE)}</p>"
        "<p>This program uses Qt and PySide6 under the GNU LGPL version 3: they are separate, replaceable "
        "libraries, and their source is available from "
        "<a href='https://download.qt.io/official_releases/'>download.qt.io</a>. Other included software "
        "and its licences are listed under <i>Third-party licences</i>.</p>"
        f"<p><small>{html.escape(versions)}; Python {platform.python_version()}; {build}</small></p>"
    )


class AboutDialog(QtWidgets.QDialog):
    """Version, licences, patent note; a button shows the full third-party notices."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("aboutDialog")
        self.setWindowTitle(TITLE)
        icon = QtWidgets.QApplication.windowIcon()
        layout = QtWidgets.QHBoxLayout()
        if not icon.isNull():
            picture = QtWidgets.QLabel()
            picture.setPixmap(icon.pixmap(96, 96))
            picture.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop)
            layout.addWidget(picture)
        self.text = QtWidgets.QLabel(about_html())
        self.text.setWordWrap(True)
        self.text.setOpenExternalLinks(True)
        self.text.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextBrowserInteraction)
        self.text.setMinimumWidth(440)
        layout.addWidget(self.text, 1)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        self.notices_button = buttons.addButton("Third-party licences…",
                                                QtWidgets.QDialogButtonBox.ButtonRole.ActionRole)
        self.notices_button.clicked.connect(self.show_notices)
        buttons.rejected.connect(self.reject)
        outer = QtWidgets.QVBoxLayout(self)
        outer.addLayout(layout)
        outer.addWidget(buttons)

    def show_notices(self) -> QtWidgets.QDialog:
        """The bundled THIRD_PARTY_NOTICES (installed build) or the same text made from the installed packages."""
        dialog = QtWidgets.QDialog(self)
        dialog.setObjectName("noticesDialog")
        dialog.setWindowTitle("Third-party licences")
        view = QtWidgets.QPlainTextEdit()
        view.setReadOnly(True)
        view.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        view.setPlainText(current_notices())
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dialog.reject)
        layout = QtWidgets.QVBoxLayout(dialog)
        layout.addWidget(view)
        layout.addWidget(buttons)
        dialog.resize(820, 640)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        self.notices_view = view
        return dialog


def show_about(parent: QtWidgets.QWidget | None) -> AboutDialog:
    dialog = AboutDialog(parent)
    dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog
