"""LRP rules for linear layers: how relevance arriving at a layer's output is shared
among its inputs.

Each rule has two halves.  ``forward`` runs inside the one forward pass of the
explained model: it computes the layer output and keeps only what ``backward``
will need (typically the input and one denominator).  ``backward`` turns the
relevance of the output into relevance of the input using the transposed map, so no
layer is evaluated again during the backward pass.

The formulas follow the standard definitions (Bach et al. 2015, Montavon et al.
2017/2019) in the convention of zennit, so results are comparable across tools:
stabilisers add ``eps`` with the sign of the denominator (zero counted positive),
ZPlus/AlphaBeta/Gamma split inputs and weights into positive and negative parts
and only the "matching" half keeps the bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from viewer.explain.lrp.affine import AffineOp, derived, divide, stabilize

Tensor = torch.Tensor


def _pos(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.clamp(min=0)


def _neg(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.clamp(max=0)


def _wpos(w: Tensor) -> Tensor:
    """W⁺, cached per weight (see affine.derived)."""
    return derived(w, ("pos",), lambda: w.clamp(min=0))


def _wneg(w: Tensor) -> Tensor:
    return derived(w, ("neg",), lambda: w.clamp(max=0))


def dot(a: Tensor, b: Tensor) -> Tensor:
    """Σ a·b over all elements, as a float64 scalar (one pass, no temporary)."""
    if a.dtype != b.dtype:
        b = b.to(a.dtype)
    return torch.dot(a.reshape(-1), b.reshape(-1)).double()


def channel_sums(op: AffineOp, g: Tensor) -> Tensor:
    """Σ of ``g`` over everything but the layer's output channels."""
    dims = tuple(i for i in range(g.dim()) if i != (g.dim() - 1 if op.kind == "linear" else 1))
    return g.sum(dims)


def bias_share(op: AffineOp, g: Tensor, b: Tensor | None) -> Tensor:
    """Σ g·b with the bias broadcast like the layer adds it (per output channel)."""
    if b is None:
        return g.new_zeros((), dtype=torch.float64)
    return dot(channel_sums(op, g), b)


def _plus_eps(op: AffineOp, w: Tensor, b: Tensor | None, eps: float) -> Tensor:
    """``b + ε`` (or ε alone) as the layer adds a bias: per output channel. Adding the
    stabiliser as part of the bias costs no pass over the output."""
    if b is not None:
        return b + eps
    channels = w.shape[1] * op.groups if op.kind == "conv_transpose" else w.shape[0]
    return w.new_full((channels,), eps)


def _wide(x: Tensor) -> bool:
    """float32/float64: a stabiliser of 1e-6 survives being added to a bias."""
    return x.dtype in (torch.float32, torch.float64)


def report(shares: list | None, bias: Tensor, den: Tensor | None = None, stab: Tensor | None = None) -> None:
    """Hand a rule's closed-form shares to the ledger (see ``ledger.Book.absorb``):
    the bias's share and either ``den`` or the stabiliser's share ``stab``."""
    if shares is not None:
        shares.append((bias, den, stab))


def _small(q: Tensor, r) -> Tensor:
    """The quotient ``q`` as its values at a max pooling's winners when ``r`` is pooled
    relevance (its per-channel sums are the same, at a fraction of the size)."""
    return q if isinstance(r, Tensor) else r.quotient


def mark_nonneg(t: Tensor) -> Tensor:
    """Record that ``t`` holds no negative value (a ReLU output), valid until ``t`` is
    modified in place (the mark carries the tensor's version)."""
    t._lrp_nonneg = t._version
    return t


def marked_nonneg(t: Tensor) -> bool:
    mark = getattr(t, "_lrp_nonneg", None)
    return mark is not None and mark == t._version


def _nonneg(x: Tensor) -> bool:
    """Whether the x⁻ terms can be skipped: known for a marked ReLU output, otherwise
    one reduction over x."""
    return marked_nonneg(x) or bool(x.min() >= 0)


@dataclass(frozen=True)
class Rule:
    """Base class. ``name`` is the key used in presets and overrides."""

    name = "rule"
    affine = True  # applies to conv / dense layers

    def forward(self, op: AffineOp, x: Tensor, w: Tensor, b: Tensor | None) -> tuple[Tensor, tuple]:
        """Return the layer output and the tensors ``backward`` needs."""
        raise NotImplementedError

    def backward(self, op: AffineOp, saved: tuple, w: Tensor, b: Tensor | None, r: Tensor,
                 shares: list | None = None) -> Tensor:
        """Relevance of the input; when ``shares`` is a list, append ``(bias share,
        relevance the unstabilised rule passes on including the bias share)``, the
        closed forms the ledger checks the result against."""
        raise NotImplementedError

    pooled = False  # see takes_pooled

    def takes_pooled(self, saved: tuple) -> bool:
        """Whether ``backward`` reads its relevance only through ``op.quotient`` /
        ``divide``, so that it can take relevance at a max pooling's input in pooled
        form (``pooling.Pooled``)."""
        return self.pooled


