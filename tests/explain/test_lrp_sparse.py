"""Relevance confined to a few positions (viewer/explain/lrp/sparse.py).

The transposed map from a few positions must equal the dense one, and every map,
absorbed part and ledger row of an explanation (and of an attribution graph) must be
what the dense backward gives (``sparse.SHARE`` below zero turns the sparse path off).
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from viewer.explain.graph import attribution_graph, concept_relevance
from viewer.explain.lrp import lrp, pooling, sparse
from viewer.explain.lrp.affine import AffineOp
from viewer.explain.lrp.ledger import Book
from viewer.explain.lrp.rules import RULES

CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _dense(monkeypatch, fn):
    with monkeypatch.context() as m:
        m.setattr(sparse, "SHARE", -1.0)
        return fn()


@pytest.fixture
def used(monkeypatch):
    """Counts transposed maps run from a few positions."""
    calls = []
    real = sparse.transposed

    def spy(op, g, weight, x, where):
        calls.append(len(where))
        return real(op, g, weight, x, where)

    monkeypatch.setattr(sparse, "transposed", spy)
    return calls


def _close(a: torch.Tensor, b: torch.Tensor, rel: float) -> None:
    assert float((a - b).abs().max()) <= rel * float(b.abs().max())


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (1, 1, 1), (2, 1, 1), (3, 2, 1), (1, 2, 2), (2, 0, 2)])
@pytest.mark.parametrize("batch,last", [(1, False), (2, False), (2, True)])
def test_transposed_map_from_positions_equals_dense(nd, stride, padding, dilation, batch, last):
    """Strides, padding and dilation in 1, 2 and 3 dimensions, several rows, a
    channels-last input, a NaN, and positions that carry nothing at all."""
    torch.manual_seed(nd * 100 + stride * 10 + padding)
    size = {1: (29,), 2: (13, 11), 3: (9, 10, 7)}[nd]
    x = torch.randn(batch, 4, *size, dtype=torch.float64)
    w = torch.randn(5, 4, *([3] * nd), dtype=torch.float64)
    op = AffineOp.conv(nd, stride, padding, dilation)
    z = CONVS[nd](x, w, None, stride, padding, dilation)
    g = torch.zeros_like(z)
    flat = g.view(-1)
    pick = torch.randperm(flat.numel())[: max(2, flat.numel() // 40)]
    flat[pick] = torch.randn(len(pick), dtype=torch.float64)
    flat[pick[0]] = float("nan")
    if last and nd > 1:
        g = g.contiguous(memory_format=torch.channels_last if nd == 2 else torch.channels_last_3d)
    where = g.isnan().any(1).flatten().nonzero().flatten()
    where = torch.cat([where, g.nan_to_num().abs().amax(1).flatten().ne(0).nonzero().flatten()]).unique()
    empty = torch.zeros(g.shape[0] * g[0, 0].numel(), dtype=torch.bool)
    empty[where[:1]] = True  # a position with nothing but the NaN, and others with nothing
    dense = op.vjp(g, w, x)
    got = dataclasses.replace(op, support=torch.cat([where, (~empty).nonzero().flatten()[:3]]).unique()).vjp(g, w, x)
    assert got.shape == dense.shape and got.is_contiguous()
    torch.testing.assert_close(got, dense, rtol=1e-12, atol=1e-12, equal_nan=True)
    assert bool(got.isnan().any())
    none = dataclasses.replace(op, support=where[:0]).vjp(torch.zeros_like(z), w, x)
    assert torch.equal(none, torch.zeros_like(x))


def test_support_finds_the_positions_and_declines_spread_relevance():
    op = AffineOp.conv(2, 1, 1)
    w = torch.randn(6, 3, 3, 3)
    r = torch.zeros(2, 6, 20, 20)
    r[0, 2, 3, 4] = -1.0
    r[1, 5, 0, 0] = float("nan")
    assert sparse.support(op, r, w).tolist() == [3 * 20 + 4, 400]
    assert sparse.support(op, torch.randn(2, 6, 20, 20), w) is None  # spread out
    assert sparse.support(AffineOp.conv(2, 1, 1, groups=3), r, w) is None  # grouped: the dense map
    assert sparse.support(AffineOp("linear"), r.flatten(1), w) is None
    assert sparse.support(op, r.to(torch.bfloat16), w) is None
    assert sparse.support(op, torch.zeros(1, 6, 20, 20), w).numel() == 0  # nothing at all: nothing to do


class _MaxHead(nn.Module):
    """Convolutions (a strided and a dilated one), a max pooling joined to the first,
    and a global max pooling head: relevance reaches the last convolutions at a few
    positions."""

    def __init__(self, nd: int, cin: int, window: tuple = (2, 2, 0)) -> None:
        super().__init__()
        conv, pool = (nn.Conv2d, nn.MaxPool2d) if nd == 2 else (nn.Conv3d, nn.MaxPool3d)
        norm = nn.BatchNorm2d if nd == 2 else nn.BatchNorm3d
        self.features = nn.Sequential(
            conv(cin, 8, 3, padding=1), norm(8), nn.ReLU(), pool(*window),
            conv(8, 12, 3, padding=2, dilation=2), nn.ReLU(),
            conv(12, 16, 3, stride=2, padding=1), nn.ReLU(),
            conv(16, 16, 3, padding=1), nn.ReLU(),
        )
        self.head = (nn.AdaptiveMaxPool2d if nd == 2 else nn.AdaptiveMaxPool3d)(1)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(self.head(self.features(x)).flatten(1))


def _model(nd: int, cin: int, window: tuple = (2, 2, 0)) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(nd * 10 + cin)
    model = _MaxHead(nd, cin, window)
    x = torch.rand(2, cin, *([96] * nd if nd == 2 else [32] * nd))
    model.train()
    with torch.no_grad():
        model(x)
    return model.double().eval(), x.double()


@pytest.mark.parametrize("nd,cin", [(2, 1), (2, 3), (3, 1)])
def test_explanations_from_few_positions_equal_dense(nd, cin, used, monkeypatch):
    """Every preset, three targets over one trace: maps, absorbed parts and ledger rows."""
    model, x = _model(nd, cin)
    for preset in ("epsilon", "epsilon-plus", "epsilon-gamma-box", "epsilon-plus-flat", "epsilon-alpha2-beta1"):
        used.clear()
        got = lrp(model, x, preset=preset, target=[1, 0, 2])
        assert used, preset
        want = _dense(monkeypatch, lambda: lrp(model, x, preset=preset, target=[1, 0, 2]))
        for a, b in zip(got, want):
            _close(a.relevance, b.relevance, 1e-10)
            assert a.absorbed == pytest.approx(b.absorbed, rel=1e-9, abs=1e-12)
            rows = {(r["layer"], r["op"]): r for r in a.meta["ledger"]}
            for row in b.meta["ledger"]:
                for key in ("in", "out", "bias", "stabiliser"):
                    assert rows[row["layer"], row["op"]][key] == pytest.approx(row[key], rel=1e-9, abs=1e-12), key


@pytest.mark.parametrize("rule", sorted(set(RULES) - {"norm"}))
def test_every_rule_from_few_positions(rule, used, monkeypatch):
    """Each rule as an override on every convolution, the last three of which get
    relevance at a few positions (the first through the joined pooling)."""
    model, x = _model(2, 1)
    layers = (8,) if rule == "pass" else (0, 4, 6, 8)  # pass: a layer that keeps its shape
    kw = dict(overrides={f"features.{i}": rule for i in layers}, low=0.0, high=1.0)
    used.clear()
    got = lrp(model, x[:1], **kw)
    assert used
    want = _dense(monkeypatch, lambda: lrp(model, x[:1], **kw))
    _close(got.relevance, want.relevance, 1e-10)
    assert got.absorbed == pytest.approx(want.absorbed, rel=1e-9, abs=1e-12)


@pytest.fixture
def kept(monkeypatch):
    """Counts quotients written at a few winners into a pooling's kept zero buffer."""
    calls = []
    real = pooling.Pooled._into_kept

    def spy(self, values, fmt):
        calls.append(int(self.small.ne(0).sum()))
        return real(self, values, fmt)

    monkeypatch.setattr(pooling.Pooled, "_into_kept", spy)
    return calls


