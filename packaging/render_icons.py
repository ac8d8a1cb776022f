"""Render resources/icons/lrp-viewer.svg to the PNG sizes Linux desktops look up.

Freedesktop icon themes (hicolor) and window managers want bitmaps at fixed sizes; a
window icon set from an SVG alone is ignored by several of them. The PNGs are written
in the hicolor layout (``hicolor/<n>x<n>/apps/lrp-viewer.png``) so the .deb and the
tarball copy the tree as it is, and the app loads the same files for its window icon.

    QT_QPA_PLATFORM=offscreen python packaging/render_icons.py      # after editing the SVG
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6 import QtCore, QtGui, QtSvg  # noqa: E402

SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"


def render(svg: Path, size: int, out: Path) -> None:
    renderer = QtSvg.QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG")
    image = QtGui.QImage(size, size, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QtCore.Qt.GlobalColor.transparent)
    painter = QtGui.QPainter(image)
    painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(out), "PNG"):
        raise SystemExit(f"could not write {out}")


def main() -> int:
    app = QtGui.QGuiApplication.instance() or QtGui.QGuiApplication(sys.argv[:1])  # noqa: F841 - Qt needs one
    svg = ICONS / "lrp-viewer.svg"
    for size in SIZES:
        render(svg, size, ICONS / "hicolor" / f"{size}x{size}" / "apps" / "lrp-viewer.png")
    print(f"wrote {len(SIZES)} PNG icons under {ICONS / 'hicolor'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
