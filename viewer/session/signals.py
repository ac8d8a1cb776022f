"""A tiny observer so the headless session can announce changes without Qt.

The session runs model code on a worker thread, so signals may be emitted from there;
the UI re-emits them as Qt signals with queued connections, which keeps this layer free
of any GUI dependency (napari's model/view split).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)


class Signal:
    """A list of callbacks called with the same arguments on :meth:`emit`.

    Thread-safe: connecting or emitting from several threads is allowed. A callback that
    raises is logged and skipped so one faulty listener cannot stop the others or kill
    the worker thread that emitted.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._slots: list[Callable[..., Any]] = []
        self._lock = threading.Lock()
        self._blocked = 0

    def connect(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``fn(*args)`` on every emit; returns ``fn`` so it can be used as a decorator."""
        with self._lock:
            if fn not in self._slots:
                self._slots.append(fn)
        return fn

    def disconnect(self, fn: Callable[..., Any]) -> None:
        """Stop calling ``fn``; disconnecting an unknown callback is a no-op."""
        with self._lock:
            with contextlib.suppress(ValueError):
                self._slots.remove(fn)

    def emit(self, *args: Any) -> None:
        with self._lock:
            if self._blocked:
                return
            slots = list(self._slots)
        for fn in slots:
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - a listener's bug must not break the emitter
                log.exception("Error in a %s listener", self.name or "signal")

    @contextlib.contextmanager
    def blocked(self) -> Iterator[None]:
        """Mute the signal inside the block, e.g. while restoring many settings at once."""
        with self._lock:
            self._blocked += 1
        try:
            yield
        finally:
            with self._lock:
                self._blocked -= 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._slots)

    def __repr__(self) -> str:
        return f"Signal({self.name!r}, {len(self)} listeners)"
