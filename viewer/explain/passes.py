"""Forward and gradient passes shared by the non-LRP attribution methods.

Every method here must leave the user's model exactly as it found it: parameters are
frozen only for the duration of a call (so autograd does not record weight gradients
nor keep activations before the layer it needs) and their ``requires_grad`` flags are
restored in a ``finally`` block; hooks never outlive the call. Models that return a
tuple or a dict are explained through its first tensor.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn

from viewer.explain.progress import Progress
from viewer.explain.result import Relevance
from viewer.explain.target import Target, primary_output


def forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model output as one tensor (``target.primary_output``: the first element of a
    tuple, the first tensor of a dict)."""
    raw = model(x)
    out, _ = primary_output(raw)
    if out is None:
        raise ValueError("The model returns no tensor (nor a tuple or dict whose first entry is one); "
                         f"got {type(raw).__name__}.")
    return out


@contextlib.contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Switch off ``requires_grad`` on every parameter, restoring each flag afterwards.

    Why: explanations only need gradients with respect to inputs or one activation;
    recording weight gradients would cost memory and time, and must never leak into the
    user's ``.grad`` fields. Normalisation layers left in training mode would update
    their running statistics on every forward pass, so those buffers are restored too.
    """
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    stats = [(b, b.clone()) for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._NormBase) and m.training
             for b in m.buffers(recurse=False)]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        with torch.no_grad():
            for buffer, saved in stats:
                buffer.copy_(saved)


def check_input(x: torch.Tensor) -> None:
    """Inputs are shaped (B, C, *spatial) with 2 or 3 spatial dims (B > 1: slices of a scan)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"The input must be a torch.Tensor, got {type(x).__name__}.")
    if x.ndim not in (4, 5) or x.shape[0] < 1:
        raise ValueError(f"The input must be shaped (B, C, H, W) or (B, C, D, H, W); got {tuple(x.shape)}.")


def sub_progress(parent: Progress | None, lo: float, hi: float) -> Progress | None:
    """A Progress reporting into [lo, hi] of ``parent`` and sharing its cancel flag."""
    if parent is None:
        return None
    callback = parent.callback

    def report(fraction: float) -> None:
        if callback is not None:
            callback(lo + (hi - lo) * fraction)

    return Progress(report, parent.cancel)


def per_sample(method: Callable[..., Relevance]) -> Callable[..., Relevance]:
    """Run a method written for one input on each element of a batch in turn.

    A 2D model on a 3D scan gets one slice per batch element; multi-sample methods
    already use the batch dim for their samples, so they explain slice by slice. The
    target is resolved once, on the whole batch, so every slice explains the same
    class. The merged result sums ``explained`` and ``input_sum`` over the batch (as
    LRP does) and keeps each slice's meta in ``meta["per_sample"]``.
    """

    @functools.wraps(method)
    def wrapper(model: nn.Module, x: torch.Tensor, target: Any = None, *, progress: Progress | None = None,
                **params: Any) -> Relevance:
        check_input(x)
        n = x.shape[0]
        if n == 1:
            return method(model, x, target, progress=progress, **params)
        with frozen_parameters(model):
            _, resolved = resolve_target(model, x, target)
        parts = [method(model, x[i:i + 1], resolved, progress=sub_progress(progress, i / n, (i + 1) / n), **params)
                 for i in range(n)]
        first = parts[0]
        return Relevance(
            relevance=torch.cat([p.relevance for p in parts]),
            output=torch.cat([p.output for p in parts]),
            target=resolved,
            method=first.method,
            preset=first.preset,
            params=first.params,
            explained=sum(float(p.explained) for p in parts),  # type: ignore[arg-type]
            input_sum=sum(float(p.input_sum) for p in parts),  # type: ignore[arg-type]
            absorbed=None,
            meta={"per_sample": [p.meta for p in parts]},
        )

    return wrapper


def resolve_target(model: nn.Module, x: torch.Tensor, target: Any) -> tuple[torch.Tensor, Target]:
    """One plain forward pass: the output (detached) and the resolved target."""
    with torch.no_grad():
        out = forward(model, x)
    return out.detach(), Target.resolve(target, out)


def input_gradients(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the target with respect to each input of a batch, and the target values.

    The batch elements are independent in an eval-mode network, so the gradient of the
    summed objective is the per-element gradient.
    """
    inputs = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        out = forward(model, inputs)
        values = target.value(out)
        (grad,) = torch.autograd.grad(values.sum(), inputs)
    return grad.detach(), values.detach()


def gradient_at(model: nn.Module, x: torch.Tensor, target: Any) -> tuple[torch.Tensor, torch.Tensor, Target]:
    """Input gradient, output and resolved target from one forward and one backward pass.

    Resolving the target from the same forward saves the extra pass a separate
    :func:`resolve_target` would cost (a third of a gradient).
    """
    inputs = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = forward(model, inputs)
        resolved = Target.resolve(target, out.detach())
        (grad,) = torch.autograd.grad(resolved.value(out).sum(), inputs)
    return grad.detach(), out.detach(), resolved


def target_values(
    model: nn.Module,
    make_batch: Callable[[int, int], torch.Tensor],
    total: int,
    target: Target,
    batch_size: int,
    progress: Progress | None,
) -> torch.Tensor:
    """Target values of ``total`` perturbed inputs, computed ``batch_size`` at a time.

    ``make_batch(start, stop)`` builds inputs ``start..stop-1``; building lazily keeps
    memory at one batch. Progress is reported and cancellation honoured between batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    values = []
    with torch.no_grad():
        for start in range(0, total, batch_size):
            if progress is not None:
                progress.step(start, total)
            stop = min(total, start + batch_size)
            values.append(target.value(forward(model, make_batch(start, stop))).detach())
    if progress is not None:
        progress.step(total, total)
    return torch.cat(values) if values else torch.zeros(0)


def make_relevance(
    relevance: torch.Tensor,
    output: torch.Tensor,
    target: Target,
    method: str,
    params: Mapping[str, Any],
    meta: Mapping[str, Any] | None = None,
) -> Relevance:
    """Wrap a map into the one result type, with the figures every method reports."""
    relevance = relevance.detach()
    return Relevance(
        relevance=relevance,
        output=output.detach(),
        target=target,
        method=method,
        preset=None,
        params=dict(params),
        explained=float(target.value(output).sum()),
        input_sum=float(relevance.sum()),
        absorbed=None,
        meta=dict(meta or {}),
    )
