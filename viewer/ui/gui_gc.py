"""Python's cyclic garbage collector, run on the GUI thread only.

Explanations run on a worker thread that allocates many Python objects, so Python's
automatic collector often starts there. If it then frees a cycle that holds a Qt
wrapper (a pyqtgraph item, a widget a panel dropped), the C++ object is destroyed on
the worker thread, which Qt does not allow: the binding layer's bookkeeping is
corrupted and the program crashes later, far from the cause (seen as a segmentation
fault when a window is deleted). Reference counting still frees everything that is not
in a cycle at once, on whatever thread drops it; only the cycle collector is moved.

:func:`install` switches the automatic collector off for the life of the
QApplication and collects instead from a timer on the GUI thread, generation by
generation with Python's own thresholds, so the cost stays what it was.
"""

from __future__ import annotations

import gc

from PySide6 import QtCore, QtWidgets

INTERVAL_MS = 250


class GuiThreadCollector(QtCore.QObject):
    """Collects each generation whose allocation count passed its threshold."""

    def __init__(self, app: QtCore.QCoreApplication, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(app)
        self.setObjectName("guiThreadCollector")
        self.thresholds = gc.get_threshold()
        self.collected = 0  # objects found unreachable, for tests and diagnostics
        gc.disable()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(int(interval_ms))
        self.timer.timeout.connect(self.check)
        self.timer.start()
        app.aboutToQuit.connect(self.stop)

    def check(self) -> int:
        """One round: the youngest generation, then older ones while they are due."""
        counts = gc.get_count()
        found = 0
        for generation in range(3):
            if counts[generation] <= self.thresholds[generation]:
                break
            found += gc.collect(generation)
        self.collected += found
        return found

    def stop(self) -> None:
        """Give the collector back to Python (the event loop is ending)."""
        self.timer.stop()
        gc.collect()
        gc.enable()


def install(app: QtCore.QCoreApplication | None = None) -> GuiThreadCollector:
    """Install the collector on ``app`` (default: the running QApplication), once."""
    app = app or QtWidgets.QApplication.instance()
    if app is None:
        raise RuntimeError("Create the QApplication before installing the GUI-thread collector.")
    if QtCore.QThread.currentThread() is not app.thread():
        raise RuntimeError("The GUI-thread collector must be installed from the GUI thread.")
    existing = app.findChild(GuiThreadCollector, "guiThreadCollector")
    if existing is not None:
        if not existing.timer.isActive():
            gc.disable()
            existing.timer.start()
        return existing
    return GuiThreadCollector(app)
