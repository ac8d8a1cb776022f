"""The "Display" panel: the layer list, overlay colours and limits, window/level presets,
view conventions.

Nothing here triggers a new explanation: these are display settings the session stores
per panel (overlay) or globally (window, view), and the views redraw from them. Every
control is refreshed from the session when the setting changes elsewhere (the O key, a
right-drag on a view), so a tick box or preset name never contradicts the picture.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6 import QtWidgets
from pyqtgraph.parametertree import Parameter

from viewer.io import colormaps
from viewer.ui.colorbar import ColorBar, limit_title
from viewer.ui.layer_list import LayerList
from viewer.ui.param_specs import parameter_tree
from viewer.ui.value_slider import register as register_value_slider

_OVERLAY_KEYS = ("visible", "colormap", "limit_mode", "percentile", "fixed_limit", "opacity", "threshold", "sign")
_VIEW_KEYS = ("radiological", "layout", "show_crosshair", "crosshair_gap", "link_zoom", "mask_outline")
CUSTOM = "Custom"


class OverlayPanel(QtWidgets.QWidget):
    """Display settings of the main view, with the overlay's colour bar beside them."""

    def __init__(self, session: Any, parent: QtWidgets.QWidget | None = None,
                 open_map: Callable[[], Any] | None = None, open_window_dialog: Callable[[], Any] | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.panel = 0
        self._updating = False
        register_value_slider()
        self.root = Parameter.create(name="display", type="group", children=[
            {"name": "overlay", "title": "Relevance overlay", "type": "group", "children": [
                {"name": "visible", "title": "Show overlay (O)", "type": "bool", "value": True},
                {"name": "colormap", "title": "Colour map", "type": "list", "limits": list(colormaps.NAMES),
                 "value": colormaps.DEFAULT},
                {"name": "limit_mode", "title": "Limits", "type": "list", "limits": ["percentile", "fixed"],
                 "value": "percentile"},
                {"name": "percentile", "title": "Percentile of |R|", "type": "float", "value": 99.5,
                 "limits": (50.0, 100.0), "step": 0.1, "decimals": 4},
                {"name": "fixed_limit", "title": "Fixed limit", "type": "float", "value": 1.0,
                 "limits": (1e-12, None), "dec": True, "step": 0.5, "minStep": 1e-12, "decimals": 4},
                {"name": "opacity", "title": "Opacity", "type": "spinslider", "value": 0.6, "limits": (0.0, 1.0),
                 "step": 0.05},
                {"name": "threshold", "title": "Hide |R| below", "type": "spinslider", "value": 0.0,
                 "limits": (0.0, 0.99), "step": 0.05, "tip": "fraction of the colour limit"},
                {"name": "sign", "title": "Show", "type": "list",
                 "limits": {"both signs": "both", "positive only": "positive",
                            "negative only": "negative"}, "value": "both"},
            ]},
            {"name": "window", "title": "Window / level", "type": "group", "children": [
                {"name": "preset", "title": "Preset", "type": "list", "limits": ["Default"], "value": "Default"},
                {"name": "centre", "title": "Level (centre)", "type": "float", "value": 0.0, "decimals": 5},
                {"name": "width", "title": "Width", "type": "float", "value": 1.0, "limits": (1e-6, None),
                 "dec": True, "decimals": 5},
                {"name": "histogram", "title": "Histogram…", "type": "action"},
                {"name": "reset", "title": "Reset window", "type": "action"},
            ]},
            {"name": "view", "title": "Views", "type": "group", "children": [
                {"name": "radiological", "title": "Radiological (R on left)", "type": "bool", "value": True},
                {"name": "layout", "title": "Layout", "type": "list",
                 "limits": {"2 × 2 grid": "grid", "one large": "one-large", "row": "row"}, "value": "grid"},
                {"name": "show_crosshair", "title": "Crosshair", "type": "bool", "value": True},
                {"name": "crosshair_gap", "title": "Gap at the crosshair's centre", "type": "bool", "value": True},
                {"name": "link_zoom", "title": "Link zoom across views", "type": "bool", "value": False},
                {"name": "mask_outline", "title": "Mask outline", "type": "bool", "value": True},
            ]},
        ])
        self.tree = parameter_tree(self.root)
        self.tree.header().setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Interactive)
        self.tree.setColumnWidth(0, 150)
        self.root.sigTreeStateChanged.connect(self._on_tree)
        self.root.child("window", "reset").sigActivated.connect(lambda: self.session.reset_window())
        if open_window_dialog is not None:
            self.root.child("window", "histogram").sigActivated.connect(lambda: open_window_dialog())
        else:
            self.root.child("window", "histogram").hide()
        self.colorbar = ColorBar("vertical")
        self.layers = LayerList(session, open_map or (lambda: None))
        if open_map is None:
            self.layers.add_button.hide()
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.tree, 1)
        row.addWidget(self.colorbar)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.layers)
        lay.addLayout(row, 1)

    def refresh(self) -> None:
        s = self.session
        self._updating = True
        try:
            self.refresh_overlay()
            self.refresh_window()
            view = s.view
            for key in _VIEW_KEYS:
                self.root.child("view", key).setValue(getattr(view, key))
        finally:
            self._updating = False
        self.layers.refresh()

    def refresh_overlay(self) -> None:
        """Show panel 0's overlay settings (after O, the layer list, a restored session, ...)."""
        panels = self.session.panels
        if not panels:
            return
        was, self._updating = self._updating, True
        try:
            ov = panels[self.panel].overlay
            group = self.root.child("overlay")
            for key in _OVERLAY_KEYS:
                group.child(key).setValue(getattr(ov, key))
            group.child("percentile").show(ov.limit_mode == "percentile")
            group.child("fixed_limit").show(ov.limit_mode == "fixed")
        finally:
            self._updating = was

    def refresh_window(self) -> None:
        s = self.session
        was, self._updating = self._updating, True
        try:
            group = self.root.child("window")
            if s.scan is not None:
                # a window set by hand (right-drag, typed numbers) is "Custom", never a preset's name
                names = list(s.window_presets()) + ([CUSTOM] if s.window_preset == CUSTOM else [])
                group.child("preset").setLimits(names)
                group.child("preset").setValue(s.window_preset)
            if s.window is not None:
                group.child("centre").setValue(s.window.centre)
                group.child("width").setValue(s.window.width)
        finally:
            self._updating = was

    def set_limit(self, name: str, limit: float, overlay: Any = None) -> None:
        self.colorbar.set_map(name, limit, limit_title(overlay, limit) if overlay is not None else "relevance")

    def _on_tree(self, _root: Parameter, changes: list) -> None:
        if self._updating:
            return
        s = self.session
        overlay: dict[str, Any] = {}
        view: dict[str, Any] = {}
        for param, change, data in changes:
            if change != "value":
                continue
            group = param.parent().name() if param.parent() is not None else ""
            name = param.name()
            if group == "overlay":
                overlay[name] = data
            elif group == "view":
                view[name] = data
            elif group == "window":
                if name == "preset":
                    if data != CUSTOM:
                        s.set_window_preset(data)
                elif name in ("centre", "width") and s.window is not None:
                    w = self.root.child("window")
                    s.set_window(w.child("centre").value(), w.child("width").value())
        if overlay:
            try:
                s.set_overlay(self.panel, **overlay)
            except ValueError:
                self.refresh()
            if "limit_mode" in overlay:
                self.refresh()
        if view:
            s.set_view(**view)