@dataclass(frozen=True)
class Epsilon(Rule):
    """z-rule with a stabiliser: R_i = x_i Σ_j w_ij R_j / (z_j ± ε). ε=0 gives LRP-0."""

    epsilon: float = 1e-6
    name = "epsilon"
    pooled = True

    def forward(self, op, x, w, b):
        y = op.forward(x, w, b)
        return y, (x, y)

    def backward(self, op, saved, w, b, r, shares=None):
        x, y = saved
        g = divide(r, y, self.epsilon)
        if shares is not None:
            report(shares, bias_share(op, g, b), dot(g, y))
        return op.vjp(g, w, x).mul_(x)


@dataclass(frozen=True)
class ZPlus(Rule):
    """Only positive contributions count (alpha=1, beta=0); relevance stays positive."""

    stabilizer: float = 1e-6
    name = "zplus"

    def forward(self, op, x, w, b):
        y = op.forward(x, w, b)
        if _nonneg(x):
            # z ≥ 0 (x, W⁺ and b⁺ are): its stabilised form z + ε is made here, once, so
            # the backward divides in one pass; ε goes in with the bias, or is added in
            # float32 after a half-precision map (in half precision it would round away)
            if _wide(x):
                z = op.forward(x, _wpos(w), _plus_eps(op, w, _pos(b), self.stabilizer))
            else:
                z = op.forward(x, _wpos(w), _pos(b)).float().add_(self.stabilizer)
            return y, (x, z, True)
        z = op.forward(x.clamp(min=0), _wpos(w), _pos(b)) + op.forward(x.clamp(max=0), _wneg(w), None)
        return y, (x, z, False)

    def takes_pooled(self, saved):
        return saved[2] is True

    def backward(self, op, saved, w, b, r, shares=None):
        x, z, nonneg = saved
        if nonneg:
            g = op.quotient(r, z, w, x)
            if shares is not None:
                # Σ g·(z + ε) = Σ r: the stabiliser took ε·Σg, the bias Σ g·b⁺
                sums = channel_sums(op, _small(g, r))
                bias = g.new_zeros((), dtype=torch.float64) if b is None else dot(sums, _pos(b))
                report(shares, bias, stab=sums.sum(dtype=torch.float64) * self.stabilizer)
            return op.vjp(g, _wpos(w), x).mul_(x)
        g = divide(r, z, self.stabilizer)
        if shares is not None:
            report(shares, bias_share(op, g, _pos(b)), dot(g, z))
        up, un = op.vjp_pair(g, _wpos(w), _wneg(w), x)
        return up.mul_(x.clamp(min=0)).add_(un.mul_(x.clamp(max=0)))


@dataclass(frozen=True)
class AlphaBeta(Rule):
    """Positive contributions weighted by alpha, negative ones by beta (alpha - beta = 1)."""

    alpha: float = 2.0
    beta: float = 1.0
    stabilizer: float = 1e-6
    name = "alphabeta"

    def __post_init__(self):
        if self.alpha < 0 or self.beta < 0 or abs(self.alpha - self.beta - 1) > 1e-9:
            raise ValueError(f"AlphaBeta needs alpha, beta >= 0 and alpha - beta = 1; got alpha={self.alpha}, beta={self.beta}.")

    def forward(self, op, x, w, b):
        y = op.forward(x, w, b)
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        nonneg = _nonneg(x)
        zp = op.forward(xp, wp, _pos(b))
        zn = op.forward(xp, wn, _neg(b)) if self.beta else None
        if not nonneg:
            zp = zp + op.forward(xn, wn, None)
            if zn is not None:
                zn = zn + op.forward(xn, wp, None)
        return y, (x, zp, zn, nonneg)

    def backward(self, op, saved, w, b, r, shares=None):
        x, zp, zn, nonneg = saved
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        a = r / stabilize(zp, self.stabilizer)
        if shares is not None:
            bias, den = self.alpha * bias_share(op, a, _pos(b)), self.alpha * dot(a, zp)
            if zn is not None:
                c = r / stabilize(zn, self.stabilizer)
                bias, den = bias - self.beta * bias_share(op, c, _neg(b)), den - self.beta * dot(c, zn)
            report(shares, bias, den)
        xp = x if nonneg else x.clamp(min=0)
        out = self.alpha * xp * op.vjp(a, wp, x)
        if not nonneg:
            out = out + self.alpha * x.clamp(max=0) * op.vjp(a, wn, x)
        if zn is not None:
            c = r / stabilize(zn, self.stabilizer)
            out = out - self.beta * xp * op.vjp(c, wn, x)
            if not nonneg:
                out = out - self.beta * x.clamp(max=0) * op.vjp(c, wp, x)
        return out


