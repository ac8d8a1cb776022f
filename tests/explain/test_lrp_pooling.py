"""Max pooling joined to the layer below it in the LRP backward (viewer/explain/lrp/pooling.py).

The joined backward divides at the winners only and never forms the relevance at the
pooling's input; every map, absorbed part and ledger row must be what the pooling
and the layer give when they run apart (the handler removed: the pooling's own
gradient, then the layer's rule).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from viewer.explain.graph import concept_relevance
from viewer.explain.lrp import handlers, lrp, ops, pooling
from viewer.explain.lrp.rules import RULES

POOLS = (F.max_pool2d, F.max_pool3d)


def _apart(monkeypatch, fn):
    """``fn()`` with max pooling left to its gradient (the join off)."""
    with monkeypatch.context() as m:
        for k in POOLS:
            m.delitem(handlers.HANDLERS, k)
        return fn()


@pytest.fixture
def joins(monkeypatch):
    """Counts backward passes in which a pooling ran the rule of the layer below."""
    seen = []
    real = pooling.take_stash

    def spy(ctx, r):
        part, only = real(ctx, r)
        seen.append(part is not None)
        return part, only

    monkeypatch.setattr(ops, "take_stash", spy)
    return seen


def _close(a: torch.Tensor, b: torch.Tensor, rel: float) -> None:
    assert float((a - b).abs().max()) <= rel * float(b.abs().max())


def _stem(nd: int, cin: int, pool: nn.Module) -> nn.Module:
    conv, norm = (nn.Conv2d, nn.BatchNorm2d) if nd == 2 else (nn.Conv3d, nn.BatchNorm3d)
    return nn.Sequential(conv(cin, 8, 5 if nd == 2 else 3, padding=1), norm(8), nn.ReLU(), pool,
                         conv(8, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("cin", [1, 3])
@pytest.mark.parametrize("window", [(2, None, 0, False), (3, 2, 1, False), (2, None, 0, True), (3, 1, 0, False)])
def test_joined_pooling_equals_pooling_then_rule(nd, cin, window, joins, monkeypatch):
    """Windows that tile, overlap (a voxel wins two windows), pad and run over the edge
    (ceil_mode), under every preset: the same map and ledger, float64."""
    torch.manual_seed(nd * 10 + cin)
    k, s, p, ceil = window
    pool = (nn.MaxPool2d if nd == 2 else nn.MaxPool3d)(k, s, p, ceil_mode=ceil)
    model = _stem(nd, cin, pool)
    x = torch.rand(2, cin, *([11] * nd))
    model(x)
    model = model.double().eval()
    x = x.double()
    for preset in ("epsilon", "epsilon-plus", "epsilon-gamma-box", "epsilon-plus-flat", "epsilon-alpha2-beta1"):
        joins.clear()
        # three targets: three backward passes over one traced forward, so the pooling's
        # reused buffers must be all zero again after each pass
        joined_all = lrp(model, x, preset=preset, target=[1, 0, 2])
        assert any(joins) == (preset != "epsilon-alpha2-beta1"), preset  # α2β1 has no single quotient
        apart_all = _apart(monkeypatch, lambda: lrp(model, x, preset=preset, target=[1, 0, 2]))
        for joined, apart in zip(joined_all, apart_all):
            _close(joined.relevance, apart.relevance, 1e-10)
            assert joined.absorbed == pytest.approx(apart.absorbed, rel=1e-9, abs=1e-12)
            assert joined.meta["ledger_leaks"] == []
            rows = {(r["layer"], r["op"]): r for r in joined.meta["ledger"]}
            for row in apart.meta["ledger"]:
                got = rows[row["layer"], row["op"]]
                assert got["in"] == pytest.approx(row["in"], rel=1e-9, abs=1e-12)
                assert got["stabiliser"] == pytest.approx(row["stabiliser"], rel=1e-9, abs=1e-12)


class _Branches(nn.Module):
    """An activation that is pooled and also read by another path (and pooled twice)."""

    def __init__(self, nd: int, inplace: bool, twice: bool) -> None:
        super().__init__()
        conv = nn.Conv2d if nd == 2 else nn.Conv3d
        self.nd, self.twice = nd, twice
        self.c1, self.c2 = conv(1, 8, 3, padding=1), conv(8, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=inplace)
        self.fc = nn.LazyLinear(3)

    def forward(self, x):
        pool = F.max_pool2d if self.nd == 2 else F.max_pool3d
        h = self.act(self.c1(x))
        p = pool(h, 2)
        if self.twice:
            p = p + 0.5 * pool(h, 2, 2)
        a = self.c2(p).relu().flatten(1)
        return self.fc(torch.cat([a, h.mean(tuple(range(2, h.dim())))], 1))


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("twice", [False, True])
def test_second_paths_and_taps_between_pooling_and_layer(nd, inplace, twice, joins, monkeypatch):
    """Relevance that reaches the activation by another path is added to the pooling's
    part; relevance read at the activation (a tapped module between the layer and the
    pooling) keeps them apart for that pass; both give the apart maps."""
    torch.manual_seed(3)
    model = _Branches(nd, inplace, twice)
    x = torch.rand(1, 1, *([12] * nd))
    model(x)
    model = model.double().eval()
    x = x.double()
    joins.clear()
    joined = lrp(model, x)
    assert any(joins)
    apart = _apart(monkeypatch, lambda: lrp(model, x))
    _close(joined.relevance, apart.relevance, 1e-10)
    assert joined.absorbed == pytest.approx(apart.absorbed, rel=1e-9, abs=1e-12)
    for layer in ("act", "c2"):
        a = concept_relevance(model, x, layer, [0, [1, 3]])
        b = _apart(monkeypatch, lambda: concept_relevance(model, x, layer, [0, [1, 3]]))
        _close(a.maps, b.maps, 1e-10)
        assert a.relevance == pytest.approx(b.relevance, rel=1e-9)


def test_demo_model_joined_in_float32(joins, monkeypatch):
    """The 3D demo model: the quotient at the winners, laid out channels-last for the
    input layer's depthwise transposed map, gives the apart map in float32."""
    from viewer.io import load_scan
    from viewer.models import load_model
    from viewer.models.demo import demo_paths

    paths = demo_paths("case_left_large")
    model = load_model(paths.model3d)
    x, _ = model.prepare(load_scan(paths.scan))
    for preset in ("epsilon-plus", "epsilon-gamma-box"):
        joins.clear()
        joined = lrp(model.module, x, preset=preset)
        assert any(joins)
        apart = _apart(monkeypatch, lambda: lrp(model.module, x, preset=preset))
        _close(joined.relevance, apart.relevance, 1e-5)
        assert joined.absorbed == pytest.approx(apart.absorbed, rel=1e-4, abs=1e-6 * abs(apart.explained))


