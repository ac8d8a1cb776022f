"""The ledger of relevance absorbed on the way down, per operation.

Every LRP operation reports, in its backward, the relevance it received and the
relevance it passed on.  Their difference is what it absorbed, so
``explained == input_sum + absorbed`` holds whatever the rules do; that identity
alone cannot reveal a wrong rule (one that drops half of its relevance balances the
books just as well).  So each rule also reports the closed form of what it *should*
absorb: the share of its bias (or of any other constant term: a positional
embedding, a class token, a softmax's shift term) and the share of its stabiliser.
Whatever remains, ``absorbed - bias - stabiliser``, is relevance lost to something
that is neither, and :meth:`Book.summary` lists the operations where it is not zero.

Figures stay 0-dim tensors until the end of the backward (no device synchronisation
per layer); per batch row figures are kept while every tensor is batch-major.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

Tensor = torch.Tensor

# relative size of "absorbed by something else" above which a rule is reported as leaking,
# by the dtype of the forward pass (a half-precision forward rounds the denominators)
LEAK_TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 5e-3}


@dataclass(frozen=True)
class Site:
    """Where an operation sits: its order in the forward pass, the module that ran
    it, the kind of operation ("conv", "dense", "norm", "sum", "bias", "pool",
    "product", "softmax", "constant", ...) and the rule it used."""

    index: int
    layer: str
    kind: str
    rule: str


def _sum(t: Tensor) -> Tensor:
    """Sum in (at least) float32, pairwise: accurate without a float64 copy of ``t``."""
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.sum(dtype=torch.float32).double()
    return t.sum().double()


_SUMS_KEPT = 8  # relevance tensors whose sums are remembered (see Book._sum)


class Book:
    """Collects one entry per operation and backward call."""

    def __init__(self) -> None:
        self.entries: list[tuple[Site, Tensor, Tensor, Tensor | None, Tensor | None]] = []
        self.rows: list[Tensor] | None = []
        self.batch = 0
        self.active = True
        # set by a caller whose relevance starts in a few channels of a layer (conditional
        # passes): layers then run their rule on the channels that carry relevance only
        self.sparse = False
        # (tensor, channel dim, channel indices): the caller knows which channels of that
        # relevance tensor carry anything, so the layer it reaches need not look
        self.live: tuple[Tensor, int, Tensor] | None = None
        # whether convolutions still look for relevance confined to a few positions
        # (``sparse.support``); the first that finds it spread out turns this off
        self.spatial = True
        self.epoch = 0  # counts backward passes (see pooling.take_stash)
        self._sums: OrderedDict[int, tuple[weakref.ref, int, Tensor, Tensor | None]] = OrderedDict()

    def reset(self, batch: int = 0, active: bool = True) -> None:
        """Start a backward pass; ``active=False`` when nobody reads this pass's ledger:
        operations then skip their sums and closed forms (``absorb`` ignores them)."""
        self.entries = []
        self.rows = [] if batch > 1 and active else None
        self.batch = batch
        self.active = active
        self.spatial = True
        self.epoch += 1
        self._sums.clear()

    # -- recording ------------------------------------------------------------------------------
    def _sum(self, t: Tensor) -> tuple[Tensor, Tensor | None]:
        """Sum of a relevance tensor and its per-row sums (None when they cannot be split).

        The relevance one operation passes on is, unchanged, what the next one down
        receives (an activation hands it through as it is), so both would sum the
        same tensor: the sums of the last few tensors are remembered by identity and
        version, which halves the ledger's passes over the activations."""
        key = id(t)
        hit = self._sums.get(key)
        if hit is not None and hit[0]() is t and hit[1] == t._version:
            return hit[2], hit[3]
        total = _sum(t)
        rows = None
        if self.rows is not None and t.dim() > 0 and t.shape[0] == self.batch:
            rows = t.reshape(self.batch, -1).sum(1, dtype=torch.float64)
        try:
            self._sums[key] = (weakref.ref(t), t._version, total, rows)
        except TypeError:
            return total, rows
        if len(self._sums) > _SUMS_KEPT:
            self._sums.popitem(last=False)
        return total, rows

    def absorb(self, site: Site, received: Tensor, *passed: Tensor | None,
               bias: Tensor | None = None, den: Tensor | None = None, stab: Tensor | None = None) -> None:
        """``received`` relevance of the output, ``passed`` relevances of the inputs.

        A rule with a closed form gives ``bias``, the share of constant terms, and
        either ``stab``, the stabiliser's share, or ``den``, what it would pass on
        without its stabiliser (Σ R/(z ± ε) · z; the stabiliser's share is then
        ``received - den``)."""
        if not self.active:
            return
        got, rows = self._sum(received)
        if stab is None and den is not None:
            stab = got - den.double()
        elif stab is not None:
            stab = stab.double()
        out = torch.zeros((), dtype=torch.float64, device=got.device)
        if rows is None:
            self.rows = None
        for p in passed:
            if p is not None:
                total, r = self._sum(p)
                out = out + total
                if rows is not None:
                    if r is None:
                        self.rows = None
                    rows = None if r is None else rows - r
        self.entries.append((site, got, out, bias, stab))
        if rows is not None and self.rows is not None:
            self.rows.append(rows)

    def absorb_constant(self, site: Site, part: Tensor) -> None:
        """Relevance that lands on a constant (a class token concatenated to the input)."""
        if not self.active:
            return
        got, rows = self._sum(part)
        self.entries.append((site, got, torch.zeros_like(got), got, torch.zeros_like(got)))
        if rows is None:
            self.rows = None
        elif self.rows is not None:
            self.rows.append(rows)

    def absorb_dropped(self, site: Site, received: Tensor, passed: Tensor) -> None:
        """An operation that passes part of its relevance on unchanged and drops the
        rest on constants (padding, filled-in masks): everything it absorbs is a constant's share."""
        if not self.active:
            return
        share = self._sum(received)[0] - self._sum(passed)[0]
        self.absorb(site, received, passed, bias=share, stab=torch.zeros_like(share))

    # -- reading ------------------------------------------------------------------------------
    def total(self) -> float:
        if not self.entries:
            return 0.0
        return float(torch.stack([e[1] - e[2] for e in self.entries]).sum())

    def per_row(self) -> list[float] | None:
        """Absorbed relevance per batch row, or None when it cannot be split."""
        if self.rows is None:
            return None
        if not self.rows:
            return [0.0] * self.batch
        return [float(v) for v in torch.stack(self.rows).sum(0)]

    def summary(self, dtype: torch.dtype, explained: float = 0.0) -> dict[str, Any]:
        """``absorbed_by_kind``, ``ledger`` (one row per operation, forward order, calls
        of the same operation merged) and ``ledger_leaks`` (rows where relevance went
        to something that is neither a bias nor a stabiliser, by more than the rounding
        of ``dtype``, the forward pass's, relative to the row's figures plus the
        explained value: signed relevance can sum to almost nothing at one layer)."""
        if not self.entries:
            return {"absorbed_by_kind": {}, "ledger": [], "ledger_leaks": []}
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=self.entries[0][1].device)
        table = torch.stack([torch.stack([e[1], e[2], nan if e[3] is None else e[3].double(),
                                          nan if e[4] is None else e[4].double()]) for e in self.entries])
        values = table.cpu().tolist()
        merged: dict[Site, list[float]] = {}
        for (site, *_), (got, out, bias, stab) in zip(self.entries, values):
            row = merged.setdefault(site, [0.0, 0.0, 0.0, 0.0])
            row[0] += got
            row[1] += out
            row[2] += bias
            row[3] += stab
        by_kind: dict[str, float] = {}
        ledger, leaks = [], []
        tol = LEAK_TOLERANCE.get(dtype, 1e-2)
        for site in sorted(merged, key=lambda s: s.index):
            got, out, bias, stab = merged[site]
            absorbed = got - out
            by_kind[site.kind] = by_kind.get(site.kind, 0.0) + absorbed
            closed = bias == bias and stab == stab  # NaN: the rule has no closed form
            other = absorbed - bias - stab if closed else absorbed
            row = {"layer": site.layer, "op": site.kind, "rule": site.rule, "in": got, "out": out,
                   "bias": bias if closed else None, "stabiliser": stab if closed else None, "other": other}
            ledger.append(row)
            scale = abs(got) + abs(out) + (abs(bias) + abs(stab) if closed else 0.0) + abs(explained)
            if abs(other) > tol * max(scale, 1e-300):
                leaks.append(row)
        return {"absorbed_by_kind": by_kind, "ledger": ledger, "ledger_leaks": leaks}
