"""The batch progress bar: one redrawn line on a terminal, plain lines in logs."""

from __future__ import annotations

import io

from viewer.cli.progress_bar import ProgressBar, clock


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar(3, stream=stream)
    bar.update("a", "skipped")
    bar.update("b", "ok", 1.25)
    bar.update("c", "failed", 0.5)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[1/3] a: skipped | ETA --:--"  # skipped cases say nothing about speed
    assert lines[1].startswith("[2/3] b: ok (1.2 s) | ETA ")
    assert lines[2].startswith("[3/3] c: failed (0.5 s), 1 failed | ETA 0:00")
    assert "\r" not in stream.getvalue()


def test_terminal_redraws_one_line_with_a_bar() -> None:
    stream = _Terminal()
    bar = ProgressBar(4, stream=stream, width=8)
    bar.update("a", "ok")
    bar.update("b", "ok")
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[####----] 2/4 cases" in text and "ETA" in text


def test_disabled_bar_is_silent() -> None:
    stream = _Terminal()
    bar = ProgressBar(2, stream=stream, enabled=False)
    bar.update("a", "failed")
    bar.close()
    assert stream.getvalue() == "" and bar.failed == 1


def test_clock() -> None:
    assert clock(0) == "0:00"
    assert clock(61.4) == "1:01"
    assert clock(3723) == "1:02:03"
