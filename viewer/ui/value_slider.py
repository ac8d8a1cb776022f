"""A value slider a hand can use: a slider at least 140 px wide plus a spin box.

pyqtgraph's tree slider shares its narrow value column with a text label, which left
the opacity slider about 50 px wide (27 px of drag for 0.6 → 0.0). Here the slider gets
a usable minimum width and a spin box beside it takes exact values, both bound to one
value. :func:`register` makes it the ``"spinslider"`` parameter type of the trees.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets
from pyqtgraph.parametertree import Parameter, registerParameterType
from pyqtgraph.parametertree.parameterTypes import WidgetParameterItem

SLIDER_MIN_WIDTH = 140
STEPS = 1000


class ValueSlider(QtWidgets.QWidget):
    """Slider + spin box over ``[low, high]``; :attr:`valueChanged` carries the float value."""

    valueChanged = QtCore.Signal(float)

    def __init__(self, low: float = 0.0, high: float = 1.0, step: float = 0.05, decimals: int = 2,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.low, self.high = float(low), float(high)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, STEPS)
        self.slider.setMinimumWidth(SLIDER_MIN_WIDTH)
        self.slider.setPageStep(STEPS // 10)
        self.spin = QtWidgets.QDoubleSpinBox()
        self.spin.setRange(self.low, self.high)
        self.spin.setDecimals(decimals)
        self.spin.setSingleStep(step)
        self.spin.setKeyboardTracking(False)  # typing "0.25" sends one value, not three
        self.spin.setFixedWidth(64)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.spin)
        self._value = self.low
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)

    def value(self) -> float:
        return self._value

    def setValue(self, value: float) -> None:  # noqa: N802 - Qt naming, used by the parameter tree
        value = min(max(float(value), self.low), self.high)
        changed = value != self._value
        self._value = value
        for w, v in ((self.slider, self._to_steps(value)), (self.spin, value)):
            w.blockSignals(True)
            w.setValue(v)
            w.blockSignals(False)
        if changed:
            self.valueChanged.emit(value)

    def _to_steps(self, value: float) -> int:
        span = self.high - self.low
        return int(round(STEPS * (value - self.low) / span)) if span > 0 else 0

    def _from_slider(self, steps: int) -> None:
        self.setValue(self.low + (self.high - self.low) * steps / STEPS)

    def _from_spin(self, value: float) -> None:
        self.setValue(value)


class ValueSliderItem(WidgetParameterItem):
    """Parameter-tree item showing a :class:`ValueSlider` (always visible, not only when selected)."""

    def __init__(self, param, depth) -> None:
        super().__init__(param, depth)
        self.hideWidget = False  # read by pyqtgraph when the item joins a tree

    def makeWidget(self):  # noqa: N802 - pyqtgraph's API
        opts = self.param.opts
        low, high = opts.get("limits", (0.0, 1.0))
        w = ValueSlider(low, high, opts.get("step", 0.05), opts.get("decimals", 2))
        w.sigChanged = w.valueChanged
        w.sigChanging = w.valueChanged
        return w


class ValueSliderParameter(Parameter):
    """A float parameter shown as a :class:`ValueSlider`."""

    itemClass = ValueSliderItem


def register() -> None:
    """Make ``type="spinslider"`` available to ``Parameter.create`` (idempotent)."""
    registerParameterType("spinslider", ValueSliderParameter, override=True)
