"""The batch's local executor: cases through one :class:`~viewer.cli.batch_run.Runner` in this process.

Cases are prepared a window of ``batch_size`` at a time and those of the same prepared
shape are explained together. After every case its row goes into the summary, which
is rewritten at once, so an interrupted run resumes from the last finished case.

When the summary itself can no longer be written (the disk is full, the folder became
read-only), nothing the run produces can be kept: :class:`OutputUnwritable` stops the
run cleanly, with the cases finished so far recorded in the summary's last good copy.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from viewer.cli.batch_inputs import Case
from viewer.cli.batch_run import Runner, group_key, write_reason
from viewer.io.errors import ExportError


class OutputUnwritable(Exception):
    """The output folder takes no more writes; the run stops (exit status 1)."""


def run_local(pending: Sequence[Case], runner: Runner, summary: Any, bar: Any) -> int:
    """Explain ``pending`` cases, recording each row; returns how many failed.

    Raises :class:`OutputUnwritable` when the summary cannot be written.
    """
    failed = 0

    def finish(case: Case, row: dict[str, Any]) -> None:
        nonlocal failed
        failed += row["status"] == "failed"
        summary.record(row)
        write_summary(summary)
        bar.update(case.id, row["status"], row.get("seconds"))

    for start in range(0, len(pending), runner.batch_size):
        prepared = []
        for case in pending[start:start + runner.batch_size]:
            t0 = time.perf_counter()
            try:
                prepared.append(runner.prepare(case))
            except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                finish(case, runner.failed_row(case, exc, time.perf_counter() - t0))
        groups: dict[Any, list] = {}
        for p in prepared:
            groups.setdefault(group_key(p), []).append(p)
        for group in groups.values():
            for p, row, error in runner.run(group):
                finish(p.case, runner.row_of(p, row, error))
    return failed


def write_summary(summary: Any) -> None:
    """Rewrite the summary, or raise :class:`OutputUnwritable` saying why and what to do."""
    try:
        summary.write()
    except (OSError, ExportError) as exc:
        raise OutputUnwritable(
            f"Stopped: {summary.path} cannot be written ({write_reason(exc)}), so no further result could be "
            "kept. Free disk space (or make the folder writable) and run the same command again: finished cases "
            "are skipped."
        ) from exc
