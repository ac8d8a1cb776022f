"""The Ray executor: a command's items on the workers of a Ray cluster (or a local Ray instance).

Ray places the work; this module only keeps a few long-lived workers (Ray actors)
busy and accounts for each item. Why actors rather than one Ray task per item: a
worker receives the work object (the model, from the object store) once, moves it to
its device once, and keeps its GPU for its life, so a cohort of thousands of cases
costs thousands of explanations, not thousands of model transfers.

* **Resources** — each worker asks Ray for ``cpus_per_task`` CPUs and
  ``gpus_per_task`` GPUs (Ray then sets ``CUDA_VISIBLE_DEVICES`` and the thread count
  of that worker). By default a worker takes one whole GPU when the cluster has any
  and ``--device`` is not cpu. The number of workers is what the cluster's CPUs (and
  GPUs) allow, at most one per chunk of items and at most ``--workers``.
* **Failures** — an item whose work raises comes back lost at once (it would raise
  again). A worker that *dies* (killed, out of memory, its node gone) has its chunk
  retried item by item on a fresh worker, so one bad case cannot take its neighbours
  with it; after ``max_retries`` retries the item comes back lost and the run goes on.
  A work object that cannot get ready on a worker (its ``on_worker`` raises) stops the
  run: that is a set-up problem every worker would have.
* **Test hook** — :data:`FAULT_ENV` (``LRP_VIEWER_FAULT_KILL_WORKER=case_a,case_b:3``)
  makes the worker running an item with that key kill itself with SIGKILL on its
  first attempt (``:N``: on its first N attempts), before any work. It exists so the
  test suite can kill a real worker at a known moment; it is read only when pytest is
  imported in the driver, so it never acts in a normal run.
"""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import socket
import sys
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from viewer.cli.executors import (
    INSTALL_HINT,
    ExecutorError,
    ExecutorFailed,
    ExecutorSpec,
    Outcome,
    Work,
    WorkerLost,
)

FAULT_ENV = "LRP_VIEWER_FAULT_KILL_WORKER"
MAX_START_FAILURES = 3  # workers that die before they are ready, in a row: the cluster cannot run the work


