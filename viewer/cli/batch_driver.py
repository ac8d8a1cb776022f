"""The batch's side of an executor: hand the cases out, record each row as it comes back.

Whatever runs the cases (this process, Ray workers), rows come back here, to the one
process that holds the output folder's lock, and after every row the summary is
rewritten at once, so an interrupted run resumes from the last finished case. Maps
are written by whoever explains the case, atomically, into the output folder.

When the summary itself can no longer be written (the disk is full, the folder became
read-only), nothing the run produces can be kept: :class:`OutputUnwritable` stops the
run cleanly, with the cases finished so far recorded in the summary's last good copy.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from viewer.cli.batch_inputs import Case
from viewer.cli.batch_lock import LOCK_NAME, sees_lock
from viewer.cli.batch_run import Runner, write_reason
from viewer.cli.executors import Executor, Outcome
from viewer.io.errors import ExportError


class OutputUnwritable(Exception):
    """The output folder takes no more writes; the run stops (exit status 1)."""


class WorkerSetupError(Exception):
    """A worker cannot do the batch's work where it runs (it does not see the output folder)."""


@dataclass
class BatchWork:
    """What every worker needs for any case: the runner (model, methods, output folder).

    ``lock_record`` is the driver's line in the output folder's lock file; a worker
    checks that it reads the same line, i.e. sees the same folder.
    """

    runner: Runner
    lock_record: str

    def on_worker(self, device: str) -> None:
        import torch

        out = self.runner.out
        if not sees_lock(out, self.lock_record):
            raise WorkerSetupError(
                f"The worker on {socket.gethostname()} does not see the output folder {out} (the driver's "
                f"{LOCK_NAME} is not there). Workers need the output folder and the inputs on a file system "
                "that every node mounts at the same path.")
        self.runner.device = torch.device(device)
        self.runner.model.module.to(self.runner.device)

    def __call__(self, cases: list[Case]) -> Iterator[dict[str, Any]]:
        return self.runner.chunk_rows(cases)


def run_cases(pending: Sequence[Case], work: BatchWork, executor: Executor, summary: Any, bar: Any,
              chunk: int) -> int:
    """Explain ``pending`` cases on ``executor``, recording each row; returns how many failed.

    ``chunk`` cases go to a worker at a time (the batch size). Raises
    :class:`OutputUnwritable` when the summary cannot be written.
    """
    failed = 0
    outcomes = executor.map(work, pending, chunk=chunk, key=lambda case: case.id)
    with contextlib.closing(outcomes):  # stops the workers' generator when the summary fails
        for outcome in outcomes:
            row = _row(work.runner, outcome)
            failed += row["status"] == "failed"
            summary.record(row)
            write_summary(summary)
            bar.update(row["case"], row["status"], row.get("seconds"))
    return failed


def _row(runner: Runner, outcome: Outcome) -> dict[str, Any]:
    if not outcome.ok:
        return runner.failed_row(outcome.lost, outcome.error, 0.0)
    row = dict(outcome.result)
    if outcome.attempt > 1:
        retried = f"attempt {outcome.attempt}: the worker running it before died"
        row["note"] = f"{row['note']}; {retried}" if row.get("note") else retried
    return row


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
