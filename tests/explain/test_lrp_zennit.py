"""Agreement with zennit (the reference implementation) where zennit is correct:
plain sequential CNNs with ReLU, max/average pooling and dense layers, float64."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from viewer.explain.lrp import lrp

zennit = pytest.importorskip("zennit")
from zennit import rules as zr  # noqa: E402
from zennit.attribution import Gradient  # noqa: E402
from zennit.composites import (  # noqa: E402
    EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat, LayerMapComposite,
    SpecialFirstLayerMapComposite, layer_map_base,
)
from zennit.types import Convolution  # noqa: E402


def _cnn(nd: int) -> nn.Module:
    Conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[nd - 1]
    Max = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[nd - 1]
    Avg = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[nd - 1]
    Ada = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[nd - 1]
    torch.manual_seed(0)
    model = nn.Sequential(
        Conv(2, 6, 3, padding=1), nn.ReLU(), Max(2),
        Conv(6, 8, 3, padding=1), nn.ReLU(), Avg(2),
        Conv(8, 8, 3, stride=1), nn.ReLU(), Ada(2),
        nn.Flatten(), nn.Linear(8 * 2 ** nd, 16), nn.ReLU(), nn.Linear(16, 5),
    )
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, Conv)):
                m.bias.uniform_(-0.1, 0.1)
    return model.double().eval()


def _input(nd: int) -> torch.Tensor:
    torch.manual_seed(1)
    size = {1: (40,), 2: (24, 24), 3: (12, 12, 12)}[nd]
    return torch.randn(1, 2, *size, dtype=torch.float64)


def _zennit(model, x, composite, target):
    twin = copy.deepcopy(model)
    with Gradient(model=twin, composite=composite) as attributor:
        out = twin(x)
        onehot = torch.zeros_like(out)
        onehot[:, target] = 1
        _, rel = attributor(x.clone(), attr_output=lambda o: onehot * o)
    return rel


def _rel_diff(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours - ref).abs().max() / ref.abs().max())


LOW, HIGH = -3.0, 3.0
PRESETS = {
    "epsilon-plus": lambda: EpsilonPlus(),
    "epsilon-gamma-box": lambda: EpsilonGammaBox(low=LOW, high=HIGH),
    "epsilon-alpha2-beta1": lambda: EpsilonAlpha2Beta1(),
    "epsilon-plus-flat": lambda: EpsilonPlusFlat(),
}


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_agree_with_zennit(nd, preset):
    model, x = _cnn(nd), _input(nd)
    ref = _zennit(model, x, PRESETS[preset](), target=2)
    ours = lrp(model, x, target=2, preset=preset, low=LOW, high=HIGH)
    assert ours.relevance.dtype == torch.float64
    assert _rel_diff(ours.relevance, ref) <= 1e-4


SINGLE = {
    "epsilon": lambda: zr.Epsilon(epsilon=1e-6),
    "zplus": lambda: zr.ZPlus(),
    "gamma": lambda: zr.Gamma(gamma=0.25),
    "alphabeta": lambda: zr.AlphaBeta(alpha=2.0, beta=1.0),
    "flat": lambda: zr.Flat(),
    "wsquare": lambda: zr.WSquare(),
}


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("rule", sorted(SINGLE))
def test_single_rules_agree_with_zennit(nd, rule):
    """Every conv and dense layer under one rule (zennit's LayerMapComposite)."""
    model, x = _cnn(nd), _input(nd)
    composite = LayerMapComposite(layer_map=layer_map_base() + [
        (Convolution, SINGLE[rule]()), (nn.Linear, SINGLE[rule]())])
    ref = _zennit(model, x, composite, target=1)
    ours = lrp(model, x, target=1, preset="epsilon", overrides={nn.Module: rule})
    assert _rel_diff(ours.relevance, ref) <= 1e-4


@pytest.mark.parametrize("nd", [2, 3])
def test_zbox_first_layer_agrees_with_zennit(nd):
    model, x = _cnn(nd), _input(nd)
    composite = SpecialFirstLayerMapComposite(
        layer_map=layer_map_base() + [(Convolution, zr.Epsilon()), (nn.Linear, zr.Epsilon())],
        first_map=[(Convolution, zr.ZBox(low=-4.0, high=4.0))])
    ref = _zennit(model, x, composite, target=0)
    ours = lrp(model, x, target=0, preset="epsilon", overrides={"0": ("zbox", {"low": -4.0, "high": 4.0})})
    assert _rel_diff(ours.relevance, ref) <= 1e-4


def test_zennit_is_a_meaningful_oracle():
    """The comparison can fail: a different rule gives a clearly different map."""
    model, x = _cnn(2), _input(2)
    ref = _zennit(model, x, EpsilonPlus(), target=2)
    ours = lrp(model, x, target=2, preset="epsilon")
    assert _rel_diff(ours.relevance, ref) > 1e-2
