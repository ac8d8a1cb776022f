"""Conditional heatmaps and graph edges agree with zennit-crp (Concept Relevance
Propagation's reference implementation, on zennit) to float rounding.

zennit-crp 0.6 declares ``zennit<=0.4.6`` but works with the zennit 0.5.1 of the test
extras; it is installed separately with ``pip install --no-deps zennit-crp==0.6.0``.
"""

from __future__ import annotations

import copy

import pytest
import torch

from viewer.explain.graph import attribution_graph, concept_relevance

pytest.importorskip("zennit")
crp_attribution = pytest.importorskip(
    "crp.attribution",
    reason="zennit-crp is not installed; install it with `pip install --no-deps zennit-crp==0.6.0` "
           "(its metadata asks for zennit<=0.4.6, which would downgrade the zennit the other oracles use)",
)
from zennit.composites import EpsilonGammaBox, EpsilonPlus  # noqa: E402
from zennit.torchvision import ResNetCanonizer  # noqa: E402

from tests.explain.graph import nets  # noqa: E402

LOW, HIGH = 0.0, 1.0


def _crp(model, x, conditions, composite, record=()):
    """zennit-crp's conditional heatmaps (input channels summed, as it reports them)."""
    twin = copy.deepcopy(model)
    attribution = crp_attribution.CondAttribution(twin)
    result = attribution(x.clone().requires_grad_(True), conditions, composite, record_layer=list(record))
    return result


def _rel(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours - ref).abs().max() / ref.abs().max())


def _composite(preset: str, resnet: bool):
    canonizers = [ResNetCanonizer()] if resnet else []
    if preset == "epsilon-plus":
        return EpsilonPlus(canonizers=canonizers)
    return EpsilonGammaBox(low=LOW, high=HIGH, canonizers=canonizers)


CASES = [
    ("vgg", "3", "epsilon-plus"),
    ("vgg", "6", "epsilon-gamma-box"),
    ("vgg", "10", "epsilon-plus"),  # a dense layer: channels are its units
    ("resnet", "layer3", "epsilon-plus"),
    ("resnet", "layer2", "epsilon-gamma-box"),
    ("resnet", "layer2.0.conv1", "epsilon-plus"),  # inside a residual branch: the shortcut is excluded
]


@pytest.mark.parametrize("net,layer,preset", CASES)
def test_conditional_heatmaps_equal_zennit_crp(net, layer, preset):
    torch.manual_seed(2)
    if net == "vgg":
        model, x = nets.vgg_like(), torch.rand(1, 1, 16, 16, dtype=torch.float64)
    else:
        model, x = nets.resnet_like(), torch.rand(1, 3, 32, 32, dtype=torch.float64)
    channels = [0, 2, 5, 7]
    ref = _crp(model, x, [{layer: [c], "y": [1]} for c in channels], _composite(preset, net == "resnet"))
    ours = concept_relevance(model, x, layer, channels, target=1, preset=preset, low=LOW, high=HIGH)
    heat = ours.maps.sum(2)[:, 0]  # (k, *spatial), input channels summed like zennit-crp's
    assert ref.heatmap.shape == heat.shape
    assert float(ref.heatmap.abs().max()) > 0
    assert _rel(heat, ref.heatmap) <= 1e-10


def test_the_oracle_can_fail():
    """Another channel's map, or another preset, is clearly different."""
    model, x = nets.vgg_like(), torch.rand(1, 1, 16, 16, dtype=torch.float64)
    ref = _crp(model, x, [{"3": [2], "y": [1]}], EpsilonPlus())
    other = concept_relevance(model, x, "3", [5], target=1).maps.sum(2)[:, 0]
    assert _rel(other, ref.heatmap) > 0.1
    gamma = concept_relevance(model, x, "3", [2], target=1, preset="epsilon-gamma-box", low=LOW, high=HIGH)
    assert _rel(gamma.maps.sum(2)[:, 0], ref.heatmap) > 1e-3


@pytest.mark.parametrize("net", ["vgg", "resnet"])
def test_graph_edges_equal_zennit_crp_flows(net):
    """An edge is the relevance at the lower layer conditioned on the upper node, summed
    per channel: zennit-crp records the same tensor at the lower layer."""
    torch.manual_seed(3)
    if net == "vgg":
        model, x, layers = nets.vgg_like(), torch.rand(1, 1, 16, 16, dtype=torch.float64), ["6", "3"]
    else:
        model, x, layers = nets.resnet_like(), torch.rand(1, 3, 32, 32, dtype=torch.float64), ["layer4", "layer3"]
    graph = attribution_graph(model, x, target=2, layers=layers, width=(3, 4))
    upper = [n for n in graph.nodes if n.level == 1]
    conditions = [{layers[0]: [n.channel], "y": [2]} for n in upper]
    ref = _crp(model, x, conditions, _composite("epsilon-plus", net == "resnet"), record=[layers[1]])
    flows = ref.relevances[layers[1]].sum((2, 3))  # (nodes, channels of the lower layer)
    assert len(graph.edges) > len(upper)
    for i, node in enumerate(upper):
        edges = graph.children(node.id)
        assert len(edges) == 4
        for e in edges:
            c = graph.node(e.target).channel
            assert e.relevance == pytest.approx(float(flows[i, c]), rel=1e-9, abs=1e-15)
        # the children are the largest flows by magnitude
        top = set(flows[i].abs().topk(4).indices.tolist())
        assert {graph.node(e.target).channel for e in edges} == top
