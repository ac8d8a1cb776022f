"""Session files: the live session to a :class:`SessionState` and back.

Restoring is forgiving: a missing scan still restores the model, the panels and the
display settings, and every problem is collected into one list (also reported on the
``error`` signal) instead of stopping at the first.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from viewer.io.session_file import PanelSpec, SessionState, load_session, save_session
from viewer.session.display import OverlaySettings, ViewSettings
from viewer.session.panels import MAX_PANELS, PanelState
from viewer.session.requests import available_devices

WINDOW_PRESET_KEY = "window_preset"  # stored inside SessionState.view


def _target_to_state(target: Any) -> Any:
    if target is None or isinstance(target, int):
        return target
    if isinstance(target, tuple) and target[:1] == ("region",):
        return {"kind": "region", "index": int(target[1])}
    if isinstance(target, tuple):
        return (int(target[0]), int(target[1]))
    kind = getattr(target, "kind", None)  # a viewer.explain.Target
    if kind == "class":
        return int(target.index)
    if kind == "contrast":
        return (int(target.index), int(target.other))
    if kind == "region":  # an explicit region mask cannot go in the file; the channel in the mask can
        return {"kind": "region", "index": int(target.index)}
    return None


class StateMixin:
    def to_state(self) -> SessionState:
        """What a session file stores: paths and settings, never image data."""
        view = self.view.to_dict()
        view[WINDOW_PRESET_KEY] = self.window_preset
        return SessionState(
            scan_path=self.scan_path,
            series_uid=self.series_uid,
            model_path=self.model_path,
            mask_path=self.mask_path,
            panels=tuple(PanelSpec(p.method, dict(p.params), p.overlay.to_dict(), p.model) for p in self._panel_states),
            target=_target_to_state(self.target),
            device=self.device,
            precision=self.precision,
            window=None if self.window is None else (self.window.centre, self.window.width),
            view=view,
            cursor=None if self.cursor is None else tuple(self.cursor.ijk),
            views={k: dict(v) for k, v in self.views.items()},
            comparison_open=self.comparison_open,
            compare_model_path=self.compare_model_path,
        )

    def save_session(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the session file (atomically); ExportError when it exists and overwrite is False."""
        out = save_session(self.to_state(), path, overwrite=overwrite)
        self.recent.add(out, "session")
        return out

    def open_session(self, path: str | os.PathLike, trust: bool = False) -> list[str]:
        """Read and restore a session file; returns the problems (also reported on ``error``).

        A model the session names is opened like File → Open model: one that would run
        code needs ``trust`` or a yes from :attr:`trust_prompt`; a session file never
        carries trust itself.
        """
        from viewer.io.errors import SessionFileError

        try:
            state = load_session(path)
        except SessionFileError as exc:
            self._report("Cannot open session", str(exc))
            return [str(exc)]
        problems = self.restore(state, trust=trust)
        self.recent.add(path, "session")
        return problems

    def restore(self, state: SessionState, trust: bool = False) -> list[str]:
        """Apply ``state``; whatever cannot be restored is listed and reported, the rest applies."""
        problems: list[str] = []
        self._collector = (threading.current_thread(), problems)
        try:
            with self.batch():
                self._restore_files(state, problems, trust)
                self._restore_settings(state, problems)
                self._collector = None  # errors of the explanations that follow are reported as usual
        finally:
            self._collector = None
        if problems:
            self._report("Session restored with problems", "\n".join(problems))
        return problems

    def _restore_files(self, state: SessionState, problems: list[str], trust: bool = False) -> None:
        if state.scan_path is not None:
            if not Path(state.scan_path).exists():
                problems.append(f"Scan not found: {state.scan_path}; the other settings were restored.")
            else:
                self.open_scan(state.scan_path, series=state.series_uid)
        if state.model_path is not None:
            if not Path(state.model_path).exists():
                problems.append(f"Model not found: {state.model_path}")
            else:
                self.open_model(state.model_path, trust=trust)
        if state.compare_model_path is None:
            self.clear_compare_model()  # the file's panels explain its models only
        elif not Path(state.compare_model_path).exists():
            problems.append(f"Model B not found: {state.compare_model_path}; its panels explain model A.")
            self.clear_compare_model()
        else:
            self.open_compare_model(state.compare_model_path, trust=trust)
        if state.mask_path is not None:
            if not Path(state.mask_path).exists():
                problems.append(f"Mask not found: {state.mask_path}")
            elif self.scan is not None:
                self.open_mask(state.mask_path)
            else:
                problems.append(f"Mask {state.mask_path} not opened: it needs the scan.")

    def _restore_settings(self, state: SessionState, problems: list[str]) -> None:
        panels: list[PanelState] = []
        for spec in state.panels[:MAX_PANELS]:
            try:
                self._check_method(spec.method)
                overlay = OverlaySettings.from_dict(spec.overlay)
            except (ValueError, TypeError) as exc:
                problems.append(f"Panel {spec.method!r} not restored: {exc}")
                continue
            model = getattr(spec, "model", "A")
            if model == "B" and self.compare_model is None:
                model = "A"
                if state.compare_model_path is not None and Path(state.compare_model_path).exists():
                    problems.append(f"Panel {spec.method!r} explains model A: model B did not open.")
            panels.append(PanelState(spec.method, dict(spec.params), overlay, model))
        if panels:
            self._replace_all_panels(panels)
        try:
            self.set_target(state.target)
        except (ValueError, TypeError) as exc:
            problems.append(f"Target not restored: {exc}")
        if state.device in available_devices():
            self.device = state.device
        else:
            problems.append(f"Device {state.device!r} is not available here; using the CPU.")
            self.device = "cpu"
        try:
            self.set_precision(state.precision)
        except ValueError as exc:
            problems.append(str(exc))
        view = dict(state.view)
        preset = view.pop(WINDOW_PRESET_KEY, None)
        try:
            self.set_view(**{k: v for k, v in ViewSettings.from_dict(view).to_dict().items()})
        except (ValueError, TypeError) as exc:
            problems.append(f"View settings not restored: {exc}")
        if self.scan is not None:
            if state.window is not None:
                try:
                    self.set_window(*state.window)
                except ValueError as exc:
                    problems.append(f"Window not restored: {exc}")
            if preset and preset != "Custom":
                try:
                    self.set_window_preset(preset)
                except ValueError as exc:
                    problems.append(f"Window preset not restored: {exc}")
            elif preset == "Custom":
                self.window_preset = "Custom"
            if state.cursor is not None:
                self.set_cursor(state.cursor)
        self.set_views(dict(state.views))
        self.comparison_open = bool(state.comparison_open)
        self.settings_changed.emit()
        self.panels_changed.emit()

    def _replace_all_panels(self, panels: list[PanelState]) -> None:
        for pid in self._panel_ids:
            for kind in ("explain", "preview", "perturbation"):
                self._runner.drop((kind, pid))
            self._forget_panel(pid)
        with self._lock:
            self._panel_states = list(panels)
            self._panel_ids = [next(self._panel_counter) for _ in panels]
            self._results.clear()
            self._requests.clear()
            self._preview_requests.clear()
        self._resubmit_panels()
