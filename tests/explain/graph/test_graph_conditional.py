"""Conditional relevance (through chosen channels) and channel relevance on a reference set."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from viewer.explain.graph import GraphError, channel_relevance, concept_relevance
from viewer.explain.lrp import lrp


def _net(bias: bool = True) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1, bias=bias), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 3, bias=bias),
    )
    if bias:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    m.bias.uniform_(-0.1, 0.1)
    return model.double().eval()


def _x(n: int = 1, seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.rand(n, 1, 12, 12, dtype=torch.float64)


def test_channel_maps_add_up_to_the_lrp_map():
    model, x = _net(), _x()
    ref = lrp(model, x, target=2, preset="epsilon-plus")
    cr = concept_relevance(model, x, "4", range(6), target=2)
    assert cr.maps.shape == (6, *x.shape)
    torch.testing.assert_close(cr.maps.sum(0), ref.relevance, rtol=1e-9, atol=1e-12)
    assert sum(cr.relevance) == pytest.approx(cr.total, rel=1e-12)
    for i in range(6):  # each map conserves what reached its channel
        assert cr.input_sum[i] + cr.absorbed[i] == pytest.approx(cr.relevance[i], rel=1e-9, abs=1e-12)
    assert float((cr.maps[0] - ref.relevance).abs().max()) > 1e-3


def test_a_group_of_channels_is_the_sum_of_its_channels():
    model, x = _net(), _x()
    single = concept_relevance(model, x, "3", [1, 4], target=0)
    group = concept_relevance(model, x, "3", [[1, 4]], target=0)
    assert group.channels == ((1, 4),) and single.channels == (1, 4)
    torch.testing.assert_close(group.maps[0], single.maps[0] + single.maps[1], rtol=1e-9, atol=1e-14)
    r = group.as_relevance(0)
    assert r.method == "crp" and r.explained == pytest.approx(single.relevance[0] + single.relevance[1])
    assert r.conservation_error == pytest.approx(0.0, abs=1e-12)


def test_channel_relevance_sums_over_cases():
    model, xs = _net(), _x(3)
    total = channel_relevance(model, xs, ["4", "1"], target=1)
    per_case = channel_relevance(model, xs, ["4", "1"], target=1, per_case=True)
    assert list(total) == ["4", "1"] and total["4"].shape == (6,) and per_case["1"].shape == (3, 4)
    torch.testing.assert_close(per_case["4"].sum(0), total["4"])
    for i in range(3):
        cr = concept_relevance(model, xs[i:i + 1], "4", range(6), target=1)
        np.testing.assert_allclose(per_case["4"][i].numpy(), cr.relevance, rtol=1e-10)
    # a list of inputs and one target per case
    listed = channel_relevance(model, [xs[i:i + 1] for i in range(3)], "4", target=[1, 1, 1])
    torch.testing.assert_close(listed["4"], total["4"])


def test_channel_relevance_inside_a_region():
    model, x = _net(), _x()
    region = np.zeros((12, 12), dtype=np.float32)
    region[2:7, 3:10] = 1
    inside = channel_relevance(model, x, "4", target=2, region=region)["4"]
    cr = concept_relevance(model, x, "4", range(6), target=2)
    expected = (cr.maps[:, 0, 0] * torch.as_tensor(region, dtype=torch.float64)).sum((1, 2))
    torch.testing.assert_close(inside, expected, rtol=1e-10, atol=1e-14)
    everywhere = channel_relevance(model, x, "4", target=2, region=np.ones((12, 12)))["4"]
    torch.testing.assert_close(everywhere, torch.tensor(cr.input_sum, dtype=torch.float64), rtol=1e-10, atol=1e-14)
    assert float((inside - everywhere).abs().max()) > 1e-4


def test_bad_requests_say_what_to_do():
    model, x = _net(), _x()
    with pytest.raises(GraphError, match=r"no layer named 'features.9'.*Valid layer names: 0, 1, 2, 3"):
        concept_relevance(model, x, "features.9", [0])
    with pytest.raises(GraphError, match="has 6 channels"):
        concept_relevance(model, x, "3", [6])
    with pytest.raises(GraphError, match="integers"):
        concept_relevance(model, x, "3", ["a"])
    with pytest.raises(GraphError, match="explained output itself"):
        concept_relevance(model, x, "7", [0])
    softmaxed = nn.Sequential(*model, nn.Softmax(dim=1))
    with pytest.raises(GraphError, match="does not lead to the explained output"):
        concept_relevance(softmaxed, x, "8", [0])
    with pytest.raises(GraphError, match="region mask has shape"):
        channel_relevance(model, x, "3", region=np.ones((5, 5)))
    with pytest.raises(GraphError, match="2 targets for 3 cases"):
        channel_relevance(model, _x(3), "3", target=[0, 1])


class _Score(nn.Module):
    """Reduces a feature map to one number per case: no channel dimension left."""

    def forward(self, t):
        return t.sum(dim=(1, 2, 3))


def test_a_layer_without_channels_says_so():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU())

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.score, self.head = body, _Score(), nn.Linear(1, 2)

        def forward(self, x):
            return self.head(self.score(self.body(x)).unsqueeze(1))

    with pytest.raises(GraphError, match=r"'score' has no channels: its output has shape \(1,\)"):
        concept_relevance(Net().double().eval(), _x(), "score", [0])


@pytest.mark.parametrize("net", ["vgg", "resnet", "vit"])
def test_sliced_passes_below_a_mask_equal_dense_ones(net, monkeypatch):
    """Below a channel mask the first layers run their rule on the channels that carry
    relevance only (ops.SPARSE_SHARE); the maps, flows and absorbed parts must be those
    of the dense computation, on convolutions, shortcut blocks and token features."""
    from tests.explain.graph import nets
    from viewer.explain.lrp import ops

    model = {"vgg": nets.vgg_like, "resnet": nets.resnet_like, "vit": nets.tiny_vit}[net]()
    torch.manual_seed(2)
    x = torch.rand(1, *{"vgg": (1, 16, 16), "resnet": (3, 32, 32), "vit": (1, 16, 16)}[net], dtype=torch.float64)
    layer = {"vgg": "3", "resnet": "layer2", "vit": "blocks.1"}[net]
    calls, told = [], []
    real = ops._live_channels

    def spy(op, r, known=None):
        live = real(op, r, known)
        calls.append(live is not None)
        told.append(known is not None and known[0] is r)
        return live

    monkeypatch.setattr(ops, "_live_channels", spy)
    sliced = concept_relevance(model, x, layer, [0, 1, [2, 3]], target=1)
    assert any(calls), "no layer below the mask ran on a slice of its channels"
    if net == "vgg":  # the mask reaches a convolution through activations only: it is told the channels
        assert told[0]
    monkeypatch.setattr(ops, "SPARSE_SHARE", -1.0)  # never slice
    dense = concept_relevance(model, x, layer, [0, 1, [2, 3]], target=1)
    torch.testing.assert_close(sliced.maps, dense.maps, rtol=1e-10, atol=1e-13)
    assert sliced.absorbed == pytest.approx(dense.absorbed, rel=1e-9, abs=1e-12)
    assert sliced.input_sum == pytest.approx(dense.input_sum, rel=1e-9, abs=1e-12)


def test_live_channels_are_those_with_any_nonzero_value():
    """A channel counts as carrying relevance when any value is not zero: negative-only
    channels, a lone NaN or an infinity included (they must not be sliced away)."""
    from viewer.explain.lrp import ops
    from viewer.explain.lrp.affine import AffineOp

    op = AffineOp.conv(2, 1, 1)
    r = torch.zeros(2, 8, 5, 5)
    r[1, 2, 4, 4] = -1e-30
    r[0, 5, 0, 0] = float("nan")
    r[1, 6, 3, 1] = float("-inf")
    assert ops._live_channels(op, r).tolist() == [2, 5, 6]
    assert ops._live_channels(op, torch.zeros(1, 8, 3, 3)).tolist() == [0]  # none: one zero channel
    r[:, :5] = 1.0
    assert ops._live_channels(op, r) is None  # over SPARSE_SHARE of the channels: dense
    dense = torch.zeros(4, 8)
    dense[:, 3] = 2.0
    assert ops._live_channels(AffineOp("linear"), dense).tolist() == [3]


def test_a_pass_without_ledger_gives_the_same_map():
    """Heatmap passes nobody reads the ledger of skip its sums; the map is unchanged."""
    from viewer.explain.graph.conditional import ConditionalPass

    model, x = _net(), _x()
    cp = ConditionalPass(model, x, ["4"], target=2)
    r = cp.relevance(["4"])["4"]
    with_ledger = cp.down_many("4", [r], ledger=True)[0]
    without = cp.down_many("4", [r], ledger=False)[0]
    torch.testing.assert_close(with_ledger[0], without[0], rtol=0, atol=0)
    assert np.isfinite(with_ledger[1]) and np.isnan(without[1])
    assert cp.traced.book.entries == []
