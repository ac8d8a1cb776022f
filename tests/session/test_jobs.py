"""The worker: newest request wins, cancellation, cache, errors, clean shutdown."""

from __future__ import annotations

import threading

import pytest

from viewer.explain.progress import Cancelled
from viewer.session.jobs import JobRunner


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)

    def add(self, *event: object) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.events), timeout)

    def runner(self, **kw) -> JobRunner:
        return JobRunner(
            on_progress=lambda s, k, f: self.add("progress", s, k, f),
            on_result=lambda s, k, r: self.add("result", s, k, r),
            on_error=lambda s, k, e: self.add("error", s, k, str(e)),
            on_cancelled=lambda s, k: self.add("cancelled", s, k),
            **kw,
        )


@pytest.fixture
def rec():
    return Recorder()


def test_newer_request_makes_running_one_stale(rec: Recorder) -> None:
    runner = rec.runner()
    started, release = threading.Event(), threading.Event()
    seen_cancel = []

    def slow_a(progress):
        started.set()
        release.wait(10)
        seen_cancel.append(progress.cancel.is_set())
        return "A"

    runner.submit("panel", "key-a", slow_a)
    assert started.wait(10)
    runner.submit("panel", "key-b", lambda p: "B")
    release.set()
    assert runner.wait_idle(10)
    results = [e for e in rec.events if e[0] == "result"]
    assert results == [("result", "panel", "key-b", "B")]
    assert seen_cancel == [True]  # A was told to stop
    assert not [e for e in rec.events if e[0] == "cancelled"]  # stale jobs are silent
    runner.shutdown()


def test_queued_stale_job_never_runs_and_slots_are_independent(rec: Recorder) -> None:
    runner = rec.runner()
    gate = threading.Event()
    ran = []
    runner.submit("blocker", None, lambda p: gate.wait(10))
    runner.submit("panel", "a", lambda p: ran.append("a") or "A")
    runner.submit("other", "c", lambda p: ran.append("c") or "C")
    runner.submit("panel", "b", lambda p: ran.append("b") or "B")
    gate.set()
    assert runner.wait_idle(10)
    assert ran == ["c", "b"]
    assert [e[1:] for e in rec.events if e[0] == "result" and e[1] != "blocker"] == [("other", "c", "C"), ("panel", "b", "B")]
    runner.shutdown()


def test_cancel_running_long_job_reports_cancelled(rec: Recorder) -> None:
    runner = rec.runner()
    started = threading.Event()
    steps = []

    def long_job(progress):
        started.set()
        for i in range(100000):
            progress.step(i, 100000)
            steps.append(i)
            threading.Event().wait(0.001)
        return "never"

    runner.submit("panel", "long", long_job)
    assert started.wait(10)
    assert rec.wait_for(lambda ev: any(e[0] == "progress" for e in ev))
    assert runner.is_busy("panel")
    assert runner.cancel("panel")
    assert rec.wait_for(lambda ev: ("cancelled", "panel", "long") in ev, timeout=5)
    assert runner.wait_idle(5)
    assert len(steps) < 100000
    assert not [e for e in rec.events if e[0] == "result"]
    assert not runner.is_busy("panel")
    assert runner.cached("long") is None  # a cancelled job leaves nothing in the cache
    runner.shutdown()


def test_cancel_queued_job_reports_at_once(rec: Recorder) -> None:
    runner = rec.runner()
    gate = threading.Event()
    runner.submit("blocker", None, lambda p: gate.wait(10))
    ran = []
    runner.submit("panel", "x", lambda p: ran.append(1))
    assert runner.cancel("panel")
    assert ("cancelled", "panel", "x") in rec.events  # synchronous for a queued job
    assert not runner.cancel("panel")
    gate.set()
    assert runner.wait_idle(10)
    assert ran == []
    runner.shutdown()


def test_cached_result_is_delivered_synchronously(rec: Recorder) -> None:
    runner = rec.runner()
    calls = []
    runner.submit("panel", "k1", lambda p: calls.append(1) or "R1")
    assert runner.wait_idle(10)
    runner.submit("panel", "k2", lambda p: calls.append(2) or "R2")
    assert runner.wait_idle(10)
    n = len(rec.events)
    job = runner.submit("panel", "k1", lambda p: calls.append(3) or "again")
    assert job.from_cache
    assert rec.events[n:] == [("result", "panel", "k1", "R1")]  # already there, no waiting
    assert calls == [1, 2]
    runner.shutdown()


def test_cache_is_bounded_by_entries_and_bytes(rec: Recorder) -> None:
    class Big:
        def __init__(self, n: int) -> None:
            self.nbytes = n

    runner = rec.runner(cache_entries=3, cache_bytes=1000)
    for i in range(5):
        runner.submit(f"s{i}", f"k{i}", lambda p, i=i: Big(100))
    assert runner.wait_idle(10)
    assert runner.cache_len == 3
    assert runner.cached("k0") is None and runner.cached("k4") is not None
    runner.submit("s", "huge", lambda p: Big(900))
    assert runner.wait_idle(10)
    assert runner.cache_len == 2  # 900 + 100 fits, a third would not
    runner.shutdown()


def test_errors_and_cancelled_exceptions(rec: Recorder) -> None:
    runner = rec.runner()

    def fail(p):
        raise ValueError("bad parameter")

    def cancelled(p):
        raise Cancelled()

    runner.submit("a", "ka", fail)
    runner.submit("b", "kb", cancelled)
    assert runner.wait_idle(10)
    assert ("error", "a", "ka", "bad parameter") in rec.events
    assert ("cancelled", "b", "kb") in rec.events
    assert runner.cached("ka") is None
    runner.shutdown()


def test_listener_errors_do_not_kill_the_worker() -> None:
    def broken(*args):
        raise RuntimeError("listener bug")

    runner = JobRunner(on_result=broken)
    runner.submit("a", None, lambda p: 1)
    assert runner.wait_idle(10)
    done = []
    runner.on_result = lambda s, k, r: done.append(r)
    runner.submit("a", None, lambda p: 2)
    assert runner.wait_idle(10)
    assert done == [2] and runner.alive
    runner.shutdown()


def test_shutdown_joins_the_thread_and_refuses_work(rec: Recorder) -> None:
    before = set(threading.enumerate())
    runner = rec.runner()
    assert runner.thread in threading.enumerate()
    started = threading.Event()

    def long_job(progress):
        started.set()
        while True:
            progress.step(0, 1)
            threading.Event().wait(0.001)

    runner.submit("panel", None, long_job)
    assert started.wait(10)
    assert runner.shutdown(timeout=5)
    assert set(threading.enumerate()) == before
    with pytest.raises(RuntimeError):
        runner.submit("panel", None, lambda p: 1)
