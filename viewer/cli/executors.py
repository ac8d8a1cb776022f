"""Where a command's per-item work runs: in this process (``local``) or on a Ray cluster (``ray``).

The batch command (cases), and any other command that repeats one piece of work over
many items (a graph per scan, channel scores over a reference set), hands an
:class:`Executor` a *work* object and the items; the executor yields one
:class:`Outcome` per item. The command stays the one place that records results
(``summary.csv``, a sum of scores), so it behaves the same whatever runs the work.

A work object is any picklable callable with one extra method::

    class Work:
        def on_worker(self, device: str) -> None: ...      # once per Ray worker, after it arrived
        def __call__(self, items: list) -> Iterable[Any]:  # a chunk of items -> their results

It carries what every item needs (the model, the methods, the output folder). The
local executor calls it in this process as the command prepared it; the Ray executor
puts it into the object store once and each worker takes one copy for its life, so
model weights travel once per worker, never per item. Results are whatever the work
yields (a summary row, a score vector); they must say which item they belong to if
the caller needs to know.

Usage from a command::

    add_executor_arguments(parser)                      # --executor, --address, --workers, ...
    spec = spec_from_args(args)                         # ExecutorError: a usage error
    with open_executor(spec, notify=print) as ex:       # Ray: connects or starts a local instance
        for outcome in ex.map(work, items, chunk=1, key=lambda item: item.id):
            ...  # outcome.result, or outcome.lost (the item) and outcome.error

A worker that dies (killed, out of memory, node lost) has its chunk retried item by
item up to ``max_retries`` times on a fresh worker; an item that outlives its retries
comes back *lost*, and the run goes on. See :mod:`viewer.cli.executor_ray`.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

KINDS = ("local", "ray")
DEFAULT_RETRIES = 2
INSTALL_HINT = 'pip install "lrp-viewer[cluster]"'

EXECUTOR_HELP = """\
executors (--executor):
  local      this process (default); --device picks CPU or GPU
  ray        a Ray cluster: --address auto (the cluster this machine belongs to) or
             ray://HOST:PORT (Ray Client); no --address starts a local Ray instance
             using this machine's CPUs and GPUs. Needs Ray: pip install "lrp-viewer[cluster]".
             Each worker holds --cpus-per-task CPUs and --gpus-per-task GPUs (default: 1 GPU
             when the cluster has GPUs and --device is not cpu) for its whole life and gets
             the model once. Work whose worker dies is retried (--max-retries) on a fresh
             worker, then reported as failed; the rest goes on.
"""


class ExecutorError(Exception):
    """The executor options cannot work (Ray missing, no cluster at the address, no GPUs); a usage error."""


class ExecutorFailed(Exception):
    """The executor stopped mid-run (workers cannot start, the cluster went away); the message says what to do."""


class WorkerLost(Exception):
    """An item whose worker died on every attempt; recorded as the item's error."""


class Work(Protocol):
    def on_worker(self, device: str) -> None: ...

    def __call__(self, items: list[Any]) -> Iterable[Any]: ...


@dataclass(frozen=True)
class ExecutorSpec:
    """The ``--executor`` options as given; ``gpus_per_task=None`` means: decide from the cluster and ``device``."""

    kind: str = "local"
    address: str | None = None
    workers: int | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float | None = None
    max_retries: int = DEFAULT_RETRIES
    device: str = "auto"  # auto | cpu | cuda


@dataclass(frozen=True)
class Outcome:
    """One item's end: ``result`` from the work, or ``lost`` (the item) with the ``error`` that lost it.

    ``error`` is the work's own exception (raised on a worker: it would raise again), or
    :class:`WorkerLost` when the item's worker died on every attempt. ``attempt`` is
    the try that ended it (1 unless a worker died before).
    """

    result: Any = None
    lost: Any = None
    error: BaseException | None = None
    attempt: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def reason(self) -> str:
        """The error on one line, with its type: ``WorkerLost: its Ray worker died ...``."""
        if self.error is None:
            return ""
        return f"{type(self.error).__name__}: {' '.join(str(self.error).split())}"


