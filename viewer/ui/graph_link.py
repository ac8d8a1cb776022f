"""The attribution graph in the main window: its dock, its actions, and the views' overlay.

Everything about the graph that touches the main window lives here, so the window only
creates a :class:`GraphFeature` and shuts it down. The graph pane sits in a dock under
the views (key G, View → Attribution graph, the toolbar button); File → Set reference
cases… picks the reference folder. When nodes are selected (or features switched off
with the ablated map chosen), the session's :meth:`graph_overlay` replaces the main
panel's map in all three views, with the colour bar and limits of that map; this
handler runs after the window's own redraw of the panel (it is connected later, and
queued connections run in order), so the views always end on what the session says.
"""

from __future__ import annotations

from typing import Any, Sequence

from PySide6 import QtCore, QtGui, QtWidgets
from pyqtgraph.dockarea import Dock

from viewer.ui.colorbar import limit_title, overlay_lut
from viewer.ui.graph_pane import GraphPane

SHORTCUT = "G"


class GraphBridge(QtCore.QObject):
    """The session's graph signals as Qt signals (they may be emitted on the worker thread)."""

    changed = QtCore.Signal(str)
    progress = QtCore.Signal(str, float)
    busy = QtCore.Signal(str, bool)

    def __init__(self, session: Any, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._links = [(session.graph_changed, self.changed.emit), (session.graph_progress, self.progress.emit),
                       (session.graph_busy, self.busy.emit)]
        for source, fn in self._links:
            source.connect(fn)

    def detach(self) -> None:
        for source, fn in self._links:
            source.disconnect(fn)
        self._links = []


def _menu(window: QtWidgets.QMainWindow, title: str) -> QtWidgets.QMenu | None:
    for act in window.menuBar().actions():
        if act.menu() is not None and act.text().replace("&", "") == title:
            return act.menu()
    return None


class GraphFeature(QtCore.QObject):
    """Creates the graph pane, dock, actions and toolbar button of ``window`` and keeps the
    views' overlay in step with the session's graph selection."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window, self.session = window, window.session
        self._showing = False
        self.pane = GraphPane(self.session, choose_reference=self.choose_reference, compare=self.send_to_comparison)
        self.dock = Dock("Attribution graph", size=(1000, 380))
        self.dock.addWidget(self.pane)
        window.area.addDock(self.dock, "bottom", window.views_dock)
        self.dock.hide()
        self._make_actions()
        guard = window.dispatch.guard
        self.bridge = GraphBridge(self.session, self)
        queued = QtCore.Qt.ConnectionType.QueuedConnection
        self.bridge.changed.connect(guard("graph", self._on_changed), queued)
        self.bridge.progress.connect(guard("graph progress", self.pane.set_progress), queued)
        self.bridge.busy.connect(guard("graph busy", self._on_busy), queued)
        for name in ("scanChanged", "panelsChanged", "resultReady", "displayChanged"):
            window.bridge.connect_queued(name, guard(f"graph overlay ({name})", lambda *_a: self.apply_overlay()))

    def _make_actions(self) -> None:
        w = self.window
        act = QtGui.QAction("Attribution &graph", w)
        act.setShortcut(QtGui.QKeySequence(SHORTCUT))
        act.setCheckable(True)
        act.setToolTip("Show which internal features carry the decision and how relevance flows (G)")
        act.toggled.connect(lambda on: w.dispatch.run("graph pane", self.set_open, on))
        w.addAction(act)
        view = _menu(w, "View")
        if view is not None:
            view.addAction(act)
        ref = QtGui.QAction("Set &reference cases…", w)
        ref.triggered.connect(lambda _c=False: self.choose_reference())
        file_menu = _menu(w, "File")
        if file_menu is not None:
            after = w.actions_.get("open_demo")
            acts = file_menu.actions()
            before = acts[acts.index(after) + 1] if after in acts and acts.index(after) + 1 < len(acts) else None
            file_menu.insertAction(before, ref) if before is not None else file_menu.addAction(ref)
        self.toolbar = w.addToolBar("Tools")
        self.toolbar.setObjectName("toolsToolbar")
        self.toolbar.addAction(act)
        w.actions_["graph"], w.actions_["reference_cases"] = act, ref
        w.shortcut_rows.append((SHORTCUT, "Attribution graph"))
        self.action = act

    # -- commands -------------------------------------------------------------------------
    def toggle(self) -> None:
        self.action.toggle()

    def set_open(self, on: bool) -> None:
        """Show or hide the pane; the session builds graphs only while it is shown."""
        if self.action.isChecked() != on:
            self.action.setChecked(on)  # comes back here through toggled
            return
        self.dock.setVisible(on)
        self.session.set_graph_enabled(on)
        self.pane.refresh("graph")
        if not on:
            self.session.clear_graph_selection()

    def choose_reference(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self.window, "Reference cases: a folder of scans")
        if folder:
            self.session.set_reference_folder(folder)

    def send_to_comparison(self, ids: Sequence[str] | None) -> int:
        index = self.session.send_to_comparison(ids)
        self.window.comparison_dock.raiseDock()
        return index

    # -- session → screen ------------------------------------------------------------------------
    def _on_changed(self, part: str) -> None:
        if part == "settings" and self.action.isChecked() != self.session.graph_enabled:
            self.set_open(self.session.graph_enabled)  # a restored session opens or closes the pane
        self.pane.refresh(part)
        if part in ("graph", "selection", "ablation"):
            self.apply_overlay()

    def _on_busy(self, part: str, busy: bool) -> None:
        self.pane.set_busy(part, busy)

    def apply_overlay(self) -> None:
        """Show the session's graph map in the views (colour bar, limits, profile), or give
        the views back to the main panel when there is none."""
        w, s = self.window, self.session
        if s.panels:
            self.pane.set_colormap(s.panels[0].overlay.colormap)
        shown = s.graph_overlay() if s.scan is not None else None
        if shown is None:
            if self._showing:
                self._showing = False
                w._on_result(0)  # the main panel's map, limits and profile again
            w.status.update()
            return
        if shown.on_scan.shape != tuple(s.scan.shape):
            return
        self._showing = True
        ov = s.display_overlay(0)
        limit = shown.limit(ov) or 1.0
        w.views.set_overlay_style(overlay_lut(ov.colormap, ov.opacity, ov.threshold, ov.sign), limit, ov.visible)
        w.views.set_overlay(shown.on_scan)
        w.overlay_panel.colorbar.set_map(ov.colormap, limit, limit_title(ov, limit).replace("relevance", shown.label, 1))
        from viewer.session.profile import relevance_profile

        axis = w.views.active_view.orient.slice_axis
        prof = relevance_profile(shown.on_scan, axis)
        w.profile.set_profile(axis, prof.positive, prof.negative)
        w.status.update()

    def shutdown(self) -> None:
        self.bridge.detach()
