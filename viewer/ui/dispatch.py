"""Session events reach the window's handlers one by one, each guarded.

A window redraws from many small handlers (title, views, panels, status bar, ...). If
one of them raised, Qt would abandon the rest of the slot and the window would show a
mixture of the old and the new case, e.g. the new scan under the old title. Here every
handler, and every step of a multi-step handler, runs on its own: a failure is logged
with its traceback, named in the status bar and reported once in a dialog, and the
steps after it still run.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

log = logging.getLogger(__name__)


class Dispatcher:
    """Runs UI handlers so that one failing handler never stops the others.

    ``report(where, exc, first)`` is told about each failure; ``first`` is True the first
    time a given handler fails with a given message (dialogs use it not to stack).
    """

    def __init__(self, report: Callable[[str, BaseException, bool], None]) -> None:
        self._report = report
        self._seen: set[tuple[str, str]] = set()
        self.failures: list[tuple[str, str]] = []  # (where, message), newest last

    def run(self, where: str, fn: Callable[..., Any], *args: Any) -> bool:
        """Call ``fn(*args)``; True when it returned normally."""
        try:
            fn(*args)
            return True
        except Exception as exc:  # noqa: BLE001 - one handler's bug must not leave the window half-updated
            log.exception("Error in UI handler %s", where)
            message = f"{type(exc).__name__}: {exc}"
            key = (where, message)
            first = key not in self._seen
            self._seen.add(key)
            self.failures.append(key)
            try:
                self._report(where, exc, first)
            except Exception:  # noqa: BLE001 - the reporter itself must not raise into Qt
                log.exception("Error while reporting a UI handler error")
            return False

    def guard(self, where: str, fn: Callable[..., Any]) -> Callable[..., None]:
        """``fn`` wrapped by :meth:`run`, for connecting to a signal."""

        def guarded(*args: Any) -> None:
            self.run(where, fn, *args)

        guarded.__name__ = getattr(fn, "__name__", where)
        return guarded

    def steps(self, where: str, steps: Iterable[tuple[str, Callable[[], Any]]]) -> list[str]:
        """Run each ``(name, fn)`` in order whatever the others do; returns the names that failed."""
        return [name for name, fn in steps if not self.run(f"{where}: {name}", fn)]
