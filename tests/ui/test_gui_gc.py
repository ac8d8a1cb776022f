"""Cycles are collected on the GUI thread, never on the explanation worker.

A cycle that holds a Qt object and is freed by the automatic collector on the worker
thread destroys that object off the GUI thread; PySide's bookkeeping is then corrupted
and a later window deletion crashed the test run (segmentation fault in
``BindingManager::releaseWrapper``).
"""

from __future__ import annotations

import gc
import threading
from typing import Any

from PySide6 import QtWidgets

from viewer.ui import gui_gc


class Cycle:
    """Refers to itself; records the thread its finaliser ran on."""

    def __init__(self, seen: list[int]) -> None:
        self.me = self
        self.seen = seen
        self.widget = QtWidgets.QLabel("owned by Python")  # what made the crash

    def __del__(self) -> None:
        self.seen.append(threading.get_ident())


def churn() -> None:
    """What the worker does during an explanation, as far as the collector cares:
    allocate many container objects (each lives briefly inside a cycle)."""
    for _ in range(20_000):
        a: list[Any] = []
        a.append(a)


def test_a_cycle_dropped_while_the_worker_allocates_is_freed_on_the_gui_thread(qapp: Any, qtbot: Any) -> None:
    collector = gui_gc.install()
    assert not gc.isenabled()
    seen: list[int] = []
    Cycle(seen)  # unreachable at once, but only the cycle collector can free it
    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    assert seen == []  # the worker's allocations did not start a collection there
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)  # the timer's round on the GUI thread
    assert seen == [threading.get_ident()]
    assert collector.collected > 0


def test_install_is_idempotent_and_stop_gives_the_collector_back(qapp: Any) -> None:
    first = gui_gc.install()
    assert gui_gc.install() is first
    first.stop()
    try:
        assert gc.isenabled() and not first.timer.isActive()
    finally:
        again = gui_gc.install()
    assert again is first and first.timer.isActive() and not gc.isenabled()


def test_a_round_collects_only_the_generations_that_are_due(qapp: Any) -> None:
    collector = gui_gc.install()
    gc.collect()
    assert collector.check() == 0  # nothing allocated since: no generation is due
    seen: list[int] = []
    for _ in range(collector.thresholds[0] + 10):
        x: list[Any] = []
        x.append(x)
    Cycle(seen)
    assert collector.check() >= collector.thresholds[0] and seen == [threading.get_ident()]


def test_installing_off_the_gui_thread_is_refused(qapp: Any) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            gui_gc.install(qapp)
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert len(errors) == 1 and "GUI thread" in str(errors[0])