@dataclass(frozen=True)
class Gamma(Rule):
    """Positive weights boosted by gamma: W + γW⁺ where the output is positive,
    W + γW⁻ where it is negative (the generalised form that allows signed inputs)."""

    gamma: float = 0.25
    stabilizer: float = 1e-6
    name = "gamma"

    def _weights(self, w, b):
        wp = w + self.gamma * w.clamp(min=0)
        wn = w + self.gamma * w.clamp(max=0)
        bp = None if b is None else b + self.gamma * b.clamp(min=0)
        bn = None if b is None else b + self.gamma * b.clamp(max=0)
        return wp, wn, bp, bn

    def _wp(self, w):
        return derived(w, ("gamma+", self.gamma), lambda: w + self.gamma * w.clamp(min=0))

    def _wn(self, w):
        return derived(w, ("gamma-", self.gamma), lambda: w + self.gamma * w.clamp(max=0))

    def forward(self, op, x, w, b):
        y = op.forward(x, w, b)
        if _nonneg(x):
            # One extra map: z⁺ = x·(W+γW⁺); the x·(W+γW⁻) denominator follows from
            # y and z⁺ (both are y plus a multiple of x·W⁺): (2+γ)y - z⁺.
            # Where y = 0 the rule passes nothing on: an infinite denominator says so
            # without a separate mask (r / ∞ = 0).
            bp = None if b is None else b + self.gamma * b.clamp(min=0)
            zero = y == 0
            # stabilised here, once: z⁺ ≥ y > 0 where y > 0, and (2+γ)y - (z⁺ + ε) is the
            # other denominator minus ε, negative where y < 0; ε goes in with z⁺'s bias,
            # or in float32 after a half-precision map (in half precision it would round away)
            yy = y
            if _wide(x):
                zpos = op.forward(x, self._wp(w), _plus_eps(op, w, bp, self.stabilizer))
            else:
                zpos = op.forward(x, self._wp(w), bp).float().add_(self.stabilizer)
                yy = y.float()
            neg = yy.mul(2 + self.gamma).sub_(zpos)
            den = torch.where(yy > 0, zpos, neg, out=neg)
            any_zero = bool(zero.any())
            if any_zero:
                den.masked_fill_(zero, float("inf"))
            return y, (x, den, any_zero, True)
        # signed input: with A = x⁺·W⁺ + x⁻·W⁻ + b⁺ (every positive contribution),
        # z⁺ = y + γA and z⁻ = y + γ(y − A), since y = A + (x⁺·W⁻ + x⁻·W⁺ + b⁻):
        # two extra maps instead of four
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        pos = op.forward(xp, _wpos(w), _pos(b)).add_(op.forward(xn, _wneg(w), None))
        yy = y
        if y.dtype in (torch.float16, torch.bfloat16):  # z⁻ is a difference: form it in float32
            yy, pos = y.float(), pos.float()
        zpos = torch.add(yy, pos, alpha=self.gamma)
        zneg = yy.mul(1 + self.gamma).sub_(pos, alpha=self.gamma)
        return y, (x, zpos, zneg, torch.sign(y))

    def takes_pooled(self, saved):
        return saved[3] is True

    def backward(self, op, saved, w, b, r, shares=None):
        x, first, second, flag = saved
        if flag is True:  # x ≥ 0, the denominator stabilised in the forward
            return self._backward_nonneg(op, x, first, second, w, b, r, shares)
        wp, wn = self._wp(w), self._wn(w)
        sign = flag
        a = torch.where(sign > 0, r, torch.zeros_like(r)) / stabilize(first, self.stabilizer)
        c = torch.where(sign < 0, r, torch.zeros_like(r)) / stabilize(second, self.stabilizer)
        if shares is not None:
            bias = a.new_zeros((), dtype=torch.float64)
            if b is not None:
                _, _, bp, bn = self._weights(w.new_zeros(()), b)
                bias = bias_share(op, a, bp) + bias_share(op, c, bn)
            report(shares, bias, dot(a, first) + dot(c, second))
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        return xp * (op.vjp(a, wp, x) + op.vjp(c, wn, x)) + xn * (op.vjp(a, wn, x) + op.vjp(c, wp, x))

    def _backward_nonneg(self, op, x, den, any_zero, w, b, r, shares):
        """x ≥ 0, the denominator stabilised in the forward: one division, the ledger's
        closed forms from per-channel sums of the quotient, and the W+γW⁻ map only when
        some relevance arrives at negative outputs (often none does, e.g. when a ReLU
        follows), which saves a third of the layer's cost."""
        s = op.quotient(r, den, w, x)
        # pooled r: sums and the negative-output check read the quotient at the winners
        pooled = not isinstance(r, Tensor)
        small, den_small = (_small(s, r), r.at_winners(den)) if pooled else (s, den)
        neg_small = torch.where(den_small < 0, small, 0.0)
        has_neg = bool(neg_small.any())
        neg = (torch.where(den < 0, s, 0.0) if has_neg else None) if pooled else neg_small
        if shares is not None:
            pos_sums = channel_sums(op, small)
            neg_sums = channel_sums(op, neg_small) if has_neg else None
            total = pos_sums.sum(dtype=torch.float64)
            neg_total = neg_sums.sum(dtype=torch.float64) if has_neg else 0.0
            # s·(den ∓ ε) = r ∓ ε·s: the stabiliser took ε·(Σ s where den > 0 − Σ s where den < 0),
            # and all the relevance of outputs with y = 0 (infinite denominator)
            stab = (total - 2 * neg_total) * self.stabilizer
            if any_zero:
                rr = r.small if pooled else r
                stab = stab + torch.where(torch.isinf(den_small), rr, 0.0).sum(dtype=torch.float64)
            bias = s.new_zeros((), dtype=torch.float64)
            if b is not None:  # b + γb⁺ where the output is positive, b + γb⁻ where negative
                bp, bn = b + self.gamma * b.clamp(min=0), b + self.gamma * b.clamp(max=0)
                bias = dot(pos_sums, bp)
                if has_neg:
                    bias = bias + dot(neg_sums, bn - bp)
            report(shares, bias, stab=stab)
        if not has_neg:
            return op.vjp(s, self._wp(w), x).mul_(x)
        out = op.vjp(s.sub_(neg), self._wp(w), x)
        return out.add_(op.vjp(neg, self._wn(w), x)).mul_(x)


