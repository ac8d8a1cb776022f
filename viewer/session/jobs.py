"""One worker thread that runs explanation jobs, newest request wins.

The GUI thread only enqueues work here. Jobs are grouped by *slot* (a panel's
explanation, its Grad-CAM preview, the prediction, ...): a newer job for a slot makes
the older one stale, so its result is dropped and never shown, and its cancel Event is
set so a long method stops at its next step. Finished results are cached by request,
which makes switching back to an earlier rule instant: the cached result is delivered
synchronously, without touching the worker.

Callbacks are called outside the runner's lock (a listener may submit new work), on
the worker thread for computed results and on the caller's thread for cached ones.
Because a newer request may arrive between the stale check and the delivery, callers
that keep "the current result" should also compare the request they receive (the
session does).
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from viewer.explain.progress import Cancelled, Progress

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, CANCELLED, STALE, FAILED = "queued", "running", "done", "cancelled", "stale", "failed"


@dataclass(eq=False)
class Job:
    """A unit of work for one slot; ``fn(progress)`` returns the result."""

    slot: Hashable
    key: Hashable | None
    fn: Callable[[Progress], Any] | None
    cache: bool = True
    cancel_event: threading.Event = field(default_factory=threading.Event)
    state: str = QUEUED
    from_cache: bool = False

    @property
    def finished(self) -> bool:
        return self.state in (DONE, CANCELLED, STALE, FAILED)


def _nbytes(result: Any) -> int:
    n = getattr(result, "nbytes", 0)
    return int(n) if isinstance(n, (int, float)) else 0


class JobRunner:
    """A single background thread with per-slot staleness, cancellation and a result cache.

    Parameters
    ----------
    on_progress, on_result, on_error, on_cancelled
        ``on_progress(slot, key, fraction)``, ``on_result(slot, key, result)``,
        ``on_error(slot, key, exc)``, ``on_cancelled(slot, key)``. Stale jobs call none.
    cache_entries, cache_bytes
        Bounds of the LRU result cache; a result's size is its ``nbytes`` attribute.
    """

    def __init__(
        self,
        on_progress: Callable[[Hashable, Any, float], None] | None = None,
        on_result: Callable[[Hashable, Any, Any], None] | None = None,
        on_error: Callable[[Hashable, Any, BaseException], None] | None = None,
        on_cancelled: Callable[[Hashable, Any], None] | None = None,
        cache_entries: int = 16,
        cache_bytes: int = 1 << 30,
        name: str = "lrp-viewer-worker",
    ) -> None:
        self.on_progress, self.on_result = on_progress, on_result
        self.on_error, self.on_cancelled = on_error, on_cancelled
        self.cache_entries, self.cache_bytes = int(cache_entries), int(cache_bytes)
        self._cond = threading.Condition(threading.RLock())
        self._pending: collections.deque[Job] = collections.deque()
        self._current: dict[Hashable, Job] = {}
        self._active: Job | None = None  # running or delivering
        self._cache: collections.OrderedDict[Hashable, tuple[Any, int]] = collections.OrderedDict()
        self._cache_size = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # -- submitting ---------------------------------------------------------------------
    def submit(self, slot: Hashable, key: Hashable | None, fn: Callable[[Progress], Any], *, cache: bool = True) -> Job:
        """Queue ``fn`` for ``slot``; older jobs of the slot become stale.

        When ``key`` is cached the result is delivered at once on this thread and
        ``fn`` never runs; the returned Job then has ``from_cache=True``.
        """
        with self._cond:
            if self._closed:
                raise RuntimeError("The job runner has been shut down.")
            self._make_stale(slot)
            hit = self._cache_get(key) if cache and key is not None else None
            if hit is not None:
                job = Job(slot, key, None, cache, state=DONE, from_cache=True)
            else:
                job = Job(slot, key, fn, cache)
                self._pending.append(job)
                self._current[slot] = job
                self._cond.notify_all()
        if hit is not None:
            self._call(self.on_result, slot, key, hit[0])
        return job

    def drop(self, slot: Hashable) -> None:
        """Make the slot's job stale without any callback (its panel no longer wants it)."""
        with self._cond:
            self._make_stale(slot)

    def cancel(self, slot: Hashable) -> bool:
        """Cancel the slot's job; ``on_cancelled`` follows. False when nothing was pending."""
        with self._cond:
            job = self._current.pop(slot, None)
            if job is None:
                return False
            job.cancel_event.set()
            queued = job.state == QUEUED
            job.state = CANCELLED
            if queued:
                self._pending.remove(job)
                job.fn = None
        if queued:  # a running job reports from the worker once it has stopped
            self._call(self.on_cancelled, slot, job.key)
        return True

    def cancel_all(self) -> None:
        with self._cond:
            slots = list(self._current)
        for slot in slots:
            self.cancel(slot)

    def _make_stale(self, slot: Hashable) -> None:
        old = self._current.pop(slot, None)
        if old is None:
            return
        old.cancel_event.set()
        if old.state == QUEUED:
            self._pending.remove(old)
            old.fn = None
        old.state = STALE

    # -- queries ------------------------------------------------------------------------
    def is_busy(self, slot: Hashable) -> bool:
        with self._cond:
            return slot in self._current

    def busy_slots(self) -> list[Hashable]:
        with self._cond:
            return list(self._current)

    def cached(self, key: Hashable) -> Any | None:
        with self._cond:
            hit = self._cache_get(key)
            return None if hit is None else hit[0]

    def clear_cache(self) -> None:
        with self._cond:
            self._cache.clear()
            self._cache_size = 0

    def forget(self, predicate: Callable[[Hashable], bool]) -> None:
        """Remove cached results whose key matches, e.g. everything of a closed model."""
        with self._cond:
            for key in [k for k in self._cache if predicate(k)]:
                self._cache_size -= self._cache.pop(key)[1]

    @property
    def cache_len(self) -> int:
        with self._cond:
            return len(self._cache)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running (and its callbacks have returned)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and self._active is None, timeout)

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Cancel everything, stop the thread and join it; True when the thread has ended."""
        with self._cond:
            self._closed = True
            for job in list(self._current.values()):
                job.cancel_event.set()
                job.state = CANCELLED
                job.fn = None
            self._current.clear()
            self._pending.clear()
            self._cache.clear()
            self._cache_size = 0
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- cache --------------------------------------------------------------------------
    def _cache_get(self, key: Hashable) -> tuple[Any, int] | None:
        try:
            hit = self._cache[key]
        except (KeyError, TypeError):
            return None
        self._cache.move_to_end(key)
        return hit

    def _cache_put(self, key: Hashable, result: Any) -> None:
        if key in self._cache:
            self._cache_size -= self._cache.pop(key)[1]
        size = _nbytes(result)
        self._cache[key] = (result, size)
        self._cache_size += size
        while len(self._cache) > 1 and (len(self._cache) > self.cache_entries or self._cache_size > self.cache_bytes):
            self._cache_size -= self._cache.popitem(last=False)[1][1]

    # -- worker -------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    self._active = None
                    self._cond.notify_all()
                    return
                job = self._pending.popleft()
                job.state = RUNNING
                self._active = job
            try:
                self._run(job)
            finally:
                with self._cond:
                    self._active = None
                    self._cond.notify_all()

    def _run(self, job: Job) -> None:
        progress = Progress(callback=lambda f: self._progress(job, f), cancel=job.cancel_event)
        fn, job.fn = job.fn, None
        result: Any = None
        error: BaseException | None = None
        cancelled = False
        try:
            result = fn(progress)  # type: ignore[misc]
        except Cancelled:
            cancelled = True
        except Exception as exc:  # noqa: BLE001 - reported through on_error
            error = exc
        finally:
            del fn
        with self._cond:
            if self._current.get(job.slot) is job:
                del self._current[job.slot]
            if not cancelled and error is None and job.cache and job.key is not None and not self._closed:
                self._cache_put(job.key, result)
            if job.state == RUNNING:
                job.state = CANCELLED if cancelled else FAILED if error is not None else DONE
            state = job.state
        if state == DONE:
            self._call(self.on_result, job.slot, job.key, result)
        elif state == FAILED:
            self._call(self.on_error, job.slot, job.key, error)
        elif state == CANCELLED and not self._closed:
            self._call(self.on_cancelled, job.slot, job.key)
        del result, error

    def _progress(self, job: Job, fraction: float) -> None:
        if job.state == RUNNING and not job.cancel_event.is_set():
            self._call(self.on_progress, job.slot, job.key, fraction)

    @staticmethod
    def _call(fn: Callable[..., Any] | None, *args: Any) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a listener's bug must not kill the worker
            log.exception("Error in a job runner callback")
