"""The layer list: every overlay over the scan with its own visibility and opacity.

Rows come from :meth:`viewer.session.Session.layers` (maps opened from files on top,
then the main relevance, then the mask outline) and every edit goes back through
:meth:`~viewer.session.Session.set_layer`, so the list, the Display panel, the O key and
the views can never disagree.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6 import QtCore, QtWidgets

from viewer.ui.value_slider import ValueSlider


class LayerRow(QtWidgets.QWidget):
    """Checkbox + name, opacity slider, and a remove button for maps from files."""

    def __init__(self, key: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.check = QtWidgets.QCheckBox()
        self.opacity = ValueSlider(0.0, 1.0, 0.05, 2)
        self.opacity.slider.setMinimumWidth(90)
        self.opacity.setToolTip("Opacity")
        self.remove = QtWidgets.QToolButton()
        self.remove.setText("✕")
        self.remove.setToolTip("Remove this map")
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.check, 1)
        lay.addWidget(self.opacity)
        lay.addWidget(self.remove)

    def show_layer(self, layer: Any) -> None:
        for w in (self.check, self.opacity):
            w.blockSignals(True)
        self.check.setText(layer.title)
        self.check.setToolTip(layer.title)
        self.check.setChecked(layer.visible)
        self.opacity.setValue(layer.opacity)
        for w in (self.check, self.opacity):
            w.blockSignals(False)
        self.setEnabled(layer.available)
        self.remove.setVisible(layer.removable)


class LayerList(QtWidgets.QGroupBox):
    """Layers of the main views, driven by the session."""

    def __init__(self, session: Any, open_map: Callable[[], Any], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Layers", parent)
        self.session = session
        self.rows: list[LayerRow] = []
        self._rows_box = QtWidgets.QVBoxLayout()
        self._rows_box.setSpacing(2)
        self.add_button = QtWidgets.QPushButton("Add relevance map from file…")
        self.add_button.setToolTip("Show a map saved earlier (NIfTI on this scan's grid) over the scan")
        self.add_button.clicked.connect(lambda: open_map())
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.addLayout(self._rows_box)
        lay.addWidget(self.add_button, 0, QtCore.Qt.AlignmentFlag.AlignLeft)
        self.refresh()

    def refresh(self) -> None:
        """Match the rows to the session's layers (rebuilt only when the set of layers changed)."""
        layers = self.session.layers()
        if [r.key for r in self.rows] != [layer.key for layer in layers]:
            for row in self.rows:
                self._rows_box.removeWidget(row)
                row.hide()  # still owned by the list until Qt deletes it on this (GUI) thread
                row.deleteLater()
            self.rows = []
            for layer in layers:
                row = LayerRow(layer.key)
                row.check.toggled.connect(lambda on, k=layer.key: self._set(k, visible=on))
                row.opacity.valueChanged.connect(lambda v, k=layer.key: self._set(k, opacity=v))
                row.remove.clicked.connect(lambda _c=False, k=layer.key: self._remove(k))
                self._rows_box.addWidget(row)
                self.rows.append(row)
        for row, layer in zip(self.rows, layers):
            row.show_layer(layer)
        self.add_button.setEnabled(self.session.scan is not None)

    def row(self, key: Any) -> LayerRow:
        return next(r for r in self.rows if r.key == key)

    def _set(self, key: Any, **changes: Any) -> None:
        self.session.set_layer(key, **changes)

    def _remove(self, key: Any) -> None:
        if isinstance(key, tuple) and key[:1] == ("map",):
            self.session.remove_map_layer(int(key[1]))