@dataclass(frozen=True)
class Pass(Rule):
    """Relevance passes unchanged (only where input and output have the same shape)."""

    name = "pass"
    affine = False

    def forward(self, op, x, w, b):
        return op.forward(x, w, b), (x,)

    def backward(self, op, saved, w, b, r, shares=None):
        (x,) = saved
        if r.shape != x.shape:
            raise ValueError("The 'pass' rule needs a layer whose input and output have the same shape.")
        return r


@dataclass(frozen=True)
class Norm(Rule):
    """Epsilon rule for parameter-free linear ops (sums, average pooling, interpolation)."""

    stabilizer: float = 1e-6
    name = "norm"
    affine = False


# the rules for input layers, which share relevance by position as well as by contribution
from viewer.explain.lrp.input_rules import Flat, WSquare, ZBox  # noqa: E402  (they build on the above)

RULES: dict[str, type[Rule]] = {
    cls.name: cls for cls in (Epsilon, ZPlus, AlphaBeta, Gamma, Flat, WSquare, ZBox, Pass, Norm)
}
ALIASES = {"alpha-beta": "alphabeta", "alpha_beta": "alphabeta", "z-plus": "zplus", "z+": "zplus",
           "w-square": "wsquare", "w2": "wsquare", "z-box": "zbox", "identity": "pass"}

# which keyword parameters each rule takes from the user's parameters (zennit's names)
RULE_PARAMS: dict[str, tuple[str, ...]] = {
    "epsilon": ("epsilon",),
    "zplus": ("stabilizer",),
    "alphabeta": ("alpha", "beta", "stabilizer"),
    "gamma": ("gamma", "stabilizer"),
    "flat": ("stabilizer",),
    "wsquare": ("stabilizer",),
    "zbox": ("low", "high", "stabilizer"),
    "pass": (),
    "norm": ("stabilizer",),
}


def make_rule(name: str, params: dict | None = None) -> Rule:
    """Build a rule by name, taking the parameters it understands from ``params``."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in RULES:
        raise ValueError(f"Unknown LRP rule {name!r}; choose one of {sorted(RULES)}.")
    params = params or {}
    kwargs = {p: params[p] for p in RULE_PARAMS[key] if p in params and params[p] is not None}
    return RULES[key](**kwargs)
