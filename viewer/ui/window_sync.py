"""Session → screen: how the main window redraws when the session announces a change.

Every handler reads the session's current state (never the signal's arguments alone),
so a late or repeated signal can only redraw the truth. A new scan changes everything
that names or describes the case — title, notes bar, status bar, views, panels, layer
list — in one handler whose steps each run guarded (:class:`viewer.ui.dispatch.Dispatcher`):
the case's identity is written first, and a failing step can no longer leave the old
title over the new scan. Mixed into :class:`viewer.ui.main_window.MainWindow`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from viewer.ui.colorbar import overlay_lut
from viewer.ui.dialogs import show_error

APP_NAME = "lrp-viewer"


def window_title(session: Any) -> str:
    """``lrp-viewer — case.nii.gz — Model name``: the case and the model, as they are now."""
    parts = [APP_NAME]
    scan = session.scan
    if scan is not None:
        parts.append(Path(session.scan_path or scan.path or "scan").name)
    if session.model is not None:
        parts.append(str(getattr(session.model, "name", "model")))
    return " — ".join(parts)


class ScreenSyncMixin:
    # -- whole-state sync ---------------------------------------------------------------
    def sync_all(self) -> None:
        """Redraw everything from the session (start-up, restored sessions)."""
        self._on_scan()
        self._on_model()
        self._on_panels()
        self._on_view()

    def _on_scan(self) -> None:
        s = self.session
        scan = s.scan
        steps = [
            ("title", self._update_title),
            ("notes", lambda: self.notes_bar.set_notes(s.scan_notes(), s.scan_token)),
            ("status", self._update_status),
        ]
        if scan is not None:
            steps += [
                ("views", lambda: self.views.set_scan(scan.data, scan.spacing, scan.planar, s.view.radiological)),
                ("comparison", lambda: self.comparison.set_scan(scan, s.view.radiological)),
                ("window", self._on_window),
                ("mask", self._on_mask),
                ("layers", self._on_layers),
                *[(f"panel {i}", lambda i=i: self._on_result(i)) for i in range(len(s.panels))],
                ("cursor", self._on_cursor),
                ("zoom", self.views.reset_views),
                ("display panel", self.overlay_panel.refresh),
                ("explain panel", self.explain_panel.refresh),
                ("status", self._update_status),  # again: the views now know the new geometry
            ]
            self._radiological = s.view.radiological
        self.dispatch.steps("new scan", steps)

    def _on_model(self) -> None:
        self.dispatch.steps("new model", [
            ("title", self._update_title),
            ("explain panel", self.explain_panel.refresh),
            ("comparison", self.comparison.refresh_panels),
            ("layers", self.overlay_panel.layers.refresh),
        ])

    def _update_title(self) -> None:
        self.setWindowTitle(window_title(self.session))

    def _update_status(self) -> None:
        self.status.update()

    def _on_mask(self) -> None:
        mask = self.session.mask
        self.views.set_mask(mask)
        self.comparison.set_mask(mask)
        self.overlay_panel.layers.refresh()

    def _on_layers(self) -> None:
        maps = [(m.data, overlay_lut(m.overlay.colormap, m.overlay.opacity, m.overlay.threshold, m.overlay.sign),
                 m.limit, m.overlay.visible) for m in self.session.maps]
        self.views.set_maps(maps)
        self.overlay_panel.layers.refresh()

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
        self.views.set_crosshair_gap(v.crosshair_gap)
        self.views.zoom_link.set_enabled(v.link_zoom)
        self.views.set_outline_visible(v.mask_outline, v.mask_opacity)
        self.comparison.set_crosshair_visible(v.show_crosshair, v.crosshair_gap)
        self.comparison.set_outline_visible(v.mask_outline, v.mask_opacity)
        for name, checked in (("radiological", v.radiological), ("link_zoom", v.link_zoom)):
            act = self.actions_[name]
            act.blockSignals(True)
            act.setCheckable(True)
            act.setChecked(checked)
            act.blockSignals(False)
        self.overlay_panel.refresh()
        if s.comparison_open:
            self.comparison_dock.raiseDock()

    def _on_panels(self) -> None:
        self.explain_panel.refresh()
        self.comparison.refresh_panels()
        if self.session.comparison_open:  # e.g. a restored session that was saved with the comparison shown
            self.comparison_dock.raiseDock()
        for i in range(len(self.session.panels)):
            self._on_display(i)
        self.overlay_panel.layers.refresh()

    def _on_display(self, i: int) -> None:
        s = self.session
        if i >= len(s.panels):
            return
        if i == 0:
            ov = s.display_overlay(0)
            limit = s.panel_limit(0) or 1.0
            lut = overlay_lut(ov.colormap, ov.opacity, ov.threshold, ov.sign)
            self.views.set_overlay_style(lut, limit, ov.visible)
            self.overlay_panel.set_limit(ov.colormap, limit, ov)
            self.overlay_panel.refresh_overlay()  # O, the layer list, ...: the tick box follows
            self.overlay_panel.layers.refresh()
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
            self._update_status()
            self.overlay_panel.layers.refresh()
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

    def _report_handler_error(self, where: str, exc: BaseException, first: bool) -> None:
        text = f"Part of the window ({where}) could not be updated: {type(exc).__name__}: {exc}"
        self.statusBar().showMessage(text, 15000)
        if first and not self._closed:
            show_error(self, "Display problem", text + ". Everything else shows the current state; "
                       "please report this with the log.")

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
