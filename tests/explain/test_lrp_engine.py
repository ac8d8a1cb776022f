"""The engine's promises: the user's model is untouched, results are deterministic,
the prepared copy is cached but never stale, targets, overrides and presets."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from viewer.explain import lrp as lrp_from_explain
from viewer.explain.lrp import PRESETS, lrp, list_presets
from viewer.explain.params import ParamSpec
from viewer.explain.progress import Cancelled, Progress
from viewer.explain.target import Target


def _net() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 3),
    )
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 1, 16, 16))
    return model.eval()


def _x() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 1, 16, 16)


def test_public_names():
    assert lrp_from_explain is lrp
    assert set(PRESETS) == {"epsilon", "epsilon-plus", "epsilon-gamma-box", "epsilon-alpha2-beta1", "epsilon-plus-flat",
                            "attn-lrp"}
    infos = {p.name: p for p in list_presets()}
    assert {s.name for s in infos["epsilon-gamma-box"].params} == {"epsilon", "gamma", "low", "high"}
    assert {s.name for s in infos["attn-lrp"].params} == {"epsilon", "gamma", "gates"}
    assert all(isinstance(s, ParamSpec) for p in infos.values() for s in p.params)


def test_user_model_is_unchanged():
    model, x = _net(), _x()
    calls = []
    model[0].register_forward_hook(lambda m, i, o: calls.append(1))
    params = {n: (p, p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    modules = [type(m) for m in model.modules()]
    with torch.no_grad():
        before = model(x).clone()
    calls.clear()
    x_before = x.clone()
    r = lrp(model, x, preset="epsilon-gamma-box")
    assert calls == []  # the user's hooks never saw the copy
    for n, p in model.named_parameters():
        same, value, grad = params[n]
        assert p is same and p.requires_grad == grad and p.grad is None
        assert torch.equal(p, value)
    for n, b in model.named_buffers():
        assert torch.equal(b, buffers[n])
    assert [type(m) for m in model.modules()] == modules
    assert not model.training or False
    assert len(model[0]._forward_hooks) == 1
    assert torch.equal(x, x_before)
    with torch.no_grad():
        assert torch.equal(model(x), before)
    torch.testing.assert_close(r.output, before)


def test_training_mode_is_kept_on_the_user_model():
    model = _net().train()
    lrp(model, _x())
    assert model.training


def test_deterministic_bitwise_on_cpu():
    model, x = _net(), _x()
    a = lrp(model, x, preset="epsilon-plus").relevance
    b = lrp(model, x, preset="epsilon-plus").relevance
    assert torch.equal(a, b)


def test_cache_follows_model_changes():
    model, x = _net(), _x()
    a = lrp(model, x, target=0, preset="epsilon")
    with torch.no_grad():
        model[-1].weight.mul_(2)  # in-place change of the user's model
    b = lrp(model, x, target=0, preset="epsilon")
    assert b.explained != pytest.approx(a.explained)
    ref = copy.deepcopy(model)
    c = lrp(ref, x, target=0, preset="epsilon")
    torch.testing.assert_close(b.relevance, c.relevance)


def test_targets_and_contrast():
    model, x = _net(), _x()
    with torch.no_grad():
        out = model(x)
    r = lrp(model, x)
    assert r.target == Target.cls(int(out.argmax()))
    a, b = lrp(model, x, target=0), lrp(model, x, target=2)
    c = lrp(model, x, target=(0, 2), preset="epsilon")
    ae, be = lrp(model, x, target=0, preset="epsilon"), lrp(model, x, target=2, preset="epsilon")
    assert c.explained == pytest.approx(float(out[0, 0] - out[0, 2]), rel=1e-5)
    torch.testing.assert_close(c.relevance, ae.relevance - be.relevance, rtol=1e-4, atol=1e-7)
    assert not torch.equal(a.relevance, b.relevance)


def test_several_targets_in_one_call_match_single_calls():
    model, x = _net(), _x()
    many = lrp(model, x, target=[0, 1, (1, 2)], preset="epsilon-gamma-box")
    assert isinstance(many, list) and len(many) == 3
    for r, t in zip(many, [0, 1, (1, 2)]):
        single = lrp(model, x, target=t, preset="epsilon-gamma-box")
        assert torch.equal(r.relevance, single.relevance)
        assert r.absorbed == pytest.approx(single.absorbed, rel=1e-9, abs=1e-12)


def test_region_target_for_segmentation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 2, 1)).eval()
    x = torch.randn(1, 1, 8, 8, 8)
    mask = np.zeros((8, 8, 8), bool)
    mask[2:5, 2:5, 2:5] = True
    r = lrp(model, x, target=Target.region(1, mask), preset="epsilon")
    with torch.no_grad():
        expected = float(model(x)[0, 1][torch.from_numpy(mask)].sum())
    assert r.explained == pytest.approx(expected, rel=1e-5)
    assert r.input_sum + r.absorbed == pytest.approx(expected, rel=1e-4)


def test_overrides_by_name_glob_and_type():
    model, x = _net(), _x()
    base = lrp(model, x, target=0, preset="epsilon-plus")
    assert [rule for _, _, rule in base.meta["layers"]] == ["zplus", "zplus", "epsilon"]
    r = lrp(model, x, target=0, preset="epsilon-plus",
            overrides={"0": "flat", nn.Linear: ("epsilon", {"epsilon": 0.1})})
    assert [rule for _, _, rule in r.meta["layers"]] == ["flat", "zplus", "epsilon"]
    g = lrp(model, x, target=0, preset="epsilon-plus", overrides={"*": "gamma"})
    assert [rule for _, _, rule in g.meta["layers"]] == ["gamma"] * 3
    assert not torch.equal(r.relevance, base.relevance)


def test_parameters_by_zennit_names():
    model, x = _net(), _x()
    a = lrp(model, x, target=0, preset="epsilon-gamma-box", gamma=0.25, low=-3, high=3)
    b = lrp(model, x, target=0, preset="epsilon-gamma-box", gamma=2.0, low=-3, high=3)
    assert not torch.allclose(a.relevance, b.relevance)
    assert b.params["gamma"] == 2.0 and b.params["low"] == -3
    with pytest.raises(ValueError, match="Unknown LRP parameter"):
        lrp(model, x, gammma=1.0)
    with pytest.raises(ValueError, match="Unknown LRP preset"):
        lrp(model, x, preset="nope")
    with pytest.raises(ValueError, match="rule"):
        lrp(model, x, overrides={"0": "nope"})


def test_bfloat16_reports_conservation_error():
    model, x = _net(), _x()
    r = lrp(model, x, target=0, preset="epsilon", precision="bfloat16")
    ref = lrp(model, x, target=0, preset="epsilon")
    assert r.meta["precision"] == "bfloat16"
    assert abs(r.meta["conservation_error"]) < 0.1 * abs(r.explained) + 1e-3
    assert float(torch.nn.functional.cosine_similarity(r.relevance.flatten(), ref.relevance.flatten(), 0)) > 0.9


def test_cancel_and_progress():
    seen = []
    lrp(_net(), _x(), progress=Progress(callback=seen.append))
    assert seen and seen[-1] == 1.0
    p = Progress()
    p.cancel.set()
    with pytest.raises(Cancelled):
        lrp(_net(), _x(), progress=p)


def test_absorbed_relevance_is_reported_per_case_of_a_batch() -> None:
    """Batch command splits conservation figures per case: each row must match a single call."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool3d(2),
        torch.nn.Conv3d(4, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool3d(1),
        torch.nn.Flatten(), torch.nn.Linear(4, 3),
    ).eval()
    x = torch.rand(3, 1, 8, 8, 8)
    batched = lrp(net, x, target=1, preset="epsilon-plus")
    rows = batched.meta["absorbed_per_sample"]
    singles = [lrp(net, x[i:i + 1], target=1, preset="epsilon-plus") for i in range(3)]
    assert rows == pytest.approx([s.absorbed for s in singles], rel=1e-4, abs=1e-6)
    assert sum(rows) == pytest.approx(batched.absorbed, rel=1e-6, abs=1e-9)
    # a single input has nothing to split
    assert "absorbed_per_sample" not in singles[0].meta