def import_ray() -> Any:
    """The ``ray`` module, or an :class:`ExecutorError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ExecutorError(f"--executor ray needs Ray, which is not installed ({exc}). Install it with: "
                            f"{INSTALL_HINT}") from None
    return ray


class RayWorker:
    """One Ray actor: one copy of the work (taken from the object store when the actor starts) on one device."""

    def __init__(self, work: Work, device: str) -> None:
        self.work = work
        self.device = device

    def ready(self) -> tuple[str, int]:
        self.work.on_worker(self.device)
        return socket.gethostname(), os.getpid()

    def run(self, items: list[Any], die: bool = False) -> list[Any]:
        if die:  # FAULT_ENV: the driver asked this worker to die as a killed worker would
            os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
        return list(self.work(items))


@dataclass(frozen=True)
class _Job:
    items: tuple[Any, ...]
    attempt: int = 1


class RayExecutor:
    """Connects (or starts a local Ray instance) on creation; :meth:`close` stops what it started."""

    kind = "ray"

    def __init__(self, spec: ExecutorSpec, notify: Callable[[str], None] | None = None) -> None:
        ray = import_ray()
        self._ray = ray
        self.spec = spec
        self._actors: list[Any] = []
        self._started = False
        notify = notify or (lambda text: None)
        if ray.is_initialized():
            where = "the Ray instance this process already uses"
        else:
            address = spec.address or "local"
            where = {"local": "a local Ray instance", "auto": "this machine's Ray cluster (--address auto)"}.get(
                address, f"the Ray cluster at {address}")
            notify(f"starting {where}" if address == "local" else f"connecting to {where}")
            kwargs: dict[str, Any] = {"address": address, "logging_level": logging.WARNING}
            if address == "local":
                kwargs["include_dashboard"] = False
            try:
                ray.init(**kwargs)
            except Exception as exc:  # noqa: BLE001 - Ray raises many types here; all mean "no cluster"
                why = _one_line(exc).rstrip(".")
                if address.startswith("ray://") and "client" not in why.lower():
                    why += ' (ray:// addresses need Ray Client: pip install "ray[client]")'
                raise ExecutorError(f"Cannot use {where}: {why}. Start a cluster with 'ray start --head' and pass "
                                    "--address auto on one of its nodes, or leave out --address to start a local "
                                    "Ray instance.") from None
            self._started = True
        try:
            self._size_workers(ray.cluster_resources())
        except BaseException:
            self.close()
            raise
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        gpus = f", {self.gpus_per_task:g} GPU" if self.gpus_per_task else ""
        self.description = (f"Ray: up to {self.workers} worker(s) with {self.cpus_per_task:g} CPU{gpus} each, "
                            f"on {nodes} node(s) of {where}")

    def _size_workers(self, resources: dict[str, float]) -> None:
        spec = self.spec
        cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        per_gpu = spec.gpus_per_task
        if per_gpu is None:
            per_gpu = 1.0 if gpus >= 1 and spec.device != "cpu" else 0.0
        if spec.device == "cuda" and not per_gpu:
            raise ExecutorError("--device cuda, but the Ray cluster has no GPUs. Use --device cpu (or auto), or add "
                                "GPU nodes to the cluster.")
        if per_gpu > gpus:
            raise ExecutorError(f"--gpus-per-task {per_gpu:g}, but the Ray cluster has {gpus:g} GPUs. Use --device "
                                "cpu, a smaller --gpus-per-task, or add GPU nodes.")
        if spec.cpus_per_task > cpus:
            raise ExecutorError(f"--cpus-per-task {spec.cpus_per_task:g}, but the Ray cluster has {cpus:g} CPUs.")
        count = math.floor(cpus / spec.cpus_per_task + 1e-9)
        if per_gpu:
            count = min(count, math.floor(gpus / per_gpu + 1e-9))
        self.workers = max(1, min(count, spec.workers or count))
        self.cpus_per_task = spec.cpus_per_task
        self.gpus_per_task = per_gpu
        self.device = "cuda" if per_gpu else "cpu"

    def map(self, work: Work, items: Sequence[Any], *, chunk: int = 1,
            key: Callable[[Any], str] = str) -> Iterator[Outcome]:
        """Outcomes in the order items finish; retried items come back later, marked with their attempt."""
        from ray.exceptions import RayError, RayTaskError

        ray = self._ray
        chunk = max(1, chunk)
        queue = deque(_Job(tuple(items[i:i + chunk])) for i in range(0, len(items), chunk))
        if not queue:
            return
        faults = _faults()
        work_ref = ray.put(work)  # once: every worker reads this one copy
        actor_class = ray.remote(RayWorker).options(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
                                                    max_restarts=0, max_task_retries=0)
        pending: dict[Any, tuple[Any, _Job | None]] = {}  # object ref -> (actor, job; None while getting ready)
        idle: list[Any] = []
        start_failures = 0

        def spawn() -> None:
            actor = actor_class.remote(work_ref, self.device)
            self._actors.append(actor)
            pending[actor.ready.remote()] = (actor, None)

        for _ in range(min(self.workers, len(queue))):
            spawn()
        while True:
            while queue and idle:
                actor, job = idle.pop(), queue.popleft()
                die = any(faults.get(key(item), 0) >= job.attempt for item in job.items)
                pending[actor.run.remote(list(job.items), die)] = (actor, job)
            if not pending:
                if not queue:
                    break
                spawn()
            [ref], _ = ray.wait(list(pending), num_returns=1)
            actor, job = pending.pop(ref)
            try:
                value = ray.get(ref)
            except RayTaskError as exc:  # the work raised: it would raise again
                cause = getattr(exc, "cause", None) or exc
                if job is None:
                    raise ExecutorFailed(f"A Ray worker could not get ready: {_one_line(cause)}") from None
                self._release(actor, idle, queue)
                error = cause if isinstance(cause, Exception) else WorkerLost(_one_line(cause))
                for item in job.items:
                    yield Outcome(lost=item, error=error, attempt=job.attempt)
                continue
            except RayError as exc:  # the worker died (killed, out of memory, node lost)
                self._forget(actor)
                reason = _death(exc)
                if job is None:
                    start_failures += 1
                    if start_failures >= MAX_START_FAILURES:
                        raise ExecutorFailed(
                            f"Ray workers die before they are ready ({reason}). Every node needs lrp-viewer and its "
                            "dependencies installed (the same version as here); see the Ray logs of the node.")
                else:
                    for item in job.items:
                        if job.attempt <= self.spec.max_retries:
                            queue.append(_Job((item,), job.attempt + 1))
                        else:
                            yield Outcome(lost=item, attempt=job.attempt, error=WorkerLost(
                                f"its Ray worker died on each of {job.attempt} attempt(s); last: {reason}"))
                if queue and len(idle) + len(pending) < self.workers:
                    spawn()
                continue
            self._release(actor, idle, queue)
            if job is None:
                start_failures = 0
                continue
            for result in value:
                yield Outcome(result, attempt=job.attempt)

    def _release(self, actor: Any, idle: list[Any], queue: deque) -> None:
        """An actor with nothing left to do stops now, so its CPUs and GPUs go back to the cluster."""
        if queue:
            idle.append(actor)
        else:
            self._forget(actor)

    def _forget(self, actor: Any) -> None:
        if actor in self._actors:
            self._actors.remove(actor)
        try:
            self._ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def close(self) -> None:
        for actor in list(self._actors):
            self._forget(actor)
        if self._started:
            self._started = False
            self._ray.shutdown()


def _faults() -> dict[str, int]:
    """Item keys -> how many first attempts die (:data:`FAULT_ENV`); empty outside pytest."""
    text = os.environ.get(FAULT_ENV, "")
    if not text or "pytest" not in sys.modules:
        return {}
    faults = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, count = part.partition(":")
        faults[name] = int(count) if count.isdigit() else 1
    return faults


def _death(exc: BaseException) -> str:
    """Ray's long death notice cut to what a summary cell needs: which worker, where, and why."""
    text = str(exc)
    pid = re.search(r"\bpid: (\d+)", text)
    ip = re.search(r"\bip: (\S+)", text)
    detail = re.search(r"Worker exit detail: (.*?)(?: Some common causes|\n|$)", text)
    where = f"worker pid {pid.group(1)} on {ip.group(1)}" if pid and ip else "the worker"
    why = detail.group(1).strip() if detail else _one_line(exc)[:200]
    return f"{type(exc).__name__}, {where}: {why}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
