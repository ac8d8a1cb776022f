"""Progress reporting and cancellation for methods that take many passes."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable


class Cancelled(Exception):
    """Raised inside a method when its request was cancelled; callers drop the result."""


@dataclass
class Progress:
    """Handed to long methods: call :meth:`step` between passes.

    ``callback(fraction)`` receives a value in [0, 1]; ``cancel`` is an Event that, once
    set, makes the next :meth:`step` raise :class:`Cancelled`.
    """

    callback: Callable[[float], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def step(self, done: float, total: float) -> None:
        if self.cancel.is_set():
            raise Cancelled()
        if self.callback is not None and total > 0:
            self.callback(min(1.0, max(0.0, done / total)))

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled()


NO_PROGRESS = Progress()