@pytest.mark.parametrize("window", [(2, 2, 0), (3, 2, 1)])
def test_graph_and_concepts_from_few_positions_equal_dense(window, used, kept, monkeypatch):
    """Conditional passes: a channel's relevance stays local for several layers, down
    to the pooling (tiling or overlapping windows) joined to the input layer."""
    model, x = _model(3, 1, window)
    x = x[:1]
    layers = ["features.8", "features.6", "features.4"]
    got = attribution_graph(model, x, layers=layers, width=(3, 2, 2))
    assert used
    # at this size relevance reaches the tiling pooling spread over more than 5 % of its
    # winners (the dense quotient), the overlapping one at fewer (the kept buffer)
    assert bool(kept) == (window[0] == 3)
    want = _dense(monkeypatch, lambda: attribution_graph(model, x, layers=layers, width=(3, 2, 2)))
    assert [n.id for n in got.nodes] == [n.id for n in want.nodes]
    for a, b in zip(got.edges, want.edges):
        assert (a.source, a.target) == (b.source, b.target)
        assert a.relevance == pytest.approx(b.relevance, rel=1e-9, abs=1e-12)
    for nid, heat in want.heatmaps.items():
        _close(got.heatmaps[nid], heat, 1e-10)
    a = concept_relevance(model, x, "features.6", [0, [1, 5]])
    b = _dense(monkeypatch, lambda: concept_relevance(model, x, "features.6", [0, [1, 5]]))
    _close(a.maps, b.maps, 1e-10)
    assert a.absorbed == pytest.approx(b.absorbed, rel=1e-9, abs=1e-12)


