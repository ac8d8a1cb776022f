"""What each rule promises, checked on single layers with chosen relevance."""

from __future__ import annotations

import pytest
import torch

from viewer.explain.lrp.affine import AffineOp
from viewer.explain.lrp.rules import AlphaBeta, Epsilon, Flat, Gamma, WSquare, ZBox, ZPlus, make_rule


def _layer(seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(5, 3, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64) * 0.1
    x = torch.randn(1, 3, 8, 8, generator=g, dtype=torch.float64)
    return AffineOp.conv(2, padding=1), w, b, x


def _run(rule, op, w, b, x, r):
    y, saved = rule.forward(op, x, w, b)
    return y, rule.backward(op, saved, w, b, r)


@pytest.mark.parametrize("rule", [ZPlus(), AlphaBeta(alpha=1.0, beta=0.0)])
def test_positive_rules_give_no_negative_relevance(rule):
    op, w, b, x = _layer()
    x = x.clamp(min=0)  # after a ReLU
    r = torch.rand(1, 5, 8, 8, dtype=torch.float64)
    _, r_in = _run(rule, op, w, b, x, r)
    assert (r_in >= 0).all()
    assert float(r_in.sum()) > 0


def test_zplus_on_signed_input_is_still_non_negative():
    op, w, b, x = _layer(1)
    r = torch.rand(1, 5, 8, 8, dtype=torch.float64)
    _, r_in = _run(ZPlus(), op, w, torch.zeros_like(b), x, r)
    assert (r_in >= -1e-12).all()
    # bias-free: everything where some input contributes positively is passed on
    assert float(r_in.sum()) == pytest.approx(float(r.sum()), rel=1e-6)


def test_alpha2_beta1_shares_sum_to_one_minus():
    """α·(positive share) − β·(negative share) = (α − β)·R when both parts exist."""
    op, w, b, x = _layer(2)
    x = x.clamp(min=0) + 0.1
    r = torch.rand(1, 5, 8, 8, dtype=torch.float64)
    _, r_in = _run(AlphaBeta(), op, w, torch.zeros_like(b), x, r)
    assert float(r_in.sum()) == pytest.approx(float(r.sum()), rel=1e-6)
    assert (r_in < 0).any()  # counter-evidence is shown


def test_flat_spreads_uniformly_over_the_receptive_field():
    op = AffineOp.conv(2, padding=0)
    w = torch.randn(1, 1, 3, 3, dtype=torch.float64)
    x = torch.randn(1, 1, 5, 5, dtype=torch.float64)
    r = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    r[0, 0, 1, 1] = 9.0  # one output, receptive field = centre 3x3
    _, r_in = _run(Flat(), op, w, None, x, r)
    expected = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    expected[0, 0, 1:4, 1:4] = 1.0
    torch.testing.assert_close(r_in, expected, rtol=1e-6, atol=1e-9)


def test_wsquare_ignores_the_input_values():
    op, w, b, x = _layer(3)
    r = torch.rand(1, 5, 8, 8, dtype=torch.float64)
    _, a = _run(WSquare(), op, w, None, x, r)
    _, c = _run(WSquare(), op, w, None, torch.randn_like(x), r)
    torch.testing.assert_close(a, c)
    assert (a >= 0).all()


def test_epsilon_absorbs_more_with_larger_epsilon():
    op, w, b, x = _layer(4)
    y = op.forward(x, w, b)
    r = y.clone()  # relevance = output, as at the top of a network
    small = _run(Epsilon(epsilon=1e-9), op, w, torch.zeros_like(b), x, r)[1]
    large = _run(Epsilon(epsilon=1.0), op, w, torch.zeros_like(b), x, r)[1]
    assert float(small.sum()) == pytest.approx(float(r.sum()), rel=1e-6)
    assert abs(float(large.sum())) < abs(float(small.sum()))


def test_gamma_zero_is_lrp0_and_large_gamma_approaches_zplus():
    op, w, b, x = _layer(5)
    x = x.clamp(min=0)
    b = torch.zeros_like(b)
    r = op.forward(x, w, b).clamp(min=0)
    g0 = _run(Gamma(gamma=0.0), op, w, b, x, r)[1]
    e = _run(Epsilon(epsilon=1e-6), op, w, b, x, r)[1]
    torch.testing.assert_close(g0, e, rtol=1e-5, atol=1e-8)
    g_big = _run(Gamma(gamma=1e6), op, w, b, x, r)[1]
    zp = _run(ZPlus(), op, w, b, x, r)[1]
    torch.testing.assert_close(g_big, zp, rtol=1e-4, atol=1e-6)


def test_zbox_conserves_without_bias():
    op, w, b, x = _layer(6)
    x = x.clamp(-2, 2)
    r = op.forward(x, w, None)
    _, r_in = _run(ZBox(low=-2.0, high=2.0), op, w, b, x, r)
    assert float(r_in.sum()) == pytest.approx(float(r.sum()), rel=1e-5)


def test_rule_construction():
    assert make_rule("alpha-beta", {"alpha": 1.0, "beta": 0.0, "gamma": 3}) == AlphaBeta(1.0, 0.0)
    with pytest.raises(ValueError, match="alpha - beta"):
        AlphaBeta(alpha=2.0, beta=2.0)
    with pytest.raises(ValueError, match="Unknown LRP rule"):
        make_rule("magic")


def test_relu_mark_is_trusted_only_while_the_tensor_is_unmodified() -> None:
    """The tracer marks ReLU outputs as non-negative; an in-place change voids the mark."""
    from viewer.explain.lrp.rules import _nonneg

    t = torch.rand(4, 3) - 0.5
    assert not _nonneg(t)
    t = torch.relu(t)
    t._lrp_nonneg = t._version
    assert _nonneg(t)
    t.sub_(1.0)
    assert not _nonneg(t)


def test_in_place_shift_after_relu_keeps_the_signed_zplus_path(monkeypatch) -> None:
    """conv → ReLU → in-place −0.5 → conv: the second conv sees signed input; ZPlus must
    take the signed-input path exactly as if no ReLU mark existed."""
    from viewer.explain.lrp import lrp, rules

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False)
            self.b = torch.nn.Conv2d(4, 2, 3, padding=1, bias=False)

        def forward(self, x):
            h = torch.relu(self.a(x))
            h.sub_(0.5)
            return self.b(h).sum(dim=(2, 3))

    torch.manual_seed(0)
    net = Net().double().eval()
    x = torch.rand(1, 1, 6, 6, dtype=torch.float64)

    def run():
        return lrp(net, x, target=0, overrides={"b": "zplus", "a": "epsilon"}).relevance

    got = run()
    monkeypatch.setattr(rules, "_nonneg", lambda t: bool(t.min() >= 0))  # no marks at all
    torch.testing.assert_close(got, run(), rtol=0, atol=0)
    monkeypatch.setattr(rules, "_nonneg", lambda t: True)  # a wrongly trusted mark would differ
    assert not torch.allclose(got, run())


