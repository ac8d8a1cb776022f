"""A BatchNorm that cannot be folded into the layer before it (pre-activation, as in
DenseNet: concatenation → BatchNorm → ReLU → convolution).

The ZPlus presets pass its relevance unchanged, which is what canonizing BatchNorm →
activation → layer gives (its scale moves into the next layer's weights, which the
z-rules do not see, its shift into the activation's threshold); the other presets
give it the ε-rule of its per-channel affine map, whose shift takes a bias share.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from viewer.explain.lrp import lrp


class PreActivation(nn.Module):
    """Two branches concatenated, then BatchNorm → ReLU → convolution: the BatchNorm
    has no layer of its own before it to be folded into."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 3, 3, padding=1)
        self.b = nn.Conv2d(1, 3, 5, padding=2)
        self.norm = nn.BatchNorm2d(6)
        self.conv = nn.Conv2d(6, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = torch.cat([self.a(x), self.b(x)], 1)
        h = self.conv(torch.relu(self.norm(h)))
        return self.head(torch.relu(h).mean((2, 3)))


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = PreActivation()
    with torch.no_grad():
        model.norm.running_mean.uniform_(-0.5, 0.5)
        model.norm.running_var.uniform_(0.5, 2.0)
        model.norm.weight.uniform_(-1.5, 1.5)  # negative scales too
        model.norm.bias.uniform_(-1.0, 1.0)
    return model.double().eval()


def _x() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 1, 12, 12, dtype=torch.float64)


def _rows(r) -> dict[str, dict]:
    return {row["layer"]: row for row in r.meta["ledger"]}


@pytest.mark.parametrize("preset", ["epsilon-plus", "epsilon-plus-flat"])
def test_zplus_presets_pass_an_unfolded_batchnorms_relevance_unchanged(preset):
    r = lrp(_model(), _x(), target=0, preset=preset)
    rows = _rows(r)
    assert "norm" not in rows and "norm" not in r.meta["absorbed_by_kind"]
    # what the convolution above passes down (through ReLU and BatchNorm) is what the
    # concatenated branches receive, to rounding
    received = rows["a"]["in"] + rows["b"]["in"]
    assert received == pytest.approx(rows["conv"]["out"], rel=1e-12, abs=1e-14)
    assert abs(r.conservation_error) <= 1e-10 * abs(r.explained)


@pytest.mark.parametrize("preset", ["epsilon", "epsilon-gamma-box", "epsilon-alpha2-beta1", "attn-lrp"])
def test_other_presets_give_it_the_epsilon_rule_of_its_affine_map(preset):
    r = lrp(_model(), _x(), target=0, preset=preset)
    row = _rows(r)["norm"]
    assert row["op"] == "norm" and abs(row["bias"]) > 1e-6 * abs(r.explained)
    assert not r.meta["ledger_leaks"]


def test_an_override_of_the_batchnorm_module_decides():
    model, x = _model(), _x()
    as_norm = lrp(model, x, target=0, preset="epsilon-plus", overrides={nn.BatchNorm2d: "norm"})
    assert "norm" in _rows(as_norm)
    passed = lrp(model, x, target=0, preset="epsilon", overrides={"norm": "pass"})
    assert "norm" not in _rows(passed)
    plain = lrp(model, x, target=0, preset="epsilon-plus")
    assert not torch.equal(as_norm.relevance, plain.relevance)