class Executor(Protocol):
    kind: str
    device: str  # where the work runs: "cpu" or "cuda" (on Ray: on each worker)
    workers: int
    description: str  # one line for the user: where the work runs

    def map(self, work: Work, items: Sequence[Any], *, chunk: int = 1,
            key: Callable[[Any], str] = str) -> Iterator[Outcome]: ...

    def close(self) -> None: ...


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """The shared options, in their own group of ``--help``."""
    g = parser.add_argument_group("executor (where the work runs; see 'executors' below)")
    g.add_argument("--executor", choices=KINDS, default="local", help="local (default) or ray")
    g.add_argument("--address", metavar="ADDR",
                   help="Ray cluster: 'auto' or ray://HOST:PORT (default: start a local Ray instance)")
    g.add_argument("--workers", type=int, metavar="N",
                   help="Ray workers at most (default: as many as the cluster's CPUs/GPUs allow)")
    g.add_argument("--cpus-per-task", type=float, default=1.0, metavar="N", help="CPUs per Ray worker (default 1)")
    g.add_argument("--gpus-per-task", type=float, metavar="N",
                   help="GPUs per Ray worker, fractions allowed (default: 1 when the cluster has GPUs and "
                        "--device is not cpu, else 0)")
    g.add_argument("--max-retries", type=int, default=DEFAULT_RETRIES, metavar="N",
                   help=f"retries of an item whose Ray worker died (default {DEFAULT_RETRIES})")


def spec_from_args(args: argparse.Namespace) -> ExecutorSpec:
    """Check the options against each other; for Ray, that Ray is installed. Raises :class:`ExecutorError`."""
    spec = ExecutorSpec(kind=args.executor, address=args.address, workers=args.workers,
                        cpus_per_task=args.cpus_per_task, gpus_per_task=args.gpus_per_task,
                        max_retries=args.max_retries, device=getattr(args, "device", "auto"))
    if spec.kind == "local":
        given = [flag for flag, value, default in (
            ("--address", spec.address, None), ("--workers", spec.workers, None),
            ("--cpus-per-task", spec.cpus_per_task, 1.0), ("--gpus-per-task", spec.gpus_per_task, None),
            ("--max-retries", spec.max_retries, DEFAULT_RETRIES)) if value != default]
        if given:
            raise ExecutorError(f"{', '.join(given)} only apply to --executor ray.")
        return spec
    if spec.workers is not None and spec.workers < 1:
        raise ExecutorError(f"--workers must be at least 1, got {spec.workers}.")
    if spec.cpus_per_task <= 0:
        raise ExecutorError(f"--cpus-per-task must be more than 0, got {spec.cpus_per_task:g}.")
    if spec.gpus_per_task is not None and spec.gpus_per_task < 0:
        raise ExecutorError(f"--gpus-per-task cannot be negative, got {spec.gpus_per_task:g}.")
    if spec.max_retries < 0:
        raise ExecutorError(f"--max-retries cannot be negative, got {spec.max_retries}.")
    if spec.device == "cpu" and spec.gpus_per_task:
        raise ExecutorError("--device cpu with --gpus-per-task would hold GPUs nobody uses; drop one of the two.")
    if spec.device == "cuda" and spec.gpus_per_task == 0:
        raise ExecutorError("--device cuda needs a GPU per worker: give --gpus-per-task 1 (or a fraction).")
    from viewer.cli.executor_ray import import_ray

    import_ray()  # a missing Ray is told now, before the model is loaded
    return spec


def local_device(name: str) -> str:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an :class:`ExecutorError`."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ExecutorError("--device cuda was requested but no CUDA device is available; use --device cpu or auto.")
    return name


class LocalExecutor:
    """This process, item after item; results stream as the work yields them."""

    kind = "local"
    workers = 1

    def __init__(self, spec: ExecutorSpec) -> None:
        self.device = local_device(spec.device)
        self.description = f"running in this process on {self.device}"

    def map(self, work: Work, items: Sequence[Any], *, chunk: int = 1,
            key: Callable[[Any], str] = str) -> Iterator[Outcome]:
        chunk = max(1, chunk)
        for start in range(0, len(items), chunk):
            for result in work(list(items[start:start + chunk])):
                yield Outcome(result)

    def close(self) -> None:
        pass


@contextlib.contextmanager
def open_executor(spec: ExecutorSpec, notify: Callable[[str], None] | None = None) -> Iterator[Executor]:
    """The executor ``spec`` asks for, closed (Ray workers stopped, a local Ray instance shut down) on exit."""
    if spec.kind == "local":
        executor: Executor = LocalExecutor(spec)
    else:
        from viewer.cli.executor_ray import RayExecutor

        executor = RayExecutor(spec, notify=notify)
    try:
        yield executor
    finally:
        executor.close()
