"""A text progress bar for the batch command: cases done, failures, elapsed time and ETA.

On a terminal it redraws one line; when stderr is a file or a pipe (a cluster job's
log) it prints one plain line per case instead, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def clock(seconds: float) -> str:
    """``1:02:03`` / ``2:03`` style duration."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    """``update`` after each case; ``close`` at the end. Skipped cases do not count towards the ETA."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True, width: int = 24) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.done = 0
        self.failed = 0
        self.computed = 0

    def eta(self) -> float | None:
        if self.computed == 0:
            return None
        per_case = (time.perf_counter() - self.start) / self.computed
        return per_case * (self.total - self.done)

    def update(self, case_id: str, status: str, seconds: float | None = None) -> None:
        self.done += 1
        self.failed += status == "failed"
        self.computed += status != "skipped"
        if not self.enabled:
            return
        eta = self.eta()
        eta_text = f"ETA {clock(eta)}" if eta is not None else "ETA --:--"
        failed = f", {self.failed} failed" if self.failed else ""
        if self.tty:
            filled = int(self.width * self.done / max(1, self.total))
            bar = "#" * filled + "-" * (self.width - filled)
            elapsed = clock(time.perf_counter() - self.start)
            line = f"\r[{bar}] {self.done}/{self.total} cases{failed} | {elapsed} | {eta_text}"
            self.stream.write(line.ljust(79))
        else:
            took = f" ({seconds:.1f} s)" if seconds is not None else ""
            self.stream.write(f"[{self.done}/{self.total}] {case_id}: {status}{took}{failed} | {eta_text}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
