"""The ledger: per-operation figures, their closed forms, and a wrong rule caught."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from viewer.explain.lrp import Epsilon, lrp


def _net() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.GELU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 8), nn.LayerNorm(8), nn.Linear(8, 3),
    )
    with torch.no_grad():
        for m in (model[3], model[8]):  # norms with an affine part of their own
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
    return model.double().eval()


def _x() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 1, 8, 8, dtype=torch.float64)


@pytest.mark.parametrize("preset", ["epsilon", "epsilon-plus", "epsilon-gamma-box", "epsilon-alpha2-beta1",
                                    "epsilon-plus-flat", "attn-lrp"])
def test_each_rule_absorbs_its_closed_form(preset):
    r = lrp(_net(), _x(), target=1, preset=preset, stabilizer=1e-3, epsilon=1e-3)
    assert r.meta["ledger_leaks"] == []
    rows = r.meta["ledger"]
    assert [row["layer"] for row in rows if row["op"] in ("conv", "dense")] == ["0", "2", "7", "9"]
    assert {row["op"] for row in rows} >= {"conv", "norm", "dense", "pool"}
    for row in rows:
        assert row["bias"] is not None and row["stabiliser"] is not None, row
        assert row["in"] - row["out"] == pytest.approx(row["bias"] + row["stabiliser"], rel=1e-9, abs=1e-12)
        assert row["other"] == pytest.approx(0.0, abs=1e-10)
    # the stabiliser takes something with ε = 1e-3, the dense layers' and norms' biases too
    assert sum(abs(row["stabiliser"]) for row in rows) > 1e-6
    assert any(abs(row["bias"]) > 1e-3 for row in rows if row["op"] == "norm")
    # per kind, and in all: what the operations absorbed is the result's absorbed part
    kinds = r.meta["absorbed_by_kind"]
    assert sum(kinds.values()) == pytest.approx(r.absorbed, rel=1e-9, abs=1e-12)
    assert sum(row["in"] - row["out"] for row in rows) == pytest.approx(r.absorbed, rel=1e-9, abs=1e-12)
    assert r.explained == pytest.approx(r.input_sum + r.absorbed, rel=1e-10)


@dataclass(frozen=True)
class Leaky(Epsilon):
    """The ε-rule that loses 10 % of what it passes on (and says nothing about it)."""

    name = "leaky"

    def backward(self, op, saved, w, b, r, shares=None):
        return super().backward(op, saved, w, b, r, shares).mul_(0.9)


def test_a_rule_that_loses_relevance_is_caught():
    """The identity explained == input_sum + absorbed holds whatever the rules do; the
    closed forms do not: the leaking layer is listed, with what went missing."""
    model, x = _net(), _x()
    r = lrp(model, x, target=1, preset="epsilon", overrides={"7": Leaky()})
    assert r.explained == pytest.approx(r.input_sum + r.absorbed, rel=1e-10)  # still balances
    assert [row["layer"] for row in r.meta["ledger_leaks"]] == ["7"]
    leak = r.meta["ledger_leaks"][0]
    assert leak["rule"] == "leaky"
    assert leak["other"] == pytest.approx(0.1 * (leak["in"] - leak["bias"] - leak["stabiliser"]), rel=1e-6)


def test_a_rule_without_closed_form_counts_all_it_absorbs_as_unexplained():
    @dataclass(frozen=True)
    class Halving(Epsilon):
        name = "halving"

        def backward(self, op, saved, w, b, r, shares=None):
            return super().backward(op, saved, w, b, r, None).mul_(0.5)

    r = lrp(_net(), _x(), target=1, preset="epsilon", overrides={"9": Halving()})
    (row,) = [row for row in r.meta["ledger"] if row["layer"] == "9"]
    assert row["bias"] is None and row["other"] == pytest.approx(row["in"] - row["out"])
    assert r.meta["ledger_leaks"] == [row]


def test_sums_of_one_relevance_tensor_are_remembered_until_it_changes():
    """The relevance one op passes on is what the next one receives: the ledger sums it
    once. A tensor changed in place, or a new one, is summed again."""
    from viewer.explain.lrp.ledger import Book, Site

    book = Book()
    book.reset(batch=2)
    site = Site(0, "a", "conv", "epsilon")
    r = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    passed = r * 0.5
    book.absorb(site, r, passed)
    assert book._sum(passed)[0] is book._sum(passed)[0]  # remembered
    book.absorb(site, passed, passed * 0.5)
    assert book.total() == pytest.approx(10.0 - 5.0 + 5.0 - 2.5)
    assert book.per_row() == pytest.approx([3.0 - 1.5 + 1.5 - 0.75, 7.0 - 3.5 + 3.5 - 1.75])
    passed.mul_(2)  # in place: summed again
    assert float(book._sum(passed)[0]) == pytest.approx(10.0)
    book.reset(batch=2, active=False)
    book.absorb(site, r, passed)
    assert book.entries == [] and book.total() == 0.0


def test_zplus_and_gamma_closed_forms_hold_with_biases_on_a_resnet():
    """ZPlus and Gamma stabilise their denominators once in the forward (ε through the
    bias) and report the stabiliser's share from channel sums: on a torchvision ResNet
    with folded BatchNorms no row leaks and the books balance."""
    from torchvision.models.resnet import BasicBlock, ResNet

    torch.manual_seed(0)
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=4).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.rand(1, 3, 32, 32)
    for preset in ("epsilon-plus", "epsilon-gamma-box"):
        res = lrp(model, x, target=1, preset=preset, stabilizer=1e-3)
        assert res.meta["ledger_leaks"] == []
        stab = sum(row["stabiliser"] for row in res.meta["ledger"] if row["rule"] in ("zplus", "gamma"))
        assert stab != 0.0
        assert res.explained == pytest.approx(res.input_sum + res.absorbed, rel=1e-4, abs=1e-5)
