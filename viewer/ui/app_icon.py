"""The application icon, from the PNG sizes rendered by packaging/render_icons.py.

Linux window managers and task bars pick a bitmap of the size they need; an icon made
from the SVG alone shows as a blank on several of them. Setting it on the
QApplication gives every window (main window, dialogs) the icon; the desktop file name
lets Wayland compositors match the window to the installed desktop entry and its icon.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtGui

DESKTOP_FILE = "lrp-viewer"


def icon_dir() -> Path:
    try:
        from viewer.resources import ROOT
    except ImportError:  # a source tree that was never installed
        ROOT = Path(__file__).resolve().parents[2] / "resources"
    return ROOT / "icons"


def app_icon() -> QtGui.QIcon:
    """Every rendered size of the icon (empty icon if the files are missing)."""
    icon = QtGui.QIcon()
    folder = icon_dir()
    for png in sorted((folder / "hicolor").glob("*/apps/lrp-viewer.png"), key=lambda p: int(p.parts[-3].split("x")[0])):
        icon.addFile(str(png))
    if icon.isNull() and (folder / "lrp-viewer.svg").is_file():
        icon.addFile(str(folder / "lrp-viewer.svg"))
    return icon


def apply_app_icon(app: QtGui.QGuiApplication) -> None:
    app.setWindowIcon(app_icon())
    app.setDesktopFileName(DESKTOP_FILE)
