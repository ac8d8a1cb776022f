"""The main window: linked slice views, explanation and display panels, comparison pane.

The window holds no application state: it forwards user actions to the
:class:`viewer.session.Session` and redraws from the session's state whenever the
session announces a change (through :class:`SessionBridge`, always on the GUI thread,
each handler guarded by a :class:`Dispatcher`; the handlers are in
:mod:`viewer.ui.window_sync`). Panes live in a pyqtgraph DockArea so users can rearrange
them; the views and the comparison pane share one tab stack (C switches between them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets
from pyqtgraph.dockarea import Dock, DockArea

from viewer.ui import gui_gc
from viewer.ui.bridge import SessionBridge
from viewer.ui.compare_model import CompareModelFeature
from viewer.ui.comparison import ComparisonPane
from viewer.ui.dialogs import ShortcutsDialog
from viewer.ui.dispatch import Dispatcher
from viewer.ui.explain_panel import ExplainPanel
from viewer.ui.file_actions import FileActions
from viewer.ui.graph_link import GraphFeature
from viewer.ui.menus import build_menus, rebuild_recent
from viewer.ui.notes_bar import NotesBar
from viewer.ui.overlay_panel import OverlayPanel
from viewer.ui.profile_plot import ProfilePlot, release_plot_menus
from viewer.ui.scan_info_dialog import ScanInfoDialog
from viewer.ui.status import StatusReadout
from viewer.ui.views_grid import ViewsGrid
from viewer.ui.window_dialog import open_window_dialog
from viewer.ui.window_sync import APP_NAME, ScreenSyncMixin


class MainWindow(ScreenSyncMixin, QtWidgets.QMainWindow):
    """One session on screen."""

    def __init__(self, session: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        gui_gc.install()  # also when the QApplication was not made by make_app (tests, embedding)
        self.session = session
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.resize(1500, 940)
        self.files = FileActions(self, session)
        self.shortcut_rows: list[tuple[str, str]] = []
        self._window_drag_start: tuple[float, float] | None = None
        self._closed = False
        self._radiological = True
        self.window_dialog: Any = None
        self.dispatch = Dispatcher(self._report_handler_error)

        self.profile = ProfilePlot()
        self.views = ViewsGrid(extra=self.profile)
        self.notes_bar = NotesBar()
        self.notes_bar.infoRequested.connect(self.show_scan_info)
        self.explain_panel = ExplainPanel(session)
        self.overlay_panel = OverlayPanel(session, open_map=lambda: self.files.open_relevance_map(),
                                          open_window_dialog=self.show_window_dialog)
        self.comparison = ComparisonPane(session)

        self.area = DockArea()
        self.setCentralWidget(self.area)
        self.views_dock = Dock("Views", size=(1000, 900))
        views_box = QtWidgets.QWidget()
        vl = QtWidgets.QVBoxLayout(views_box)
        vl.setContentsMargins(0, 0, 0, 0)
        vl.setSpacing(2)
        vl.addWidget(self.notes_bar)
        vl.addWidget(self.views, 1)
        self.views_dock.addWidget(views_box)
        self.comparison_dock = Dock("Comparison", size=(1000, 900))
        self.comparison_dock.addWidget(self.comparison)
        self.explain_dock = Dock("Explain", size=(400, 430))
        self.explain_dock.addWidget(self.explain_panel)
        self.display_dock = Dock("Display", size=(400, 470))
        self.display_dock.addWidget(self.overlay_panel)
        self.area.addDock(self.comparison_dock, "left")
        self.area.addDock(self.views_dock, "above", self.comparison_dock)
        self.area.addDock(self.explain_dock, "right", self.views_dock)
        self.area.addDock(self.display_dock, "bottom", self.explain_dock)
        self.views_dock.raiseDock()

        self.status_label = QtWidgets.QLabel("Open a scan (Ctrl+O) or drop a file here.")
        self.status_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.statusBar().addWidget(self.status_label, 1)
        self.status = StatusReadout(self.status_label, session)
        self.status.sources = [self.views, self.comparison]
        self.actions_ = build_menus(self)

        self.views.cursorRequested.connect(self._set_cursor)
        self.views.sliceStepped.connect(lambda axis, step: self.session.move_cursor(axis, step))
        self.views.hovered.connect(self.dispatch.guard("hover", self._on_hover))
        self.views.windowDragged.connect(self._on_window_drag)
        self.views.activeChanged.connect(lambda _n: self._refresh_profile())
        self.profile.sliceRequested.connect(self.dispatch.guard("profile", self._on_profile_slice))
        self.comparison.cursorRequested.connect(self._set_cursor)
        self.comparison.sliceStepped.connect(lambda axis, step: self.session.move_cursor(axis, step))
        self.comparison.windowDragged.connect(self._on_window_drag)
        self.comparison.hovered.connect(self.dispatch.guard("hover", self._on_hover))
        self.comparison_dock.label.sigClicked.connect(lambda *_: self._comparison_tab_clicked())
        self.views_dock.label.sigClicked.connect(lambda *_: self.session.set_comparison_open(False))

        self.bridge = SessionBridge(session, self)
        handlers = {
            "scanChanged": self._on_scan, "modelChanged": self._on_model, "maskChanged": self._on_mask,
            "cursorChanged": lambda _ijk: self._on_cursor(), "windowChanged": lambda _w: self._on_window(),
            "viewChanged": lambda _v: self._on_view(), "panelsChanged": self._on_panels,
            "displayChanged": self._on_display, "settingsChanged": self.explain_panel.refresh,
            "predictionChanged": self._on_prediction, "resultReady": self._on_result,
            "progress": self._on_progress, "busy": self._on_busy, "metricsChanged": self.comparison.refresh_metrics,
            "perturbationReady": self.comparison.refresh_perturbation, "error": self._on_error,
            "recentFilesChanged": lambda: rebuild_recent(self), "layersChanged": self._on_layers,
        }
        for name, handler in handlers.items():  # one failing handler never stops the others
            self.bridge.connect_queued(name, self.dispatch.guard(name, handler))
        rebuild_recent(self)
        self.graph = GraphFeature(self)  # after the handlers above: its overlay is drawn after theirs
        self.compare_model = CompareModelFeature(self)  # File → Compare with model… (a second model B)
        self.dispatch.run("start-up", self.sync_all)

    # -- screen → session --------------------------------------------------------------------
    def _set_cursor(self, ijk) -> None:
        self.session.set_cursor(ijk)

    def _on_profile_slice(self, axis: int, index: int) -> None:
        c = self.session.cursor
        if c is not None:
            ijk = list(c.ijk)
            ijk[axis] = index
            self.session.set_cursor(tuple(ijk))

    def _on_window_drag(self, dx: float, dy: float, start: bool) -> None:
        w = self.session.window
        if w is None:
            return
        if start or self._window_drag_start is None:
            self._window_drag_start = (w.centre, w.width)
        c0, w0 = self._window_drag_start
        width = max(w0 * float(np.exp(dx / 200.0)), 1e-6)
        centre = c0 + dy * w0 / 250.0
        self.session.set_window(centre, width)

    def _on_hover(self, _ijk) -> None:
        self._update_status()

    # -- commands -----------------------------------------------------------------------
    def open_demo(self) -> bool:
        return bool(self.session.open_demo())

    def toggle_overlay(self) -> None:
        if self.session.panels:
            self.session.set_overlay(0, visible=not self.session.panels[0].overlay.visible)

    def toggle_comparison(self) -> None:
        show = not self.session.comparison_open
        if show:
            self.comparison.ensure_default_panels()
        self.session.set_comparison_open(show)
        (self.comparison_dock if show else self.views_dock).raiseDock()

    def _comparison_tab_clicked(self) -> None:
        self.comparison.ensure_default_panels()
        self.session.set_comparison_open(True)

    def toggle_radiological(self) -> None:
        self.session.set_view(radiological=not self.session.view.radiological)

    def toggle_fullscreen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def reset_views(self) -> None:
        self.views.reset_views()
        self.comparison.reset_views()

    def request_perturbation(self) -> None:
        self.comparison.request_perturbation()
        self.session.set_comparison_open(True)
        self.comparison_dock.raiseDock()

    def show_shortcuts(self) -> ShortcutsDialog:
        dlg = ShortcutsDialog(self.shortcut_rows, self)
        dlg.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()
        return dlg

    def show_scan_info(self) -> ScanInfoDialog:
        dlg = ScanInfoDialog(self.session, self)
        dlg.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()
        return dlg

    def show_window_dialog(self) -> Any:
        return open_window_dialog(self)

    def toggle_link_zoom(self) -> None:
        self.session.set_view(link_zoom=not self.session.view.link_zoom)

    def show_about(self) -> QtWidgets.QDialog:
        from viewer.ui.about import show_about  # version, licences, patent note

        return show_about(self)

    # -- drag and drop ------------------------------------------------------------------------
    def dragEnterEvent(self, ev: QtGui.QDragEnterEvent) -> None:  # noqa: N802
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev: QtGui.QDropEvent) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        ev.acceptProposedAction()
        # scans before masks/models so a dropped "case + mask" pair opens in order
        paths.sort(key=lambda p: (Path(p).suffix.lower() in (".toml", ".pt", ".pth", ".safetensors"),
                                  any(w in Path(p).name.lower() for w in ("mask", "seg", "label"))))
        for p in paths:
            self.files.open_any(p)

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(ev)

    def shutdown(self) -> None:
        """Detach from the session (it keeps running until its owner closes it)."""
        if self._closed:
            return
        self._closed = True
        self.explain_panel.flush()
        self.graph.shutdown()
        self.compare_model.shutdown()
        self.bridge.detach()
        for view in self.findChildren(pg.GraphicsView):
            release_plot_menus(view)
