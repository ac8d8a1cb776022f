"""A second model ("B") for the same scan, so comparison panels can explain either model.

A researcher who revised a model (``lrp-viewer revise``) wants the shortcut model and its
revision explained side by side with the same methods and metrics. Model B is opened
through the same trust decision as the main model ("A"), gets its own
:class:`~viewer.session.compute.ModelContext` on the open scan and its own prediction,
and each panel says which model it explains (:attr:`PanelState.model`). B's model token
is in the panel's :class:`~viewer.session.requests.ExplainRequest`, so a cached map of A
is never shown for B; switching a panel back and forth is a cache hit.

B stays open when another scan is opened; when it cannot take that scan its jobs fail
with the loader's message, named as model B's, exactly as the main model's do.
Mixed into :class:`viewer.session.session.Session` ahead of the comparison mixin.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from viewer.session import compute
from viewer.session.failures import failure_title
from viewer.session.panels import MAX_PANELS, MODELS, PanelState
from viewer.session.requests import PredictRequest
from viewer.session.signals import Signal

PREDICT_B_SLOT = ("predict_b", None)


class CompareContext(compute.ModelContext):
    """Model B's context: a model that cannot take the scan says that it is model B."""

    def __init__(self, scan: Any, model: Any, scan_token: str, model_token: str, label: str) -> None:
        super().__init__(scan, model, scan_token, model_token)
        self.label = label

    def prepared(self) -> Any:
        from viewer.models.errors import ModelLoadError

        try:
            return super().prepared()
        except ModelLoadError as exc:
            raise ModelLoadError(f"Model B ({self.label}): {exc}") from exc


def model_label(model: Any, path: str | None) -> str:
    """A short name for panel titles: the model file's name without suffix, else the card's name."""
    if path:
        name = Path(path).name
        return name[: -len(Path(name).suffix)] if Path(name).suffix else name
    return str(getattr(model, "name", "") or "model")


