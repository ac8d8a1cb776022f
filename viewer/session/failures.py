"""What went wrong, said once: failed jobs become one message and a per-panel reason.

When the model cannot take a scan, preparing its input fails in every job that needs
it: the prediction and each panel's explanation. Reporting each would stack a dialog
per job for one cause, and the panels would then read as if the user had cancelled
them. Here a failure is stored where it belongs (the prediction, a panel) so the UI can
say "failed, and why" in place, and the ``error`` signal carries each distinct message
only once per scan + model. Mixed into :class:`viewer.session.session.Session`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)


def failure_title(exc: BaseException, default: str) -> str:
    from viewer.models.errors import ModelLoadError

    return "This model cannot take this scan" if isinstance(exc, ModelLoadError) else default


class FailuresMixin:
    def _init_failures(self) -> None:
        self._errors: dict[int, str] = {}
        self.prediction_error: str | None = None
        self._reported: set[str] = set()

    def panel_error(self, i: int) -> str | None:
        """Why panel ``i``'s last explanation failed (None when it did not)."""
        pid = self._pid(i)
        with self._lock:
            return self._errors.get(pid)

    def _forget_failures(self) -> None:
        """A new scan or model: old failures no longer apply, and may be reported again."""
        with self._lock:
            self._errors.clear()
            self.prediction_error = None
            self._reported.clear()

    def _report_once(self, title: str, message: str) -> None:
        with self._lock:
            if message in self._reported:
                return
            self._reported.add(message)
        self._report(title, message)

    def _report(self, title: str, message: str) -> None:
        """Emit ``error``, unless :meth:`restore` is collecting problems on this thread."""
        collector = self._collector
        if collector is not None and collector[0] is threading.current_thread():
            collector[1].append(f"{title}: {message}")
            return
        self.error.emit(title, message)

    def _on_error(self, slot: Any, key: Any, exc: BaseException) -> None:
        message = str(exc) or type(exc).__name__
        if slot == "predict":
            with self._lock:
                if key[1] != self._predict_request:
                    return
                self.prediction_error = message
            self.prediction_changed.emit()
            self._report_once(failure_title(exc, "Prediction failed"), message)
            return
        kind, pid = slot if isinstance(slot, tuple) else (slot, None)
        if kind == "explain":
            with self._lock:
                if key[1] != self._requests.get(pid):
                    return
                self._requests.pop(pid, None)  # a later identical request may try again
                self._errors[pid] = message
            self._emit_index(self.busy, pid, False)
            self._report_once(failure_title(exc, f"Explanation failed ({key[1].method})"), message)
        elif kind == "preview":
            log.info("Grad-CAM preview failed: %s", message)  # LRP still follows
        else:
            self._comparison_error(kind, pid, message)
