"""One revision of a model: choose channels, then train only them, freeze them, or prune them.

Modes (what the selected channels are for):

* ``correct`` — the channels that carry the most relevance *into the unwanted region*
  (the shortcut's carriers) are trained on the training cases, all others stay frozen;
* ``preserve`` — the channels that carry the most relevance *for the task to keep*
  (the reference cases, whole input) stay frozen, all others train (as in
  explain-to-not-forget);
* ``prune`` — the channels that carry the unwanted relevance are switched off, no
  training (as in pruning by explaining);
* ``full`` — plain fine-tuning of every parameter (the baseline);
* ``rrr`` — plain fine-tuning with the right-for-the-right-reasons penalty on the
  input gradient inside the unwanted region.

Selections (how ``correct``, ``preserve`` and ``prune`` rank channels): ``relevance``
(the method), ``random`` (the control: as many channels in each layer as the relevance
selection takes, drawn at random), ``taylor`` and ``magnitude`` (see :mod:`.scores`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

from viewer.revise.channels import ChannelMap, channel_map
from viewer.revise.errors import ReviseError
from viewer.revise.masked import UpdatePlan, full_plan, masked_plan
from viewer.revise.prune import macs, prune
from viewer.revise.scores import magnitude_scores, relevance_scores, taylor_scores
from viewer.revise.selection import ChannelMask, check_fraction, random_like, top_fraction
from viewer.revise.train import TrainConfig, TrainOutcome, fine_tune

MODES = ("correct", "preserve", "prune", "full", "rrr")
SELECTIONS = ("relevance", "random", "taylor", "magnitude")
MASKED_MODES = ("correct", "preserve", "prune")
REGION_MODES = ("correct", "prune", "rrr")


@dataclass(frozen=True, eq=False)
class CaseSet:
    """Prepared model inputs of labelled cases: ``x`` (N, C, *spatial), ``y`` (N,) class
    indices, ``region`` (N, 1, *spatial) bool or None, ``ids`` for reports."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    region: torch.Tensor | None = None
    ids: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, keep: torch.Tensor) -> "CaseSet":
        ids = tuple(i for i, k in zip(self.ids, keep.tolist()) if k) if self.ids else ()
        region = None if self.region is None else self.region[keep]
        return CaseSet(self.name, self.x[keep], self.y[keep], region, ids)

    def labelled(self) -> "CaseSet":
        """Only the cases with a label (class index ≥ 0)."""
        return self.subset(self.y >= 0)

    def with_region(self) -> "CaseSet":
        """Only the cases whose region has at least one voxel."""
        if self.region is None:
            return CaseSet(self.name, self.x[:0], self.y[:0], None, ())
        return self.subset(self.region.flatten(1).any(1))


@dataclass(frozen=True)
class RevisePlan:
    """Everything that decides a revision; ``lrp`` holds LRP parameters (low, high …)."""

    mode: str = "correct"
    fraction: float = 0.05
    selection: str = "relevance"
    layers: tuple[str, ...] | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str = "epsilon-plus"
    lrp: Mapping[str, Any] = field(default_factory=dict)
    selection_seed: int = 0
    target: str | int | None = None  # whose relevance ranks: "predicted", "label", a class; None: the mode's own

    def check(self) -> None:
        if self.mode not in MODES:
            raise ReviseError(f"Unknown mode {self.mode!r}; choose one of {', '.join(MODES)}.")
        if self.selection not in SELECTIONS:
            raise ReviseError(f"Unknown selection {self.selection!r}; choose one of {', '.join(SELECTIONS)}.")
        check_fraction(self.fraction)
        if self.mode == "rrr" and self.train.rrr_weight <= 0:
            raise ReviseError("Mode 'rrr' needs a positive penalty weight (rrr_weight).")
        if not (self.target in (None, "predicted", "label") or isinstance(self.target, int)):
            raise ReviseError(f"The ranking target must be 'predicted', 'label' or a class number, got {self.target!r}.")


@dataclass(frozen=True, eq=False)
class Revision:
    """What a revision did: the channel mask (None for full/rrr), what trained, what it cost."""

    plan: RevisePlan
    cmap: ChannelMap
    mask: ChannelMask | None
    update: UpdatePlan | None
    outcome: TrainOutcome | None
    zeroed: int = 0
    macs_before: int = 0
    macs_after: int = 0
    selection_seconds: float = 0.0