class CompareModelMixin:
    """Signal: ``compare_changed(part)``, part "model" (B opened or closed) or "prediction"."""

    def _init_compare_model(self) -> None:
        self.compare_changed = Signal("compare_changed")
        self.compare_model: Any = None
        self.compare_model_path: str | None = None
        self._compare_token = ""
        self._compare_ctx: CompareContext | None = None
        self._compare_predict_request: PredictRequest | None = None
        self.compare_prediction: Any = None
        self.compare_prediction_error: str | None = None

    # -- opening and closing ------------------------------------------------------------
    def open_compare_model(self, path: str | os.PathLike, trust: bool = False) -> bool:
        """Open model B from a file (card, bundle, TorchScript, ...); True on success.

        A model that would run code needs ``trust`` or a yes from :attr:`trust_prompt`,
        as for the main model. Model B must name as many classes as model A, so a class
        target means the same class for both.
        """
        model = self._load_model_file(path, trust, what="model B")
        if model is None:
            return False
        return self.set_compare_model(model, path=str(Path(path).absolute()))

    def set_compare_model(self, model: Any, path: str | None = None) -> bool:
        """Use a loaded model as B (tests, notebooks); False (reported) when its classes differ from A's."""
        a = list(getattr(self.model, "labels", []) or []) if self.model is not None else []
        b = list(getattr(model, "labels", []) or [])
        if a and b and len(a) != len(b):
            self._report("Cannot compare these models",
                         f"Model B has {len(b)} classes ({', '.join(b)}) but model A has {len(a)} "
                         f"({', '.join(a)}); a comparison explains the same class with both models. "
                         "Open a model B made for the same classes.")
            return False
        with self._lock:
            self.compare_model, self.compare_model_path = model, path
            self._compare_token = self._new_token("model")
        self._rebuild_compare_context()
        self.compare_changed.emit("model")
        self.panels_changed.emit()
        self._submit_compare_predict()
        self._resubmit_panels()  # panels on B explain the new B
        return True

    def clear_compare_model(self) -> None:
        """Close model B; panels that explained it explain model A again."""
        if self.compare_model is None:
            return
        with self._lock:
            self.compare_model, self.compare_model_path = None, None
            token, self._compare_token = self._compare_token, ""
        self._runner.forget(lambda key: _names_model(key, token))
        self._rebuild_compare_context()
        for i, panel in enumerate(self._panel_states):
            if panel.model == "B":
                self._panel_states[i] = panel.with_(model="A")
        self.compare_changed.emit("model")
        self.panels_changed.emit()
        self._resubmit_panels()

    @property
    def compare_token(self) -> str:
        """Model B's token ("" without B): the model_token of B's requests."""
        return self._compare_token

    def model_label(self, which: str = "A") -> str:
        """Short name of model ``which`` for titles ("" when it is not open)."""
        model, path = (self.compare_model, self.compare_model_path) if which == "B" else (self.model, self.model_path)
        return "" if model is None else model_label(model, path)

    # -- panels ---------------------------------------------------------------------------
    def set_panel_model(self, i: int, which: str) -> None:
        """Explain panel ``i`` with model ``which`` ("A" or "B") and re-explain (cached when seen before)."""
        if which not in MODELS:
            raise ValueError(f"Choose model \"A\" or \"B\", not {which!r}.")
        if which == "B" and self.compare_model is None:
            raise ValueError("There is no model B; open one first (File → Compare with model…).")
        panel = self._panel_states[i]
        if which == "B" and not getattr(self.compare_model, "structured", True):
            from viewer.explain.registry import METHODS

            info = METHODS.get(panel.method)
            if info is None or info.needs_structure:
                raise ValueError(f"Model B hides its layers "
                                 f"({getattr(self.compare_model, 'unavailable_reason', '') or 'TorchScript'}); "
                                 f"choose a method that needs none (e.g. saliency) for this panel first.")
        self._replace_panel(i, panel.with_(model=which))

    def add_compare_panel(self) -> int:
        """A panel with the main panel's method and parameters on model B (when none shows B
        yet), so both models are explained the same way; returns the index of a B panel."""
        for i, panel in enumerate(self._panel_states):
            if panel.model == "B":
                return i
        main = self._panel_states[0]
        with self.batch():
            if len(self._panel_states) < MAX_PANELS:
                index = self.add_panel(main.method, **dict(main.params))
            else:  # no room for another panel: the last one explains B
                index = len(self._panel_states) - 1
            self.set_panel_model(index, "B")
        return index

    def _panel_context(self, pid: int) -> tuple[compute.ModelContext | None, Any]:
        """``(context, model)`` that panel ``pid`` explains with (None without that model or scan)."""
        panel: PanelState = self._panel_states[self._panel_ids.index(pid)]
        if panel.model == "B":
            return self._compare_ctx, self.compare_model
        return self._ctx, self.model

    # -- context and prediction ----------------------------------------------------------------
    def _rebuild_compare_context(self) -> None:
        """A new scan or model B: B's context pairs them (called from ``_rebuild_context`` too)."""
        old, self._compare_ctx = self._compare_ctx, None
        if old is not None:
            self._runner.submit("release_b", None, lambda _p, ctx=old: ctx.release(), cache=False)
        self._runner.drop(PREDICT_B_SLOT)
        with self._lock:
            self.compare_prediction, self.compare_prediction_error = None, None
            self._compare_predict_request = None
        if self.scan is not None and self.compare_model is not None:
            self._compare_ctx = CompareContext(self.scan, self.compare_model, self._scan_token, self._compare_token,
                                               self.model_label("B"))
        self.compare_changed.emit("prediction")

    def _submit_compare_predict(self) -> None:
        ctx = self._compare_ctx
        if ctx is None or self._closed or self._defer:
            return
        req = PredictRequest(ctx.scan_token, ctx.model_token, self.device, self.precision)
        with self._lock:
            if req == self._compare_predict_request and (
                    self.compare_prediction is not None or self._runner.is_busy(PREDICT_B_SLOT)):
                return
            self._compare_predict_request = req
            self.compare_prediction, self.compare_prediction_error = None, None
        self._runner.submit(PREDICT_B_SLOT, ("predict", req), lambda _p: compute.predict(ctx, req))

    def _close_compare(self) -> None:
        if self._compare_ctx is not None:
            self._compare_ctx.release()
        self._compare_ctx = None

    # -- worker callbacks (ahead of the comparison and failures mixins') -------------------------------
    def _comparison_result(self, slot: Any, key: Any, result: Any) -> None:
        if slot != PREDICT_B_SLOT:
            super()._comparison_result(slot, key, result)  # type: ignore[misc]
            return
        with self._lock:
            if key[1] != self._compare_predict_request:
                return
            self.compare_prediction = result
        self.compare_changed.emit("prediction")

    def _on_error(self, slot: Any, key: Any, exc: BaseException) -> None:
        if slot != PREDICT_B_SLOT:
            super()._on_error(slot, key, exc)  # type: ignore[misc]
            return
        message = str(exc) or type(exc).__name__
        with self._lock:
            if key[1] != self._compare_predict_request:
                return
            self.compare_prediction_error = message
            self._compare_predict_request = None  # a later identical request may try again
        self.compare_changed.emit("prediction")
        self._report_once(failure_title(exc, "Prediction of model B failed"), message)


def _names_model(key: Any, token: str) -> bool:
    """Whether a cache key holds a request of the model with ``token``."""
    request = key[1] if isinstance(key, tuple) and len(key) >= 2 else None
    return bool(token) and getattr(request, "model_token", None) == token
