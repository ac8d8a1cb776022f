"""Writing the graph pane's content: the drawing as PNG or SVG, the graph as JSON.

The pictures are rendered from the pane's scene (what the user sees, selection and
switched-off features included) into memory and written with one atomic rename, like
every export of the project; the JSON is the engine's own record
(:meth:`AttributionGraph.to_json`) with the model and scan named, never the patient.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from viewer.io.atomic import atomic_write

PNG_SCALE = 2.0  # pixels per scene unit: sharp when printed or zoomed


def _bytes(buffer: QtCore.QBuffer) -> bytes:
    return bytes(buffer.data().data())


def export_picture(scene: QtWidgets.QGraphicsScene, path: Path, kind: str) -> Path:
    rect = scene.itemsBoundingRect().adjusted(-20, -20, 20, 20)
    buffer = QtCore.QBuffer()
    buffer.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    if kind == "svg":
        from PySide6.QtSvg import QSvgGenerator

        gen = QSvgGenerator()
        gen.setOutputDevice(buffer)
        gen.setSize(rect.size().toSize())
        gen.setViewBox(QtCore.QRectF(0, 0, rect.width(), rect.height()))
        gen.setTitle("lrp-viewer attribution graph")
        painter = QtGui.QPainter(gen)
        painter.fillRect(QtCore.QRectF(0, 0, rect.width(), rect.height()), scene.views()[0].backgroundBrush()
                         if scene.views() else QtGui.QColor(30, 30, 30))
        scene.render(painter, QtCore.QRectF(0, 0, rect.width(), rect.height()), rect)
        painter.end()
    else:
        image = QtGui.QImage(int(rect.width() * PNG_SCALE), int(rect.height() * PNG_SCALE),
                             QtGui.QImage.Format.Format_RGB32)
        image.fill(QtGui.QColor(30, 30, 30))
        painter = QtGui.QPainter(image)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        scene.render(painter, QtCore.QRectF(image.rect()), rect)
        painter.end()
        if not image.save(buffer, "PNG"):
            raise OSError(f"The picture for {path} could not be encoded.")
    buffer.close()
    with atomic_write(path, "wb") as fh:
        fh.write(_bytes(buffer))
    return path


def export_json(session: Any, result: Any, path: Path) -> Path:
    """The graph's numbers, parameters and identifiers (model name, scan file name)."""
    about = {
        "model": {"name": str(getattr(session.model, "name", "model"))},
        "scan": {"file": Path(session.scan_path).name if session.scan_path else None,
                 "shape": list(session.scan.shape) if session.scan is not None else None},
        "selected": list(session.graph_selection),
        "switched_off": list(session.ablations),
    }
    return result.graph.to_json(path, about=about, labels=list(result.labels) or None)
