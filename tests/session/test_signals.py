"""The observer the UI bridges to Qt signals."""

import threading

from viewer.session.signals import Signal


def test_connect_emit_disconnect_and_blocking() -> None:
    sig = Signal("changed")
    got: list[tuple] = []
    fn = sig.connect(lambda *a: got.append(a))
    sig.connect(fn)  # connecting twice calls once
    sig.emit(1, "x")
    with sig.blocked():
        sig.emit(2)
    sig.disconnect(fn)
    sig.emit(3)
    sig.disconnect(fn)  # unknown: no error
    assert got == [(1, "x")]
    assert len(sig) == 0


def test_a_failing_listener_does_not_stop_the_others() -> None:
    sig = Signal("x")
    got = []

    def broken(*a):
        raise RuntimeError("bug")

    sig.connect(broken)
    sig.connect(got.append)
    sig.emit(7)
    assert got == [7]


def test_emit_from_another_thread() -> None:
    sig = Signal()
    got = []
    sig.connect(lambda v: got.append((v, threading.current_thread().name)))
    t = threading.Thread(target=sig.emit, args=(5,), name="worker")
    t.start()
    t.join()
    assert got == [(5, "worker")]
