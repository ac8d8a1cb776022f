"""View → Window / level: the grey-value window over the scan's intensity histogram.

Right-dragging sets a window by feel; this dialog shows where the window sits among the
scan's values (a log-count histogram, as in ITK-SNAP's contrast dialog and FSLeyes'
histogram), lets the reader drag its edges or type centre and width, and offers the
modality's presets. Everything goes through the session, so the views, the Display
panel and this dialog always show the same window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from viewer.ui.profile_plot import release_plot_menus


class WindowLevelDialog(QtWidgets.QDialog):
    """Non-modal: the views update live while the region or the numbers change."""

    def __init__(self, session: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("windowLevelDialog")
        self.setWindowTitle("Window / level")
        self.session = session
        self._updating = False
        self.plot = pg.PlotWidget(enableMenu=False)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.setLabel("bottom", "value")
        self.plot.setLabel("left", "voxels (log10)")
        self.bars = pg.PlotDataItem([], [], stepMode="center", fillLevel=0, brush=(120, 160, 220, 110),
                                    pen=pg.mkPen((150, 190, 240), width=1))
        self.plot.addItem(self.bars)
        self.region = pg.LinearRegionItem(values=(0.0, 1.0), brush=(255, 215, 0, 40),
                                          pen=pg.mkPen((255, 215, 0), width=2))
        self.region.setZValue(10)
        self.plot.addItem(self.region)
        self.region.sigRegionChanged.connect(self._from_region)
        self.centre = QtWidgets.QDoubleSpinBox()
        self.width_box = QtWidgets.QDoubleSpinBox()
        for box in (self.centre, self.width_box):
            box.setDecimals(4)
            box.setRange(-1e9, 1e9)
            box.setKeyboardTracking(False)
            box.valueChanged.connect(self._from_boxes)
        self.width_box.setMinimum(1e-6)
        self.preset = QtWidgets.QComboBox()
        self.preset.activated.connect(lambda _i: self._choose_preset(self.preset.currentText()))
        auto = QtWidgets.QPushButton("Fit 0.5–99.5 %")
        auto.setToolTip("Window spanning the 0.5th to the 99.5th percentile of the values")
        auto.clicked.connect(self._auto)
        self.info = QtWidgets.QLabel("")
        self.info.setStyleSheet("color: #aaa")
        form = QtWidgets.QHBoxLayout()
        for label, w in (("Level (centre)", self.centre), ("Width", self.width_box), ("Preset", self.preset)):
            form.addWidget(QtWidgets.QLabel(label))
            form.addWidget(w)
        form.addWidget(auto)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.plot, 1)
        lay.addLayout(form)
        lay.addWidget(self.info)
        lay.addWidget(buttons)
        self.resize(640, 380)
        self.refresh_histogram()
        self.refresh()

    def refresh_histogram(self) -> None:
        """Histogram of the open scan (a new scan calls this again)."""
        h = self.session.scan_histogram()
        if h is None:
            self.bars.setData([], [])
            return
        self.bars.setData(h.edges, np.log10(h.counts.astype(float) + 1.0))
        lo, hi = h.robust
        pad = 0.05 * max(hi - lo, 1e-6)
        self.plot.setXRange(lo - pad, hi + pad, padding=0)
        self.info.setText(f"{h.sampled} voxels counted"
                          + (" (a regular sample of the volume)" if h.sampled < self.session.scan.data.size else ""))

    def refresh(self) -> None:
        """Show the session's window and preset."""
        s = self.session
        w = s.window
        if w is None:
            return
        self._updating = True
        try:
            self.region.setRegion((w.low, w.high))
            self.centre.setValue(w.centre)
            self.width_box.setValue(w.width)
            names = list(s.window_presets()) + (["Custom"] if s.window_preset == "Custom" else [])
            if [self.preset.itemText(i) for i in range(self.preset.count())] != names:
                self.preset.clear()
                self.preset.addItems(names)
            self.preset.setCurrentText(s.window_preset)
        finally:
            self._updating = False

    def _from_region(self) -> None:
        if self._updating:
            return
        lo, hi = self.region.getRegion()
        if hi - lo > 0:
            self.session.set_window((lo + hi) / 2.0, hi - lo)

    def _from_boxes(self, _value: float) -> None:
        if not self._updating:
            self.session.set_window(self.centre.value(), self.width_box.value())

    def _choose_preset(self, name: str) -> None:
        if name and name != "Custom":
            self.session.set_window_preset(name)

    def _auto(self) -> None:
        h = self.session.scan_histogram()
        if h is not None:
            lo, hi = h.robust
            self.session.set_window((lo + hi) / 2.0, max(hi - lo, 1e-6))

    def done(self, result: int) -> None:
        release_plot_menus(self.plot)
        super().done(result)


def open_window_dialog(window: Any) -> WindowLevelDialog:
    """Open (or raise) the window's W/L dialog, kept in step with the session while open."""
    dlg = getattr(window, "window_dialog", None)
    if dlg is not None:
        try:
            dlg.raise_()
            dlg.activateWindow()
            return dlg
        except RuntimeError:  # deleted
            pass
    dlg = WindowLevelDialog(window.session, window)
    dlg.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    window.window_dialog = dlg
    window.bridge.windowChanged.connect(dlg.refresh)
    window.bridge.scanChanged.connect(dlg.refresh_histogram)
    dlg.destroyed.connect(lambda *_: setattr(window, "window_dialog", None))
    dlg.show()
    return dlg
