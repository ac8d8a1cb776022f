"""Fine-tuning loop shared by every arm: full, masked (targeted, random, Taylor) and RRR.

Every arm sees the same cases in the same order (one seeded generator), for the same
number of epochs, with the same optimiser (AdamW) — only what may change differs —
so that differences between arms come from the selection, not from the training.

Normalisation layers stay in evaluation mode: their running statistics are part of
the model too, and a revision that promises to change only chosen channels cannot
let the statistics of all the others drift.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from viewer.revise.channels import NORMS
from viewer.revise.errors import ReviseError
from viewer.revise.masked import UpdatePlan, optimizer_state_bytes, trainable


@dataclass(frozen=True)
class TrainConfig:
    """``rrr_weight`` > 0 adds the input-gradient penalty on the region (needs regions)."""

    epochs: int = 5
    lr: float = 1e-3
    batch: int = 32
    weight_decay: float = 1e-4
    seed: int = 0
    rrr_weight: float = 0.0


@dataclass(frozen=True)
class TrainOutcome:
    epochs: int
    steps: int
    seconds: float
    parameters_updated: int
    parameters_total: int
    optimizer_state_bytes: int
    final_loss: float


def rrr_penalty(module: nn.Module, x: torch.Tensor, region: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-for-the-right-reasons (Ross et al. 2017): the squared input gradient of the
    summed log-probabilities inside the unwanted region. Returns (logits, penalty per case)."""
    xx = x.detach().requires_grad_(True)
    out = module(xx)
    logp = F.log_softmax(out, dim=1).sum()
    (grad,) = torch.autograd.grad(logp, xx, create_graph=True)
    penalty = (grad * region).pow(2).flatten(1).sum(1)
    return out, penalty


def _train_mode(module: nn.Module) -> None:
    module.train()
    for m in module.modules():
        if isinstance(m, NORMS):
            m.eval()


def fine_tune(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    plan: UpdatePlan,
    config: TrainConfig,
    region: torch.Tensor | None = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    resume: Mapping[str, Any] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainOutcome:
    """Train ``module`` in place on ``(x, y)`` changing only what ``plan`` allows.

    ``on_epoch(epoch, checkpoint)`` is called after each epoch with everything needed
    to continue later (``resume=checkpoint``): the current parameter values, the
    optimiser state, the generator state, the time spent so far.
    ``progress(step, steps, loss)`` reports each optimiser step.
    """
    if config.epochs < 0:
        raise ReviseError(f"epochs must be 0 or more, got {config.epochs}.")
    if len(x) == 0 or len(x) != len(y):
        raise ReviseError(f"Training needs cases with labels; got {len(x)} inputs and {len(y)} labels.")
    if config.rrr_weight > 0 and region is None:
        raise ReviseError("The input-gradient (RRR) penalty needs a region for every training case.")
    gen = torch.Generator().manual_seed(int(config.seed))
    start_epoch, spent = 0, 0.0
    if resume is not None:
        with torch.no_grad():
            params = dict(module.named_parameters())
            for name, value in resume["weights"].items():
                params[name].copy_(value)
        gen.set_state(resume["generator"])
        start_epoch, spent = int(resume["epoch"]), float(resume["seconds"])
    batches = (len(x) + config.batch - 1) // config.batch
    steps, loss_value = start_epoch * batches, float("nan")
    updated = plan.parameters_updated(module)
    total = sum(p.numel() for p in module.parameters())
    was_training = module.training
    names = [n for n, _ in module.named_parameters()]
    with trainable(module, plan) as tensors:
        opt = torch.optim.AdamW(tensors, lr=config.lr, weight_decay=config.weight_decay) if tensors else None
        if resume is not None and opt is not None:
            opt.load_state_dict(resume["optimizer"])
        t0 = time.perf_counter()
        try:
            for epoch in range(start_epoch, config.epochs):
                _train_mode(module)
                order = torch.randperm(len(x), generator=gen)
                for i in range(0, len(x), config.batch):
                    idx = order[i : i + config.batch]
                    if opt is not None:
                        loss_value = _step(module, opt, x[idx], y[idx], None if region is None else region[idx], config)
                    steps += 1
                    if progress is not None:
                        progress(steps, config.epochs * batches, loss_value)
                if on_epoch is not None:
                    checkpoint = {
                        "epoch": epoch + 1,
                        "weights": {n: p.detach().clone() for n, p in _current(module, names).items()},
                        "optimizer": opt.state_dict() if opt is not None else {},
                        "generator": gen.get_state(),
                        "seconds": spent + time.perf_counter() - t0,
                    }
                    on_epoch(epoch + 1, checkpoint)
        finally:
            module.train(was_training)
        state_bytes = optimizer_state_bytes(opt) if opt is not None else 0
        seconds = spent + time.perf_counter() - t0
    module.eval()
    return TrainOutcome(config.epochs, steps, seconds, updated, total, state_bytes, loss_value)


def _step(module: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
          region: torch.Tensor | None, config: TrainConfig) -> float:
    opt.zero_grad(set_to_none=True)
    if config.rrr_weight > 0 and region is not None:
        out, penalty = rrr_penalty(module, x, region)
        loss = F.cross_entropy(out, y) + config.rrr_weight * penalty.mean()
    else:
        loss = F.cross_entropy(module(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())


def _current(module: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    """Parameter values as the model computes them now (parametrised tensors evaluated),
    under their ordinary names."""
    out = {}
    for name in names:
        path, _, attr = name.rpartition(".")
        out[name] = getattr(module.get_submodule(path) if path else module, attr)
    return out
