"""Channel relevance on the reference set, spread over an executor (``lrp-viewer revise --executor ray``).

:func:`viewer.revise.scores.relevance_scores` sums each channel's relevance over the
reference cases, and a sum splits into parts: the cases go out in chunks of
:data:`CHUNK`, each worker scores its chunk with that same function, and this process
adds the parts in chunk order (so the result does not depend on which worker finished
first). The model travels to each worker once. A chunk whose worker keeps dying makes
the whole ranking impossible, so it stops the command (:class:`WorkerLost`).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch

from viewer.cli.executors import Executor, ExecutorError, ExecutorSpec, open_executor
from viewer.revise.errors import ReviseError
from viewer.revise.scores import relevance_scores

CHUNK = 8  # reference cases per task: small enough to spread a few hundred cases, large enough to batch

Scores = Callable[..., dict[str, torch.Tensor]]


class ChannelScoring:
    """Work for an executor: ``(index, x, targets, region)`` parts in, ``(index, scores)`` out."""

    def __init__(self, module: torch.nn.Module, cmap: Any, preset: str, params: dict[str, Any]) -> None:
        self.module, self.cmap, self.preset, self.params = module, cmap, preset, params
        self.device = "cpu"

    def on_worker(self, device: str) -> None:
        self.device = device
        self.module.to(device)

    def __call__(self, parts: list[tuple]) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        for index, x, targets, region in parts:
            region = None if region is None else region.to(self.device)
            yield index, relevance_scores(self.module, self.cmap, x.to(self.device), targets, region, self.preset,
                                          **self.params)


def spread(executor: Executor, chunk: int | None = None) -> Scores:
    """A drop-in for :func:`relevance_scores` that scores the cases on ``executor``, ``chunk`` (default
    :data:`CHUNK`) cases per task."""

    def scores(module: torch.nn.Module, cmap: Any, x: torch.Tensor, targets: torch.Tensor | None = None,
               region: torch.Tensor | None = None, preset: str = "epsilon-plus", **params: Any) -> dict[str, Any]:
        if len(x) == 0:
            return relevance_scores(module, cmap, x, targets, region, preset, **params)  # its own clear error
        size = chunk or CHUNK
        parts = [(i // size, x[i:i + size], None if targets is None else targets[i:i + size],
                  None if region is None else region[i:i + size]) for i in range(0, len(x), size)]
        got: dict[int, dict[str, torch.Tensor]] = {}
        for outcome in executor.map(ChannelScoring(module, cmap, preset, dict(params)), parts):
            if not outcome.ok:
                raise outcome.error
            index, part = outcome.result
            got[index] = part
        names = list(got[0])
        return {name: sum((got[i][name] for i in range(1, len(parts))), got[0][name].clone()) for name in names}

    return scores


@contextlib.contextmanager
def relevance_scorer(spec: ExecutorSpec, needed: bool, notify: Callable[[str], None]) -> Iterator[Scores]:
    """``relevance_scores`` itself for the local executor (or when no relevance ranking runs),
    else the spread version, with the executor open for the block."""
    if spec.kind == "local" or not needed:
        yield relevance_scores
        return
    try:
        with open_executor(spec, notify=notify) as executor:
            notify(executor.description)
            yield spread(executor)
    except ExecutorError as exc:  # no Ray cluster there, no GPUs where asked: a usage error
        raise ReviseError(str(exc)) from None
