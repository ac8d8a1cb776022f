"""Session callbacks → Qt signals, so worker-thread events reach widgets on the GUI thread.

The session never imports Qt and may emit from its worker thread. Each session signal is
re-emitted here as a Qt signal; widgets connect with ``QueuedConnection`` so their slots
always run on the GUI thread, where they read the (thread-safe) session state.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore

# session signal name -> Qt signal attribute of SessionBridge
_PAIRS = (
    ("scan_changed", "scanChanged"),
    ("model_changed", "modelChanged"),
    ("mask_changed", "maskChanged"),
    ("cursor_changed", "cursorChanged"),
    ("window_changed", "windowChanged"),
    ("view_changed", "viewChanged"),
    ("panels_changed", "panelsChanged"),
    ("display_changed", "displayChanged"),
    ("settings_changed", "settingsChanged"),
    ("prediction_changed", "predictionChanged"),
    ("result_ready", "resultReady"),
    ("progress", "progress"),
    ("busy", "busy"),
    ("metrics_changed", "metricsChanged"),
    ("perturbation_ready", "perturbationReady"),
    ("error", "error"),
    ("recent_files_changed", "recentFilesChanged"),
    ("layers_changed", "layersChanged"),
)


class SessionBridge(QtCore.QObject):
    """Qt mirror of a :class:`viewer.session.Session`'s signals."""

    scanChanged = QtCore.Signal()
    modelChanged = QtCore.Signal()
    maskChanged = QtCore.Signal()
    cursorChanged = QtCore.Signal(object)
    windowChanged = QtCore.Signal(object)
    viewChanged = QtCore.Signal(object)
    panelsChanged = QtCore.Signal()
    displayChanged = QtCore.Signal(int)
    settingsChanged = QtCore.Signal()
    predictionChanged = QtCore.Signal()
    resultReady = QtCore.Signal(int)
    progress = QtCore.Signal(int, float)
    busy = QtCore.Signal(int, bool)
    metricsChanged = QtCore.Signal()
    perturbationReady = QtCore.Signal(int)
    error = QtCore.Signal(str, str)
    recentFilesChanged = QtCore.Signal()
    layersChanged = QtCore.Signal()

    def __init__(self, session: Any, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._links: list[tuple[Any, Any]] = []
        for name, qt_name in _PAIRS:
            source = getattr(session, name, None)
            if source is None or not hasattr(source, "connect"):
                continue
            fn = self._forwarder(getattr(self, qt_name))
            source.connect(fn)
            self._links.append((source, fn))

    @staticmethod
    def _forwarder(qt_signal: Any):  # type: ignore[no-untyped-def]
        def forward(*args: Any) -> None:
            qt_signal.emit(*args)

        return forward

    def connect_queued(self, qt_name: str, slot: Any) -> None:
        """Connect a slot so it always runs on the receiver's (GUI) thread."""
        getattr(self, qt_name).connect(slot, QtCore.Qt.ConnectionType.QueuedConnection)

    def detach(self) -> None:
        """Stop forwarding (call before the session shuts down and before deleting widgets)."""
        for source, fn in self._links:
            source.disconnect(fn)
        self._links.clear()
