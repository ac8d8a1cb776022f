"""Session settings the user changes: methods, targets, devices, display, cursor.

Explanation settings (method, parameters, target, device, precision) re-submit the
affected panels; display settings (overlay, window, view, cursor) only notify.
Mixed into :class:`viewer.session.session.Session`.
"""

from __future__ import annotations

from typing import Any, Sequence

from viewer.session.cursor import Cursor
from viewer.session.display import DEFAULT_PRESET, OverlaySettings, WindowLevel, window_for_preset, window_presets
from viewer.session.panels import MAX_PANELS, PanelState, default_sign, with_method
from viewer.session.requests import DEVICES, PRECISIONS, available_devices, normalise_target


def _methods() -> dict[str, Any]:
    from viewer.explain.registry import METHODS

    return METHODS


def _presets() -> list[Any]:
    from viewer.explain.lrp import list_presets

    return list(list_presets())


class SettingsMixin:
    # -- methods and parameters ------------------------------------------------------------
    def available_methods(self) -> list[tuple[str, str, bool, str]]:
        """``(name, label, available, reason)`` for every registered method and the open model."""
        structured = getattr(self.model, "structured", True) if self.model is not None else True
        reason = getattr(self.model, "unavailable_reason", "") or "needs the model's layers"
        return [
            (m.name, m.label, structured or not m.needs_structure, "" if structured or not m.needs_structure else reason)
            for m in _methods().values()
        ]

    def method_params(self, method: str) -> tuple:
        """The method's ``ParamSpec`` s (for LRP: ``preset`` plus every preset's parameters)."""
        return _methods()[method].params

    def lrp_presets(self) -> list[Any]:
        return _presets()

    def default_params(self, method: str) -> dict[str, Any]:
        """Parameters a freshly chosen method starts with; LRP starts with the model's preset."""
        if method not in _methods():
            raise ValueError(f"Unknown method {method!r}; choose one of: {', '.join(_methods())}.")
        if method == "lrp":
            preset = getattr(self.model, "preset", None) if self.model is not None else None
            module = getattr(self.model, "module", None)
            if preset in (None, "epsilon-plus") and module is not None:
                # a card's default (or an explicit epsilon-plus) on a model with attention: AttnLRP
                from viewer.explain.lrp import recommended_preset

                preset = recommended_preset(module)
            return self._preset_defaults(preset or "epsilon-plus")
        layer = getattr(self.model, "gradcam_layer", None) if self.model is not None else None
        if method in ("gradcam", "gradcampp") and layer:
            return {"layer": layer}
        return {}

    def _preset_defaults(self, preset: str) -> dict[str, Any]:
        """``preset`` plus ZBox bounds from the model's input range when the preset has them."""
        params: dict[str, Any] = {"preset": preset}
        names = self._preset_param_names(preset) or set()
        bounds = getattr(self.model, "input_range", None) if self.model is not None else None
        if bounds is not None and {"low", "high"} <= names:
            params["low"], params["high"] = float(bounds[0]), float(bounds[1])
        return params

    def _check_method(self, method: str) -> None:
        info = _methods().get(method)
        if info is None:
            raise ValueError(f"Unknown method {method!r}; choose one of: {', '.join(_methods())}.")
        if info.needs_structure and self.model is not None and not getattr(self.model, "structured", True):
            raise ValueError(f"{info.label} is unavailable for this model: "
                             f"{getattr(self.model, 'unavailable_reason', '') or 'its layers are hidden'}.")

    def set_panel_method(self, i: int, method: str, **params: Any) -> None:
        """Switch panel ``i`` to ``method`` (parameters start from the defaults) and re-explain.

        For LRP with ``preset=`` the defaults are that preset's (ZBox bounds from the
        model's input range included), not the model's recommended preset's. The shown
        sign follows the method (Grad-CAM positive-only) unless the user changed it.
        """
        self._check_method(method)
        defaults = self.default_params(method)
        if method == "lrp" and params.get("preset"):
            defaults = self._preset_defaults(params["preset"])
        merged = {**defaults, **params}
        self._replace_panel(i, with_method(self._panel_states[i], method, merged))

    def set_panel_params(self, i: int, **params: Any) -> None:
        """Change some parameters of panel ``i`` (for LRP ``preset=`` too) and re-explain.

        Choosing another LRP preset drops parameters the new preset does not declare, so a
        γ left over from one preset never reaches a preset without γ, and fills in the ZBox
        bounds from the model's input range. ``None`` removes a parameter (back to the
        method's default).
        """
        panel = self._panel_states[i]
        merged = dict(panel.params)
        if panel.method == "lrp" and "preset" in params and params["preset"] != merged.get("preset"):
            allowed = self._preset_param_names(params["preset"])
            if allowed is not None:
                merged = {k: v for k, v in merged.items() if k in allowed}
            merged.update(self._preset_defaults(params["preset"]))
        for k, v in params.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        self._replace_panel(i, panel.with_(params=merged))

    def _preset_param_names(self, preset: str) -> set[str] | None:
        try:
            info = next((p for p in _presets() if p.name == preset), None)
        except Exception:  # noqa: BLE001 - the engine is optional until it exists
            return None
        if info is None:
            raise ValueError(f"Unknown LRP preset {preset!r}.")
        return {"preset", *(s.name for s in info.params)}

    def _replace_panel(self, i: int, state: PanelState) -> None:
        if state == self._panel_states[i]:
            return
        self._panel_states[i] = state
        self.panels_changed.emit()
        self._submit_panel(self._pid(i))

    def add_panel(self, method: str = "gradcam", **params: Any) -> int:
        """Add a comparison panel (at most four panels in all); returns its index."""
        if len(self._panel_states) >= MAX_PANELS:
            raise ValueError(f"At most {MAX_PANELS} panels can be compared; remove one first.")
        self._check_method(method)
        defaults = self.default_params(method)
        if method == "lrp" and params.get("preset"):
            defaults = self._preset_defaults(params["preset"])
        state = PanelState(method, {**defaults, **params}, OverlaySettings(sign=default_sign(method)))
        pid = next(self._panel_counter)
        with self._lock:
            self._panel_states.append(state)
            self._panel_ids.append(pid)
        self.panels_changed.emit()
        self._submit_panel(pid)
        return len(self._panel_ids) - 1

    def comparison_choice(self) -> tuple[str, dict[str, Any]] | None:
        """``(method, params)`` for the panel that opening the comparison adds beside panel 0:
        Grad-CAM beside LRP, LRP (the model's preset) beside anything else, so the two
        panels never show the same method. None when no other method is available."""
        main = self._panel_states[0]
        available = [name for name, _label, ok, _why in self.available_methods() if ok]
        preferred = ["gradcam", "lrp"] if main.method == "lrp" else ["lrp", "gradcam"]
        for method in [*preferred, "integrated_gradients", "saliency", *available]:
            if method in available and method != main.method:
                return method, self.default_params(method)
        return None

    def remove_panel(self, i: int) -> None:
        """Remove comparison panel ``i`` (the main panel 0 stays)."""
        if i == 0:
            raise ValueError("The main panel cannot be removed.")
        pid = self._pid(i)
        for kind in ("explain", "preview", "perturbation"):
            self._runner.drop((kind, pid))
        with self._lock:
            del self._panel_states[i]
            del self._panel_ids[i]
            for d in (self._results, self._requests, self._preview_requests, self._errors):
                d.pop(pid, None)
        self._forget_panel(pid)
        self.panels_changed.emit()
        self._schedule_metrics()

    def set_comparison_open(self, value: bool) -> None:
        self.comparison_open = bool(value)
        self.panels_changed.emit()

    # -- target, device, precision ---------------------------------------------------------
    def set_target(self, spec: Any) -> None:
        """None (predicted class), a class index, ``(a, b)`` contrast, a Target, or
        ``{"kind": "region", "index": c}`` (channel c inside the mask; segmentation only)."""
        target = normalise_target(spec)
        is_region = isinstance(target, tuple) and target[0] == "region"
        if isinstance(target, int):
            classes = [target]
        elif isinstance(target, tuple) and not is_region:
            classes = list(target)
        else:
            classes = []
        n = len(getattr(self.model, "labels", []) or []) if self.model is not None else 0
        for c in classes:
            if n and not 0 <= c < n:
                raise ValueError(f"Class {c} does not exist; the model has {n} classes.")
        if is_region and self.model is not None and getattr(self.model, "task", "classification") != "segmentation":
            raise ValueError("Region targets need a segmentation model.")
        if target == self.target:
            return
        self.target = target
        self.settings_changed.emit()
        self._resubmit_panels()

    def set_device(self, device: str) -> bool:
        """CPU or CUDA; choosing CUDA without a GPU reports an error and keeps the CPU."""
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}.")
        if device not in available_devices():
            self._report("CUDA unavailable", "No CUDA GPU is available to torch; explanations stay on the CPU.")
            return False
        if device != self.device:
            self.device = device
            self.settings_changed.emit()
            self.refresh()
        return True

    def set_precision(self, precision: str) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
        if precision != self.precision:
            self.precision = precision
            self.settings_changed.emit()
            self.refresh()

    def _resubmit_panels(self) -> None:
        for pid in list(self._panel_ids):
            self._submit_panel(pid)

    # -- display ---------------------------------------------------------------------------
    def set_overlay(self, i: int, **changes: Any) -> None:
        """Change how panel ``i`` is drawn (colormap, limits, opacity, ...); never re-explains."""
        panel = self._panel_states[i]
        overlay = panel.overlay.with_(**changes)
        if overlay != panel.overlay:
            self._panel_states[i] = panel.with_(overlay=overlay)
            self.display_changed.emit(i)

    def display_overlay(self, i: int) -> Any:
        """How panel ``i`` is drawn right now: its overlay settings, except that a Grad-CAM
        preview standing in for a slower method is shown with Grad-CAM's own default sign."""
        overlay = self._panel_states[i].overlay
        result = self.result(i)
        if (result is not None and result.preview and result.method != self._panel_states[i].method
                and overlay.sign == default_sign(self._panel_states[i].method)):
            overlay = overlay.with_(sign=default_sign(result.method))
        return overlay

    def window_presets(self) -> list[str]:
        return window_presets(getattr(self.scan, "modality", "")) if self.scan is not None else [DEFAULT_PRESET]

    def set_window(self, centre: float, width: float) -> None:
        self._set_window(WindowLevel(centre, width), "Custom")

    def set_window_preset(self, name: str) -> None:
        if self.scan is None:
            raise ValueError("Open a scan before choosing a window preset.")
        self._set_window(window_for_preset(name, self.scan), name)

    def reset_window(self) -> None:
        """Back to the file's window (or a robust percentile window when it has none)."""
        if self.scan is not None:
            self.set_window_preset(DEFAULT_PRESET)

    def _set_window(self, window: WindowLevel, preset: str) -> None:
        self.window_preset = preset
        if window != self.window:
            self.window = window
            self.window_changed.emit(window)

    def set_view(self, **changes: Any) -> None:
        """Radiological convention, layout, crosshair, mask outline."""
        view = self.view.with_(**changes)
        if view != self.view:
            self.view = view
            self.view_changed.emit(view)

    def set_views(self, views: dict[str, dict[str, Any]]) -> None:
        """Zoom/pan per slice view, kept only so a session file can restore them."""
        self.views = {str(k): dict(v) for k, v in views.items()}

    def set_cursor(self, ijk: Sequence[float]) -> None:
        """Move the crosshair (clamped to the scan); all panels follow."""
        if self.scan is None:
            return
        cursor = Cursor.clamped(ijk, self.scan.shape)
        if cursor != self.cursor:
            self.cursor = cursor
            self.cursor_changed.emit(cursor.ijk)

    def move_cursor(self, axis: int, delta: int) -> None:
        if self.scan is not None and self.cursor is not None:
            self.set_cursor(self.cursor.moved(axis, delta, self.scan.shape).ijk)
