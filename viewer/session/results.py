"""What the worker hands back: explanations mapped onto the scan, and predictions."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from viewer.session.requests import ExplainRequest


@dataclass(frozen=True, eq=False)
class PanelResult:
    """One panel's explanation: the raw Relevance and its map on the scan grid.

    ``on_scan`` is float32 with the scan's shape (computed on the worker through the
    model's ``to_scan``), so the views, the profile and the metrics never touch the
    model grid. ``preview`` marks the quick Grad-CAM shown while LRP is still running.
    """

    request: ExplainRequest
    relevance: Any  # viewer.explain.Relevance
    on_scan: np.ndarray
    preview: bool = False
    default_limit: float = 1.0
    _limits: dict = field(default_factory=dict, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def nbytes(self) -> int:
        rel = getattr(self.relevance, "relevance", None)
        out = getattr(self.relevance, "output", None)
        n = self.on_scan.nbytes
        for t in (rel, out):
            if t is not None and hasattr(t, "element_size"):
                n += t.element_size() * t.nelement()
        return int(n)

    @property
    def conservation(self) -> Any | None:
        """LRP's bookkeeping (:class:`viewer.explain.metrics.Conservation`: explained output
        = Σ relevance + absorbed + error); None for methods without a conservation law."""
        r = self.relevance
        if r is None or getattr(r, "absorbed", None) is None or getattr(r, "explained", None) is None:
            return None
        from viewer.explain.metrics import conservation

        return conservation(r)

    def limit(self, overlay: Any) -> float:
        """The overlay's colour limit on this map; percentile limits are memoised."""
        if overlay.limit_mode == "fixed":
            return float(overlay.fixed_limit)
        key = float(overlay.percentile)
        with self._lock:
            if key in self._limits:
                return self._limits[key]
        value = overlay.limit_for(self.on_scan)
        with self._lock:
            self._limits[key] = value
        return value


@dataclass(frozen=True, eq=False)
class Prediction:
    """Class probabilities of the current scan, with the model's labels.

    For a segmentation model the probabilities are the mean over voxels; for a 2D
    model run slice by slice, the mean over slices. ``warnings`` say why the input may
    not fit the model (clipped intensities, NaNs, a constant image, ...; see
    :mod:`viewer.models.input_fit`) and belong next to the probabilities wherever they
    are shown; ``notes`` say how the scan was adapted (resampled, run per slice);
    ``input_values`` is the prepared input's (min, max).
    """

    probabilities: np.ndarray
    labels: tuple[str, ...]
    predicted: int
    task: str = "classification"
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    input_values: tuple[float, float] | None = None

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-self.probabilities)[:k]
        return [(self.label(int(i)), float(self.probabilities[i])) for i in order]

    def label(self, index: int) -> str:
        return self.labels[index] if index < len(self.labels) else f"class {index}"

    @staticmethod
    def from_probabilities(probs: Any, labels: Sequence[str], task: str = "classification") -> "Prediction":
        """Reduce a ``(B, K)`` or ``(B, K, *spatial)`` probability tensor to one vector."""
        p = probs.detach().float().cpu().numpy() if hasattr(probs, "detach") else np.asarray(probs, dtype=np.float32)
        p = np.asarray(p, dtype=np.float64)
        if p.ndim == 1:
            p = p[None]
        k = p.shape[1]
        vector = p.reshape(p.shape[0], k, -1).mean(axis=(0, 2)).astype(np.float32)
        return Prediction(vector, tuple(labels), int(np.argmax(vector)), task)
