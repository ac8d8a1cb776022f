"""A second model in the main window: File → Compare with model…, and what shows it.

Everything about model B that touches the window lives here, so the window only creates
a :class:`CompareModelFeature` and shuts it down. Opening B goes through the session
(the same trust question as File → Open model), adds a comparison panel that explains
B like the main panel explains A, and brings the comparison pane forward; the pane's
bar then names both models with their predictions, and each panel's A/B box chooses.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from viewer.ui.file_actions import MODEL_FILTER

SHORTCUT = "Ctrl+Shift+M"


class CompareBridge(QtCore.QObject):
    """The session's ``compare_changed`` as a Qt signal (it may come from the worker thread)."""

    changed = QtCore.Signal(str)

    def __init__(self, session: Any, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._source = session.compare_changed
        self._source.connect(self.changed.emit)

    def detach(self) -> None:
        if self._source is not None:
            self._source.disconnect(self.changed.emit)
            self._source = None


def prediction_text(session: Any, which: str) -> str:
    """"A: demo2d_shortcut → lesion right 97 %" (rich text), or why model ``which`` has no answer yet."""
    name = html.escape(session.model_label(which))
    if which == "B":
        pred, error = session.compare_prediction, session.compare_prediction_error
    else:
        pred, error = session.prediction, getattr(session, "prediction_error", None)
    if error:
        short = error if len(error) <= 70 else error[:69] + "…"
        answer = f"<span style='color:#f0a070'>no prediction: {html.escape(short)}</span>"
    elif pred is None:
        answer = f"<span style='color:#aaa'>{'…' if session.scan is not None else 'no scan'}</span>"
    else:
        label, p = pred.top(1)[0]
        answer = f"{html.escape(label)} {100 * p:.0f} %"
    return f"<b>{which}:</b> {name} → {answer}"


class CompareModelFeature(QtCore.QObject):
    """File → Compare with model… / Close model B, and the comparison pane's model line."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window, self.session = window, window.session
        self._make_actions()
        guard = window.dispatch.guard
        self.bridge = CompareBridge(self.session, self)
        self.bridge.changed.connect(guard("model B", self.refresh), QtCore.Qt.ConnectionType.QueuedConnection)
        for name in ("predictionChanged", "modelChanged"):
            window.bridge.connect_queued(name, guard(f"model B ({name})", lambda *_a: self.refresh()))
        self.refresh()

    def _make_actions(self) -> None:
        w = self.window
        self.open_action = QtGui.QAction("Compare &with model…", w)
        self.open_action.setShortcut(QtGui.QKeySequence(SHORTCUT))
        self.open_action.setToolTip("Open a second model (B) for this scan; comparison panels can explain A or B")
        self.open_action.triggered.connect(lambda _c=False: w.dispatch.run("compare with model", self.open))
        self.close_action = QtGui.QAction("Close model &B", w)
        self.close_action.triggered.connect(lambda _c=False: self.session.clear_compare_model())
        file_menu = next((a.menu() for a in w.menuBar().actions()
                          if a.menu() is not None and a.text().replace("&", "") == "File"), None)
        if file_menu is not None:
            acts = file_menu.actions()
            after = w.actions_.get("open_model")
            before = acts[acts.index(after) + 1] if after in acts and acts.index(after) + 1 < len(acts) else None
            for act in (self.open_action, self.close_action):
                file_menu.insertAction(before, act) if before is not None else file_menu.addAction(act)
        w.addAction(self.open_action)  # the shortcut works with the menu bar hidden
        w.actions_["compare_model"], w.actions_["close_compare_model"] = self.open_action, self.close_action
        key = self.open_action.shortcut().toString(QtGui.QKeySequence.SequenceFormat.NativeText)
        w.shortcut_rows.append((key, "Compare with model (a second model B)"))

    # -- commands ---------------------------------------------------------------------------
    def open(self, path: str | None = None, trust: bool = False) -> bool:
        """Open model B (asking for the file when ``path`` is None), put it beside the main
        panel in the comparison pane, and show the pane."""
        if path is None:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self.window, "Compare with model (model B)", "",
                                                            MODEL_FILTER)
            if not path:
                return False
        if not self.session.open_compare_model(path, trust=trust):
            return False
        self.session.add_compare_panel()
        self.session.set_comparison_open(True)
        self.window.comparison_dock.raiseDock()
        return True

    # -- session → screen ---------------------------------------------------------------------
    def refresh(self, _part: str = "") -> None:
        s, pane = self.session, self.window.comparison
        two = s.compare_model is not None
        self.close_action.setEnabled(two)
        pane.models_label.setVisible(two)
        pane.models_label.setText(f"{prediction_text(s, 'A')} &nbsp;·&nbsp; {prediction_text(s, 'B')}" if two else "")
        pane.models_label.setToolTip(f"A: {s.model_path or ''}\nB: {s.compare_model_path or ''}" if two else "")
        if _part == "model":
            pane.refresh_panels()
            self.window.graph.pane.refresh("changes")

    def shutdown(self) -> None:
        self.bridge.detach()
