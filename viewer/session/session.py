"""The application state the UI drives: scan, model, mask, panels, display, jobs.

Every method here is meant to be called from the GUI thread and returns quickly:
opening files is plain I/O, and everything that runs the model (prediction,
explanations, metrics) is handed to the single :class:`JobRunner` worker. Results come
back through :class:`Signal` s, possibly on the worker thread; the UI re-emits them as
queued Qt signals and reads the state here.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from typing import Any, Callable, Iterator

import numpy as np

from viewer.session import compute, scan_info
from viewer.session.cursor import Cursor
from viewer.session.display import DEFAULT_PRESET, ViewSettings, WindowLevel
from viewer.session.failures import FailuresMixin
from viewer.session.graph import GraphMixin
from viewer.session.graph_changes import GraphChangesMixin
from viewer.session.histogram import Histogram, intensity_histogram
from viewer.session.layers import LayersMixin
from viewer.session.comparison import ComparisonMixin
from viewer.session.compare_model import CompareModelMixin
from viewer.session.jobs import JobRunner
from viewer.session.opening import OpeningMixin
from viewer.session.panels import PanelState
from viewer.session.profile import RelevanceProfile, relevance_profile
from viewer.session.recent import RecentFiles
from viewer.session.requests import ExplainRequest, PredictRequest
from viewer.session.results import PanelResult, Prediction
from viewer.session.settings import SettingsMixin
from viewer.session.signals import Signal
from viewer.session.state import StateMixin

log = logging.getLogger(__name__)

SIGNAL_NAMES = (
    "scan_changed", "model_changed", "mask_changed", "cursor_changed", "window_changed", "view_changed",
    "panels_changed", "display_changed", "settings_changed", "prediction_changed", "result_ready", "progress",
    "busy", "metrics_changed", "perturbation_ready", "error", "recent_files_changed", "layers_changed",
)


class Session(GraphChangesMixin, CompareModelMixin, GraphMixin, OpeningMixin, SettingsMixin, ComparisonMixin,
              StateMixin, FailuresMixin, LayersMixin):
    """Headless state of one viewer window (see /work/notes/SESSION_API.md).

    Parameters
    ----------
    explain_fn
        ``explain(module, x, method=, target=, progress=, **params) -> Relevance``;
        defaults to :func:`viewer.explain.explain`. Tests inject counting fakes.
    recent
        The recent-files list (default: the user's, in :func:`viewer.session.recent.config_dir`).
    preview
        Show Grad-CAM first while LRP is computed (for models whose layers are visible).
    """

    def __init__(
        self,
        explain_fn: Callable[..., Any] | None = None,
        recent: RecentFiles | None = None,
        preview: bool = True,
        cache_entries: int = 16,
    ) -> None:
        for name in SIGNAL_NAMES:
            setattr(self, name, Signal(name))
        self._explain_fn = explain_fn
        self.preview_enabled = preview
        self._lock = threading.RLock()
        self._runner = JobRunner(
            **self._graph_routes(on_progress=self._on_progress, on_result=self._on_result,
                                 on_error=self._on_error, on_cancelled=self._on_cancelled),
            cache_entries=cache_entries,
        )
        self.recent = recent if recent is not None else RecentFiles()
        self.recent.changed.connect(self._recent_changed)
        self._tokens = itertools.count(1)
        self._closed = False
        # opened things
        self.scan: Any = None
        self.scan_path: str | None = None
        self.series_uid: str | None = None
        self.model: Any = None
        self.model_path: str | None = None
        self.mask: np.ndarray | None = None
        self.mask_path: str | None = None
        self._scan_token = self._model_token = ""
        self._mask_token: str | None = None
        self._ctx: compute.ModelContext | None = None
        # settings
        self.cursor: Cursor | None = None
        self.window: WindowLevel | None = None
        self.window_preset: str = DEFAULT_PRESET
        self.view = ViewSettings()
        self.views: dict[str, dict[str, Any]] = {}
        self.comparison_open = False
        self.target: Any = None
        self.device = "cpu"
        self.precision = "float32"
        self._panel_states: list[PanelState] = [PanelState("lrp", {"preset": "epsilon-plus"})]
        self._panel_ids: list[int] = [0]
        self._panel_counter = itertools.count(1)
        # results (written from the worker thread, under the lock)
        self._requests: dict[int, ExplainRequest] = {}
        self._preview_requests: dict[int, ExplainRequest] = {}
        self._results: dict[int, PanelResult] = {}
        self._predict_request: PredictRequest | None = None
        self.prediction: Prediction | None = None
        self._defer = 0
        self._dirty = False
        self._collector: tuple[threading.Thread, list[str]] | None = None
        self._histogram: tuple[str, Histogram] | None = None
        self._init_comparison()
        self._init_compare_model()
        self._init_failures()
        self._init_layers()
        self._init_graph()
        self._init_graph_changes()

    # -- panels -------------------------------------------------------------------------
    @property
    def panels(self) -> list[PanelState]:
        return list(self._panel_states)

    def panel(self, i: int) -> PanelState:
        return self._panel_states[i]

    def _pid(self, i: int) -> int:
        if not 0 <= i < len(self._panel_ids):
            raise IndexError(f"There is no panel {i}; the session has {len(self._panel_ids)}.")
        return self._panel_ids[i]

    def _index(self, pid: int) -> int | None:
        with self._lock:
            try:
                return self._panel_ids.index(pid)
            except ValueError:
                return None

    def result(self, i: int) -> PanelResult | None:
        """The panel's current result (a Grad-CAM preview until LRP arrives), or None."""
        with self._lock:
            return self._results.get(self._pid(i))

    def is_busy(self, i: int) -> bool:
        pid = self._pid(i)
        return self._runner.is_busy(("explain", pid)) or self._runner.is_busy(("preview", pid))

    def panel_limit(self, i: int) -> float | None:
        """Symmetric colour limit of panel ``i`` from its on-scan map and overlay settings."""
        result = self.result(i)
        return None if result is None else result.limit(self._panel_states[i].overlay)

    def profile(self, i: int, axis: int = 2) -> RelevanceProfile | None:
        result = self.result(i)
        return None if result is None else relevance_profile(result.on_scan, axis)

    @property
    def scan_token(self) -> str:
        """Changes whenever another scan is opened (also the same file again): an identity
        the UI can keep per scan without holding the scan."""
        return self._scan_token

    # -- about the scan (for the notes bar, the scan-info and window dialogs) ----------------
    def scan_notes(self) -> list[str]:
        """The loader's notes about the open scan (inferred geometry, resampling, ...)."""
        return [] if self.scan is None else scan_info.notes(self.scan)

    def scan_description(self) -> list[tuple[str, str]]:
        """``(label, value)`` rows about the open scan; never patient fields."""
        return [] if self.scan is None else scan_info.scan_rows(self.scan, self.scan_path)

    def scan_histogram(self) -> Histogram | None:
        """Intensity histogram of the open scan (computed once per scan)."""
        if self.scan is None:
            return None
        token = self._scan_token
        if self._histogram is None or self._histogram[0] != token:
            self._histogram = (token, intensity_histogram(self.scan.data))
        return self._histogram[1]

    # -- scheduling ---------------------------------------------------------------------
    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Apply several changes, then re-explain once (opening a demo, restoring a session)."""
        self._defer += 1
        try:
            yield
        finally:
            self._defer -= 1
            if self._defer == 0 and self._dirty:
                self._dirty = False
                self.refresh()

    def refresh(self) -> None:
        """Re-submit the prediction and every panel (cheap when results are cached)."""
        if self._defer:
            self._dirty = True
            return
        self._submit_predict()
        self._submit_compare_predict()
        for pid in list(self._panel_ids):
            self._submit_panel(pid)

    def _rebuild_context(self) -> None:
        old, self._ctx = self._ctx, None
        self._runner.cancel_all()
        self._runner.clear_cache()
        if old is not None:
            self._runner.submit("release", None, lambda _p, ctx=old: ctx.release(), cache=False)
        with self._lock:
            self._results.clear()
            self._requests.clear()
            self._preview_requests.clear()
            self.prediction = None
            self._predict_request = None
        self._forget_failures()
        self._clear_metrics()
        if self.scan is not None and self.model is not None:
            self._ctx = compute.ModelContext(self.scan, self.model, self._scan_token, self._model_token)
        self._rebuild_compare_context()
        self.prediction_changed.emit()

    def _new_token(self, kind: str) -> str:
        return f"{kind}-{next(self._tokens)}"

    def _submit_predict(self) -> None:
        ctx = self._ctx
        if ctx is None or self._closed:
            return
        req = PredictRequest(ctx.scan_token, ctx.model_token, self.device, self.precision)
        with self._lock:
            if req == self._predict_request and (self.prediction is not None or self._runner.is_busy("predict")):
                return
            self._predict_request = req
            self.prediction = None
            self.prediction_error = None
        self._runner.submit("predict", ("predict", req), lambda _p: compute.predict(ctx, req))

    def _request_for(self, pid: int) -> ExplainRequest | None:
        ctx = self._panel_context(pid)[0]  # model A's, or B's for a panel on model B
        if ctx is None:
            return None
        panel = self._panel_states[self._panel_ids.index(pid)]
        return ExplainRequest.make(
            ctx.scan_token, ctx.model_token, panel.method, panel.params, self.target,
            self.device, self.precision, self._mask_token,
        )

    def _submit_panel(self, pid: int) -> None:
        if self._closed:
            return
        if self._defer:
            self._dirty = True
            return
        (ctx, model), req = self._panel_context(pid), self._request_for(pid)
        if ctx is None or req is None:
            return
        slot = ("explain", pid)
        with self._lock:
            same = req == self._requests.get(pid)
            current = self._results.get(pid)
            if same and ((current is not None and not current.preview) or self._runner.is_busy(slot)):
                return
            self._requests[pid] = req
            self._results.pop(pid, None)
            self._errors.pop(pid, None)
        fn, mask = self._explain, self.mask
        key = ("explain", req)
        structured = getattr(model, "structured", True)
        if (self.preview_enabled and req.method == "lrp" and structured
                and self._runner.cached(key) is None):
            layer = getattr(model, "gradcam_layer", None)
            preq = req.with_(method="gradcam", params={"layer": layer} if layer else {})
            with self._lock:
                self._preview_requests[pid] = preq
            self._runner.submit(("preview", pid), ("preview", preq),
                                lambda p: compute.explain(ctx, preq, fn(), p, mask, preview=True))
        else:
            self._runner.drop(("preview", pid))
        if self._runner.cached(key) is None:  # before submitting: the worker may finish first
            self._emit_index(self.busy, pid, True)
        self._runner.submit(slot, key, lambda p: compute.explain(ctx, req, fn(), p, mask))
        self._graph_follow(pid)

    def _explain(self) -> Callable[..., Any]:
        if self._explain_fn is None:
            from viewer.explain import explain

            self._explain_fn = explain
        return self._with_graph_methods(self._explain_fn)

    # -- worker callbacks (worker thread, or caller thread for cached results) ----------------
    def _on_result(self, slot: Any, key: Any, result: Any) -> None:
        if slot == "predict":
            with self._lock:
                if key[1] != self._predict_request:
                    return
                self.prediction = result
            self.prediction_changed.emit()
            return
        if not isinstance(slot, tuple):
            return
        kind, pid = slot
        if kind in ("explain", "preview"):
            with self._lock:
                if kind == "explain":
                    if key[1] != self._requests.get(pid):
                        return
                else:
                    if key[1] != self._preview_requests.get(pid):
                        return
                    current = self._results.get(pid)
                    if current is not None and not current.preview:
                        return
                self._results[pid] = result
            self._emit_index(self.result_ready, pid)
            if kind == "explain":
                self._emit_index(self.busy, pid, False)
                self._schedule_metrics()
        else:
            self._comparison_result(slot, key, result)

    def _on_cancelled(self, slot: Any, key: Any) -> None:
        if isinstance(slot, tuple) and slot[0] in ("explain", "perturbation"):
            self._emit_index(self.busy, slot[1], False)

    def _on_progress(self, slot: Any, key: Any, fraction: float) -> None:
        if isinstance(slot, tuple) and slot[0] in ("explain", "perturbation"):
            self._emit_index(self.progress, slot[1], fraction)

    def _emit_index(self, signal: Signal, pid: int, *args: Any) -> None:
        index = self._index(pid)
        if index is not None:
            signal.emit(index, *args)

    def _recent_changed(self) -> None:
        self.recent_files_changed.emit()

    # -- control ------------------------------------------------------------------------
    def cancel(self, i: int) -> None:
        """Stop panel ``i``'s running explanation (its result stays empty until a change)."""
        pid = self._pid(i)
        self._runner.cancel(("preview", pid))
        if not self._runner.cancel(("explain", pid)):
            return
        with self._lock:
            self._requests.pop(pid, None)

    def cancel_all(self) -> None:
        for i in range(len(self._panel_ids)):
            self.cancel(i)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the worker has nothing left to do (tests, batch scripts)."""
        return self._runner.wait_idle(timeout)

    @property
    def runner(self) -> JobRunner:
        return self._runner

    def close(self) -> None:
        """Stop the worker thread and drop models and results; the session is unusable afterwards."""
        if self._closed:
            return
        self._closed = True
        self._runner.shutdown()
        if self._ctx is not None:
            self._ctx.release()
        self._ctx = None
        self._close_compare()
        with self._lock:
            self._results.clear()
        self.recent.changed.disconnect(self._recent_changed)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
