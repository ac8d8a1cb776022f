"""Metrics beside the comparison panels, computed on the worker.

Per panel (when a mask is loaded): relevance mass accuracy and the pointing game of
its on-scan map against the mask. Between panels: Spearman rank correlation of their
on-scan maps. On request, per panel: a region-perturbation curve (many forward passes,
with progress and cancel). Mixed into :class:`viewer.session.session.Session`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.session.results import PanelResult

METRICS_SLOT = ("metrics", None)


@dataclass(frozen=True)
class PanelMetrics:
    """Localisation of one panel's map against the mask (None without a mask or result)."""

    method: str
    mass_accuracy: float | None = None
    pointing_game: bool | None = None


@dataclass(frozen=True)
class MetricsReport:
    """``per_panel[i]`` for panel i; ``correlations[(i, j)]`` (i < j) Spearman's rho, NaN
    when a map is constant."""

    per_panel: tuple[PanelMetrics | None, ...]
    correlations: dict[tuple[int, int], float] = field(default_factory=dict)


def compute_report(results: list[PanelResult | None], mask: np.ndarray | None, progress: Any) -> MetricsReport:
    from viewer.explain.metrics import pointing_game, relevance_mass_accuracy, spearman

    per_panel: list[PanelMetrics | None] = []
    usable_mask = mask is not None and bool(mask.any())
    for r in results:
        progress.check()
        if r is None:
            per_panel.append(None)
        elif usable_mask:
            per_panel.append(PanelMetrics(r.method, relevance_mass_accuracy(r.on_scan, mask),
                                          pointing_game(r.on_scan, mask)))
        else:
            per_panel.append(PanelMetrics(r.method))
    correlations: dict[tuple[int, int], float] = {}
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            a, b = results[i], results[j]
            if a is not None and b is not None:
                progress.check()
                correlations[(i, j)] = spearman(a.on_scan, b.on_scan, spatial_ndim=3)
    return MetricsReport(tuple(per_panel), correlations)


class ComparisonMixin:
    def _init_comparison(self) -> None:
        self.metrics: MetricsReport | None = None
        self._metrics_key: Any = None
        self._perturbations: dict[int, Any] = {}
        self._perturb_keys: dict[int, Any] = {}

    def _clear_metrics(self) -> None:
        self._runner.drop(METRICS_SLOT)
        with self._lock:
            self.metrics, self._metrics_key = None, None
            self._perturbations.clear()
            self._perturb_keys.clear()

    def _forget_panel(self, pid: int) -> None:
        with self._lock:
            self._perturbations.pop(pid, None)
            self._perturb_keys.pop(pid, None)

    def _schedule_metrics(self) -> None:
        """Recompute the metrics once every panel that is computing has its final map."""
        if self._closed:
            return
        with self._lock:
            pids = list(self._panel_ids)
            results = [self._results.get(pid) for pid in pids]
            results = [None if r is None or r.preview else r for r in results]
            mask, mask_token = self.mask, self._mask_token
        if all(r is None for r in results) or (len(results) < 2 and mask is None):
            with self._lock:
                self.metrics, self._metrics_key = None, None
            self._runner.drop(METRICS_SLOT)
            return
        if any(self._runner.is_busy(("explain", pid)) for pid in pids):
            return  # the last panel to finish schedules it
        key = (tuple(None if r is None else r.request for r in results), mask_token)
        with self._lock:
            if key == self._metrics_key:
                return
            self._metrics_key = key
        self._runner.submit(METRICS_SLOT, key, lambda p: compute_report(results, mask, p), cache=False)

    def request_perturbation(self, i: int, **params: Any) -> bool:
        """Region-perturbation curve (MoRF vs random) of panel ``i``'s final map, on the worker.

        ``params`` go to :func:`viewer.explain.metrics.perturbation_curve` (patch, steps,
        value, seed, ...). Progress arrives on ``progress(i, f)``, the curve on
        ``perturbation_ready(i)``. False when the panel has no final result yet.
        """
        pid = self._pid(i)
        result, ctx = self.result(i), self._panel_context(pid)[0]  # the model the panel explains
        if result is None or result.preview or ctx is None:
            return False
        key = ("perturbation", result.request, tuple(sorted(params.items())))
        with self._lock:
            self._perturb_keys[pid] = key
            self._perturbations.pop(pid, None)
        request = result.request

        def run(progress: Any) -> Any:
            from viewer.explain.metrics import perturbation_curve

            module, x = ctx.module_and_input(request.device, request.precision)
            return perturbation_curve(module, x, result.relevance, progress=progress, **params)

        if self._runner.cached(key) is None:
            self._emit_index(self.busy, pid, True)
        self._runner.submit(("perturbation", pid), key, run)
        return True

    def perturbation(self, i: int) -> Any | None:
        """The panel's PerturbationCurve once computed (None before or after a change)."""
        pid = self._pid(i)
        with self._lock:
            return self._perturbations.get(pid)

    def _comparison_result(self, slot: Any, key: Any, result: Any) -> None:
        kind, pid = slot
        if kind == "metrics":
            with self._lock:
                if key != self._metrics_key:
                    return
                self.metrics = result
            self.metrics_changed.emit()
        elif kind == "perturbation":
            with self._lock:
                if key != self._perturb_keys.get(pid):
                    return
                self._perturbations[pid] = result
            self._emit_index(self.busy, pid, False)
            self._emit_index(self.perturbation_ready, pid)

    def _comparison_error(self, kind: str, pid: Any, message: str) -> None:
        if kind == "metrics":
            with self._lock:
                self._metrics_key = None
            self._report_once("Metrics failed", message)
        elif kind == "perturbation":
            self._emit_index(self.busy, pid, False)
            self._report_once("Perturbation curve failed", message)


def finite_or_none(value: float | None) -> float | None:
    """NaN-safe number for readouts."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
