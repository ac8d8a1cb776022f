"""Scripted runs of the real window: start-up timing and README screenshots.

Used by hidden launcher flags (``--benchmark-first-overlay``, ``--screenshot``) so the
benchmark and the screenshots exercise exactly what a user starts, not a test double.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from PySide6 import QtCore, QtWidgets


def _fail(title: str, message: str) -> None:
    """A scripted run cannot answer dialogs: report the error and stop."""
    print(f"error: {title}: {message}", file=sys.stderr, flush=True)
    QtWidgets.QApplication.quit()


def _final(session: Any, i: int) -> bool:
    res = session.result(i)
    return res is not None and not res.preview and not session.is_busy(i)


class FirstOverlayTimer(QtCore.QObject):
    """Prints seconds from process start to the first overlay and to the final LRP map, then quits."""

    def __init__(self, window: Any, start: float, timeout_s: float = 300.0) -> None:
        super().__init__(window)
        self.window = window
        self.start = start
        self.first: float | None = None
        self.rc = 1
        self._timer = QtCore.QTimer(self, interval=5)
        self._timer.timeout.connect(self._poll)
        self._timer.start()
        window.bridge.error.connect(_fail)
        QtCore.QTimer.singleShot(int(timeout_s * 1000), self._give_up)

    def _poll(self) -> None:
        s = self.window.session
        view = self.window.views.views["axial"]
        if self.first is None and view.overlay_item.image is not None:
            self.first = time.perf_counter() - self.start
            print(f"first_overlay_s={self.first:.3f}", flush=True)
        if self.first is not None and _final(s, 0):
            print(f"final_overlay_s={time.perf_counter() - self.start:.3f}", flush=True)
            self.rc = 0
            self._timer.stop()
            QtWidgets.QApplication.quit()

    def _give_up(self) -> None:
        print("first_overlay_s=timeout", flush=True)
        QtWidgets.QApplication.quit()


class Screenshotter(QtCore.QObject):
    """Waits for finished explanations, grabs the main window (and the comparison pane), quits."""

    def __init__(self, window: Any, main_path: str | None, comparison_path: str | None,
                 timeout_s: float = 400.0) -> None:
        super().__init__(window)
        self.window = window
        self.main_path = main_path
        self.comparison_path = comparison_path
        self.rc = 1
        self.stage = "main" if main_path else "comparison"
        self._settle = 0
        self._curves_requested = False
        self._timer = QtCore.QTimer(self, interval=200)
        self._timer.timeout.connect(self._poll)
        self._timer.start()
        window.bridge.error.connect(_fail)
        QtCore.QTimer.singleShot(int(timeout_s * 1000), QtWidgets.QApplication.quit)

    def _ready(self) -> bool:
        s = self.window.session
        n = len(s.panels) if self.stage == "comparison" else 1
        return s.scan is not None and all(_final(s, i) for i in range(n))

    def _poll(self) -> None:
        if not self._ready():
            self._settle = 0
            return
        self._settle += 1
        if self._settle < 3:  # let queued redraws land
            return
        self._settle = 0
        if self.stage == "main":
            self.window.grab().save(self.main_path)
            print(f"screenshot {self.main_path}", flush=True)
            if not self.comparison_path:
                self._done()
                return
            self.stage = "comparison"
        if self.stage == "comparison":
            s = self.window.session
            if not s.comparison_open:
                # the README picture: LRP ε+ | Grad-CAM | LRP α2β1 | Integrated Gradients
                self.window.toggle_comparison()
                s.add_panel("lrp", preset="epsilon-alpha2-beta1")
                s.add_panel("integrated_gradients")
                self._curves_requested = False
                return
            if not self._curves_requested:
                self.window.comparison.request_perturbation()
                self._curves_requested = True
                return
            if not self._curves_ready():
                return
            self.window.grab().save(self.comparison_path)
            print(f"screenshot {self.comparison_path}", flush=True)
            self._done()

    def _curves_ready(self) -> bool:
        s = self.window.session
        try:
            return all(s.perturbation(i) is not None for i in range(len(s.panels)))
        except Exception:  # noqa: BLE001 - perturbation curves are optional for the picture
            return True

    def _done(self) -> None:
        self.rc = 0
        self._timer.stop()
        QtWidgets.QApplication.quit()