@pytest.mark.parametrize("rule", sorted(set(RULES) - {"norm"}))  # norm: parameter-free maps only
def test_every_rule_below_a_pooling_gives_the_apart_map(rule, monkeypatch):
    """Each rule, put on the layer below a max pooling (an override): rules that take
    pooled relevance and rules that do not (given the relevance at full resolution)."""
    torch.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 4, 3),
                          nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))
    x = torch.rand(1, 8, 12, 12)
    model(x)
    model = model.double().eval()
    x = x.double()
    kw = dict(overrides={"0": rule}, low=0.0, high=1.0)
    joined = lrp(model, x, **kw)
    apart = _apart(monkeypatch, lambda: lrp(model, x, **kw))
    _close(joined.relevance, apart.relevance, 1e-10)
    assert joined.absorbed == pytest.approx(apart.absorbed, rel=1e-9, abs=1e-12)


def _real(net: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(11)
    if net == "densenet121-3d":
        from monai.networks.nets import DenseNet121

        model, x = DenseNet121(spatial_dims=3, in_channels=1, out_channels=3), torch.rand(2, 1, 32, 32, 32)
    else:
        import torchvision

        model, x = getattr(torchvision.models, net)(num_classes=3), torch.randn(2, 3, 64, 64)
    model.train()
    with torch.no_grad():
        model(x)  # BatchNorm statistics that are not the identity
    return model.double().eval(), x[:1].double()


@pytest.mark.parametrize("net", ["vgg11_bn", "resnet18", "densenet121-3d"])
def test_real_architectures_joined_equal_apart(net, joins, monkeypatch):
    """torchvision VGG (a pooling after every block) and ResNet (the stem's pooling),
    MONAI DenseNet121 in 3D (a padded 3³ stride-2 pooling after the stem)."""
    model, x = _real(net)
    for preset in ("epsilon", "epsilon-gamma-box", "epsilon-plus"):
        joins.clear()
        joined = lrp(model, x, preset=preset)
        apart = _apart(monkeypatch, lambda: lrp(model, x, preset=preset))
        if preset != "epsilon-plus" or net == "vgg11_bn":  # ε+ on a signed stem input has no single quotient
            assert any(joins), preset
        _close(joined.relevance, apart.relevance, 1e-9)
        assert joined.absorbed == pytest.approx(apart.absorbed, rel=1e-8, abs=1e-10)
        assert joined.meta["ledger_leaks"] == []
