"""QApplication set-up: one place for application names, style and pyqtgraph options.

A dark Fusion palette keeps panels consistent with the black image views on every
platform (native light themes make the scan look washed out by contrast).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pyqtgraph as pg  # noqa: E402
from PySide6 import QtGui, QtWidgets  # noqa: E402

from viewer.ui import gui_gc  # noqa: E402
from viewer.ui.app_icon import apply_app_icon  # noqa: E402

APP_NAME = "lrp-viewer"


def dark_palette() -> QtGui.QPalette:
    p = QtGui.QPalette()
    role = QtGui.QPalette.ColorRole
    base, window, text = QtGui.QColor(30, 30, 32), QtGui.QColor(45, 45, 48), QtGui.QColor(220, 220, 220)
    p.setColor(role.Window, window)
    p.setColor(role.WindowText, text)
    p.setColor(role.Base, base)
    p.setColor(role.AlternateBase, window)
    p.setColor(role.ToolTipBase, window)
    p.setColor(role.ToolTipText, text)
    p.setColor(role.Text, text)
    p.setColor(role.Button, window)
    p.setColor(role.ButtonText, text)
    p.setColor(role.BrightText, QtGui.QColor(255, 80, 80))
    p.setColor(role.Highlight, QtGui.QColor(60, 120, 200))
    p.setColor(role.HighlightedText, QtGui.QColor(255, 255, 255))
    p.setColor(role.Link, QtGui.QColor(100, 160, 240))
    disabled = QtGui.QPalette.ColorGroup.Disabled
    for r in (role.Text, role.ButtonText, role.WindowText):
        p.setColor(disabled, r, QtGui.QColor(120, 120, 120))
    return p


def make_app(argv: list[str] | None = None) -> QtWidgets.QApplication:
    """The process's QApplication (created once), styled for lrp-viewer."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(list(argv) if argv is not None else [sys.argv[0] if sys.argv else APP_NAME])
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    apply_app_icon(app)  # every window and dialog; Wayland matches the desktop entry by name
    pg.setConfigOptions(antialias=False, background="k", foreground="#ccc")
    gui_gc.install(app)  # cycles holding Qt objects are freed on this thread, never the worker's
    return app  # type: ignore[return-value]