def test_demo_graph_in_float32(used, kept, monkeypatch):
    """The 3D demo model (a global max pooling head) in float32."""
    from viewer.io import load_scan
    from viewer.models import load_model
    from viewer.models.demo import demo_paths

    paths = demo_paths("case_left_large")
    model = load_model(paths.model3d)
    x, _ = model.prepare(load_scan(paths.scan))
    got = attribution_graph(model.module, x)
    assert used and kept
    want = _dense(monkeypatch, lambda: attribution_graph(model.module, x))
    assert [e.target for e in got.edges] == [e.target for e in want.edges]
    for nid, heat in want.heatmaps.items():
        _close(got.heatmaps[nid], heat, 1e-5)
    one, dense = lrp(model.module, x), _dense(monkeypatch, lambda: lrp(model.module, x))
    _close(one.relevance, dense.relevance, 1e-5)


def test_the_search_stops_at_the_first_spread_out_layer(monkeypatch):
    """An average-pooled head spreads relevance everywhere: one look per backward pass."""
    looks = []
    real = sparse.support

    def spy(op, r, weight):
        found = real(op, r, weight)
        looks.append(found is None)
        return found

    monkeypatch.setattr(sparse, "support", spy)
    torch.manual_seed(0)
    model = nn.Sequential(*itertools.chain.from_iterable((nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()) for _ in range(4)),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    lrp(model, torch.rand(1, 4, 16, 16))
    assert looks == [True]
    book = Book()
    book.spatial = False
    book.reset()
    assert book.spatial


def test_segmentation_region_from_few_positions(used, monkeypatch):
    """A small region of a MONAI UNet's output: relevance starts at a few voxels and
    goes through residual units, transposed convolutions and skip connections."""
    import numpy as np
    from monai.networks.nets import UNet

    from viewer.explain.target import Target

    torch.manual_seed(5)
    model = UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8, 16), strides=(2, 2), num_res_units=1)
    x = torch.rand(1, 1, 32, 32, 32)
    model.train()
    with torch.no_grad():
        model(x)
    model, x = model.double().eval(), x.double()
    mask = np.zeros((32, 32, 32), dtype=bool)
    mask[10:13, 12:15, 20:23] = True
    for preset in ("epsilon", "epsilon-plus", "epsilon-gamma-box"):
        used.clear()
        got = lrp(model, x, target=Target.region(1, mask), preset=preset)
        assert used, preset
        want = _dense(monkeypatch, lambda: lrp(model, x, target=Target.region(1, mask), preset=preset))
        _close(got.relevance, want.relevance, 1e-10)
        assert got.absorbed == pytest.approx(want.absorbed, rel=1e-9, abs=1e-12)