def test_in_place_method_statements_change_the_tensor_as_without_the_explainer() -> None:
    """``h.sub_(c)`` / ``torch.relu_(h)`` / ``h.mul_(c)`` used as statements (result not
    re-bound) on an activation must modify h for the rest of the forward, as plain
    PyTorch does (on a convolution's own output they still return a new tensor: the
    rule keeps that output for its backward)."""
    from viewer.explain.lrp import lrp

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.b = torch.nn.Conv2d(4, 2, 3, padding=1)

        def forward(self, x):
            h = torch.relu(self.a(x))
            alias = h
            h.sub_(0.5)
            alias.mul_(2.0)
            torch.relu_(h)
            h += 0.25
            return self.b(h).sum(dim=(2, 3))

    torch.manual_seed(0)
    net = Net().double().eval()
    x = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    want = float(net(x)[0, 1])
    for preset in ("epsilon", "epsilon-plus", "epsilon-gamma-box"):
        r = lrp(net, x, target=1, preset=preset, low=0.0, high=1.0)
        assert r.explained == pytest.approx(want, rel=1e-12), preset
        assert r.explained == pytest.approx(float(r.relevance.sum()) + r.absorbed, rel=1e-9, abs=1e-12)


def test_gamma_on_signed_input_follows_its_definition():
    """W + γW⁺ where the output is positive, W + γW⁻ where it is negative, inputs split
    by sign (x⁺ meets the boosted positive weights, x⁻ the boosted negative ones); the
    denominators and the four transposed maps written out here from the definition."""
    import torch.nn.functional as F

    op, w, b, x = _layer(7)
    assert (x < 0).any() and (x > 0).any()
    gamma, eps = 0.25, 1e-6
    r = torch.randn(1, 5, 8, 8, dtype=torch.float64)
    _, got = _run(Gamma(gamma=gamma, stabilizer=eps), op, w, b, x, r)
    wp, wn = w + gamma * w.clamp(min=0), w + gamma * w.clamp(max=0)
    bp, bn = b + gamma * b.clamp(min=0), b + gamma * b.clamp(max=0)
    xp, xn = x.clamp(min=0), x.clamp(max=0)
    conv = lambda t, k, c=None: F.conv2d(t, k, c, padding=1)  # noqa: E731
    y = conv(x, w, b)
    zpos = conv(xp, wp, bp) + conv(xn, wn)
    zneg = conv(xp, wn, bn) + conv(xn, wp)

    def stab(z):
        return z + eps * torch.where(z >= 0, 1.0, -1.0)

    a = torch.where(y > 0, r, 0.0) / stab(zpos)
    c = torch.where(y < 0, r, 0.0) / stab(zneg)

    def back(g, k):
        return torch.nn.grad.conv2d_input(x.shape, k, g, padding=1)

    want = xp * (back(a, wp) + back(c, wn)) + xn * (back(a, wn) + back(c, wp))
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