def select_channels(module: nn.Module, cmap: ChannelMap, plan: RevisePlan, reference: CaseSet,
                    scores: Callable[..., dict[str, torch.Tensor]] = relevance_scores) -> ChannelMask:
    """The channels the mode acts on, chosen by ``plan.selection`` on the reference cases.

    ``scores`` computes the relevance ranking (:func:`relevance_scores` or a drop-in with
    its signature, e.g. one that spreads the reference cases over a Ray cluster).
    """
    if plan.selection == "magnitude":
        return top_fraction(magnitude_scores(module, cmap), plan.fraction)
    if plan.selection == "taylor":
        if bool((reference.y < 0).any()):
            raise ReviseError("The Taylor selection weighs each channel by the loss on the reference cases, so every "
                              "reference case needs a label.")
        return top_fraction(taylor_scores(module, cmap, reference.x, reference.y), plan.fraction)
    chosen = top_fraction(_relevance(module, cmap, plan, reference, scores), plan.fraction)
    return random_like(chosen, plan.selection_seed) if plan.selection == "random" else chosen


def _relevance(module: nn.Module, cmap: ChannelMap, plan: RevisePlan, reference: CaseSet,
               scores: Callable[..., dict[str, torch.Tensor]] = relevance_scores) -> dict[str, torch.Tensor]:
    if plan.mode == "preserve":  # the task to keep: by default the true class's relevance over the whole input
        return scores(module, cmap, reference.x, _targets(plan, reference, "label"), None, plan.preset, **plan.lrp)
    marked = reference.with_region()
    if len(marked) == 0:
        raise ReviseError(f"None of the {len(reference)} reference case(s) has a non-empty region, so there is no "
                          "unwanted relevance to measure; check the region masks.")
    # the shortcut acts on what the model says: by default explain its predictions
    return scores(module, cmap, marked.x, _targets(plan, marked, "predicted"), marked.region, plan.preset, **plan.lrp)


def _targets(plan: RevisePlan, cases: CaseSet, default: str) -> torch.Tensor | None:
    """One class per case (None: each case's predicted class)."""
    target = default if plan.target is None else plan.target
    if target == "predicted":
        return None
    if target == "label":
        if bool((cases.y < 0).any()):
            raise ReviseError("Ranking by the relevance of the true class needs a label for every reference case.")
        return cases.y
    return torch.full((len(cases),), int(target), dtype=torch.long)


def revise(
    module: nn.Module,
    plan: RevisePlan,
    reference: CaseSet,
    train: CaseSet | None = None,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    resume: Mapping[str, Any] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    mask: ChannelMask | None = None,
) -> Revision:
    """Revise ``module`` in place as ``plan`` says; returns what was done.

    ``reference`` ranks the channels (cases with regions for correct/prune, cases of
    the task to keep for preserve); ``train`` are the cases to fine-tune on (all modes
    but prune). ``mask`` skips the selection (a resumed run passes the one it saved).
    """
    plan.check()
    if len(reference) == 0:
        raise ReviseError("No reference cases: the revision needs cases to rank channels on.")
    if plan.mode != "prune" and (train is None or len(train) == 0):
        raise ReviseError(f"Mode {plan.mode!r} trains the model and needs training cases with labels.")
    if plan.mode in ("rrr",) and (train is None or train.region is None):
        raise ReviseError("Mode 'rrr' needs a region for every training case (--region-pattern).")
    module.eval()
    cmap = channel_map(module, reference.x, list(plan.layers) if plan.layers else None)
    total_macs = macs(cmap)
    t0 = time.perf_counter()
    if plan.mode in MASKED_MODES and mask is None:
        mask = select_channels(module, cmap, plan, reference)
    seconds = time.perf_counter() - t0
    if plan.mode == "prune":
        assert mask is not None
        zeroed = prune(module, cmap, mask)
        return Revision(plan, cmap, mask, None, None, zeroed, total_macs, macs(cmap, mask), seconds)
    if plan.mode == "correct":
        update = masked_plan(module, cmap, mask)
    elif plan.mode == "preserve":
        update = masked_plan(module, cmap, mask.complement(), train_others=True)
    else:
        update = full_plan(module)
    assert train is not None
    region = train.region.float() if (train.region is not None and plan.train.rrr_weight > 0) else None
    outcome = fine_tune(module, train.x, train.y, update, plan.train, region, on_epoch, resume, progress)
    return Revision(plan, cmap, mask, update, outcome, 0, total_macs, total_macs, seconds)
