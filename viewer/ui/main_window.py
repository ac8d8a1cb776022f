"""The main window: linked slice views, explanation and display panels, comparison pane.

The window holds no application state: it forwards user actions to the
:class:`viewer.session.Session` and redraws from the session's state whenever the
session announces a change (through :class:`SessionBridge`, always on the GUI thread).
Panes live in a pyqtgraph DockArea so users can rearrange them; the views and the
comparison pane share one tab stack (C switches between them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets
from pyqtgraph.dockarea import Dock, DockArea

from viewer.ui.bridge import SessionBridge
from viewer.ui.colorbar import overlay_lut
from viewer.ui.comparison import ComparisonPane
from viewer.ui.dialogs import ShortcutsDialog, show_error
from viewer.ui.explain_panel import ExplainPanel
from viewer.ui.file_actions import FileActions
from viewer.ui.menus import build_menus, rebuild_recent
from viewer.ui.overlay_panel import OverlayPanel
from viewer.ui.profile_plot import ProfilePlot, release_plot_menus
from viewer.ui.views_grid import ViewsGrid

APP_NAME = "lrp-viewer"


class MainWindow(QtWidgets.QMainWindow):
    """One session on screen."""

    def __init__(self, session: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.resize(1500, 940)
        self.files = FileActions(self, session)
        self.shortcut_rows: list[tuple[str, str]] = []
        self._window_drag_start: tuple[float, float] | None = None
        self._hover: tuple[int, int, int] | None = None
        self._closed = False
        self._radiological = True

        self.profile = ProfilePlot()
        self.views = ViewsGrid(extra=self.profile)
        self.explain_panel = ExplainPanel(session)
        self.overlay_panel = OverlayPanel(session)
        self.comparison = ComparisonPane(session)

        self.area = DockArea()
        self.setCentralWidget(self.area)
        self.views_dock = Dock("Views", size=(1000, 900))
        self.views_dock.addWidget(self.views)
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
        self.actions_ = build_menus(self)

        self.views.cursorRequested.connect(self._set_cursor)
        self.views.sliceStepped.connect(lambda axis, step: self.session.move_cursor(axis, step))
        self.views.hovered.connect(self._on_hover)
        self.views.windowDragged.connect(self._on_window_drag)
        self.views.activeChanged.connect(lambda _n: self._refresh_profile())
        self.profile.sliceRequested.connect(self._on_profile_slice)
        self.comparison.cursorRequested.connect(self._set_cursor)
        self.comparison.sliceStepped.connect(lambda axis, step: self.session.move_cursor(axis, step))
        self.comparison.windowDragged.connect(self._on_window_drag)
        self.comparison.hovered.connect(self._on_hover)
        self.comparison_dock.label.sigClicked.connect(lambda *_: self._comparison_tab_clicked())
        self.views_dock.label.sigClicked.connect(lambda *_: self.session.set_comparison_open(False))

        self.bridge = SessionBridge(session, self)
        b = self.bridge
        b.connect_queued("scanChanged", self._on_scan)
        b.connect_queued("modelChanged", self._on_model)
        b.connect_queued("maskChanged", self._on_mask)
        b.connect_queued("cursorChanged", lambda _ijk: self._on_cursor())
        b.connect_queued("windowChanged", lambda _w: self._on_window())
        b.connect_queued("viewChanged", lambda _v: self._on_view())
        b.connect_queued("panelsChanged", self._on_panels)
        b.connect_queued("displayChanged", self._on_display)
        b.connect_queued("settingsChanged", self.explain_panel.refresh)
        b.connect_queued("predictionChanged", self._on_prediction)
        b.connect_queued("resultReady", self._on_result)
        b.connect_queued("progress", self._on_progress)
        b.connect_queued("busy", self._on_busy)
        b.connect_queued("metricsChanged", self.comparison.refresh_metrics)
        b.connect_queued("perturbationReady", self.comparison.refresh_perturbation)
        b.connect_queued("error", self._on_error)
        b.connect_queued("recentFilesChanged", lambda: rebuild_recent(self))
        rebuild_recent(self)
        self.sync_all()

    # -- whole-state sync -----------------------------------------------------------------
    def sync_all(self) -> None:
        """Redraw everything from the session (start-up, restored sessions)."""
        self._on_scan()
        self._on_model()
        self._on_panels()
        self._on_view()

    # -- session → screen --------------------------------------------------------------------
    def _on_scan(self) -> None:
        s = self.session
        scan = s.scan
        if scan is None:
            return
        self.views.set_scan(scan.data, scan.spacing, scan.planar, s.view.radiological)
        self._radiological = s.view.radiological
        self.comparison.set_scan(scan, s.view.radiological)
        self._on_window()
        self._on_mask()
        for i in range(len(s.panels)):
            self._on_result(i)
        self._on_cursor()
        self.views.reset_views()
        self.setWindowTitle(f"{APP_NAME} — {Path(s.scan_path or scan.path or 'scan').name}")
        self.overlay_panel.refresh()

    def _on_model(self) -> None:
        self.explain_panel.refresh()
        self.comparison.refresh_panels()

    def _on_mask(self) -> None:
        mask = self.session.mask
        self.views.set_mask(mask)
        self.comparison.set_mask(mask)

    def _on_cursor(self) -> None:
        c = self.session.cursor
        if c is None:
            return
        self.views.set_cursor(c.ijk)
        self.comparison.set_cursor(c.ijk)
        self.profile.set_slice(c.ijk[self.profile.axis])
        self._update_status()

    def _on_window(self) -> None:
        w = self.session.window
        if w is None:
            return
        self.views.set_levels(w.low, w.high)
        self.comparison.set_levels(w.low, w.high)
        self.overlay_panel.refresh_window()

    def _on_view(self) -> None:
        s = self.session
        v = s.view
        if s.scan is not None and v.radiological != self._radiological:
            self.views.set_radiological(s.scan.shape, s.scan.spacing, s.scan.planar, v.radiological)
            self.comparison.set_scan(s.scan, v.radiological)
            self._on_cursor()
        self._radiological = v.radiological
        if v.layout != self.views.layout_name:
            self.views.set_layout(v.layout)
        self.views.set_crosshair_visible(v.show_crosshair)
        self.views.set_outline_visible(v.mask_outline)
        self.comparison.set_crosshair_visible(v.show_crosshair)
        act = self.actions_["radiological"]
        act.blockSignals(True)
        act.setCheckable(True)
        act.setChecked(v.radiological)
        act.blockSignals(False)
        self.overlay_panel.refresh()
        if s.comparison_open:
            self.comparison_dock.raiseDock()

    def _on_panels(self) -> None:
        self.explain_panel.refresh()
        self.comparison.refresh_panels()
        for i in range(len(self.session.panels)):
            self._on_display(i)

    def _on_display(self, i: int) -> None:
        s = self.session
        if i >= len(s.panels):
            return
        ov = s.panels[i].overlay
        limit = s.panel_limit(i) or 1.0
        if i == 0:
            lut = overlay_lut(ov.colormap, ov.opacity, ov.threshold, ov.sign)
            self.views.set_overlay_style(lut, limit, ov.visible)
            self.overlay_panel.set_limit(ov.colormap, limit)
            act = self.actions_["overlay"]
            act.blockSignals(True)
            act.setCheckable(True)
            act.setChecked(ov.visible)
            act.blockSignals(False)
        self.comparison.refresh_display(i)

    def _on_result(self, i: int) -> None:
        s = self.session
        if i == 0:
            res = s.result(0)
            self._on_display(0)
            self.views.set_overlay(None if res is None else res.on_scan)
            self.explain_panel.refresh_result()
            self._refresh_profile()
        self.comparison.refresh_result(i)

    def _on_prediction(self) -> None:
        self.explain_panel.refresh()

    def _on_progress(self, i: int, fraction: float) -> None:
        self.explain_panel.set_progress(i, fraction)
        self.comparison.set_progress(i, fraction)

    def _on_busy(self, i: int, busy: bool) -> None:
        self.explain_panel.set_busy(i, busy)
        self.comparison.set_busy(i, busy)

    def _on_error(self, title: str, message: str) -> None:
        if not self._closed:
            show_error(self, title, message)

    def _refresh_profile(self) -> None:
        axis = self.views.active_view.orient.slice_axis
        prof = self.session.profile(0, axis) if self.session.result(0) is not None else None
        if prof is None:
            self.profile.set_profile(axis, None, None)
        else:
            self.profile.set_profile(axis, prof.positive, prof.negative)
        c = self.session.cursor
        if c is not None:
            self.profile.set_slice(c.ijk[axis])

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

    def _on_hover(self, ijk) -> None:
        self._hover = ijk
        self._update_status()

    def _update_status(self) -> None:
        s = self.session
        scan = s.scan
        ijk = self._hover or (s.cursor.ijk if s.cursor is not None else None)
        if scan is None or ijk is None:
            return
        i, j, k = ijk
        parts = [f"voxel ({i}, {j}, {k})"]
        if not scan.planar:
            x, y, z = scan.voxel_to_world(np.asarray(ijk, dtype=float))
            parts.append(f"world ({x:.1f}, {y:.1f}, {z:.1f}) mm")
        parts.append(f"value {float(scan.data[i, j, k]):.5g}")
        res = s.result(0)
        if res is not None:
            parts.append(f"relevance {float(res.on_scan[i, j, k]):.4g}")
        self.status_label.setText("   ".join(parts))

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
        self.bridge.detach()
        for view in self.findChildren(pg.GraphicsView):
            release_plot_menus(view)
