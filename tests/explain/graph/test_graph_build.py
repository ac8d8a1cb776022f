"""Attribution graphs: structure, conservation, pruning, growth, export, bad requests,
and every kind of layer (2D/3D convolutions, dense layers, transformer tokens)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.explain.graph import nets
from viewer.explain.graph import (
    AttributionGraph, GraphError, ablate, attribution_graph, concept_relevance, draw_graph,
)
from viewer.explain.graph.model import ROOT
from viewer.explain.lrp import lrp
from viewer.explain.progress import Cancelled, Progress

TINY = {"epsilon": 1e-12, "stabilizer": 1e-12}


def _x(shape=(1, 1, 16, 16), seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.rand(*shape, dtype=torch.float64)


def test_levels_widths_and_node_values():
    model, x = nets.vgg_like(), _x()
    g = attribution_graph(model, x, target=1, layers=["3", "6"], width=(4, 2))
    assert g.layers == ("6", "3")  # nearest the output first, whatever the order given
    assert g.node(ROOT).relevance == pytest.approx(float(model(x)[0, 1].detach()))
    level1 = g.level(1)
    assert [n.layer for n in level1] == ["6"] * 4
    r6 = concept_relevance(model, x, "6", range(10), target=1)
    by_size = sorted(range(10), key=lambda c: -abs(r6.relevance[c]))[:4]
    assert [n.channel for n in level1] == by_size
    for n in level1:
        assert n.relevance == pytest.approx(r6.relevance[n.channel], rel=1e-12)
        assert n.share == pytest.approx(n.relevance / sum(abs(v) for v in r6.relevance), rel=1e-12)
        assert len(g.children(n.id)) == 2
        # each node's heatmap is its conditional relevance
        torch.testing.assert_close(g.heatmap(n.id), r6.maps[n.channel], rtol=1e-9, atol=1e-15)
    for n in g.level(2):
        torch.testing.assert_close(g.heatmap(n.id), concept_relevance(model, x, "3", [n.channel], target=1).maps[0],
                                   rtol=1e-9, atol=1e-15)
    assert {e.source for e in g.edges} == {ROOT} | {n.id for n in level1}


def test_bias_free_flows_out_of_each_node_add_up_to_its_relevance():
    model, x = nets.vgg_like(bias=False), _x()
    g = attribution_graph(model, x, target=2, layers=["6", "3", "0"], width=(10, 8, 6), preset="epsilon", **TINY)
    for n in g.nodes:
        if n.id == ROOT:
            continue
        edges = g.children(n.id)
        if n.level < 3:  # every channel of the next layer is a child: the edges are all the flows
            assert sum(e.relevance for e in edges) == pytest.approx(n.relevance, rel=1e-6, abs=1e-15)
            assert sum(e.share for e in edges) == pytest.approx(1.0, rel=1e-6)
        assert abs(n.absorbed) <= 1e-9 * abs(n.relevance) + 1e-20
        assert n.residual <= 1e-6
    assert sum(e.relevance for e in g.children(ROOT)) == pytest.approx(g.explained, rel=1e-6)


def test_with_biases_the_ledger_accounts_for_what_the_flows_miss():
    model, x = nets.vgg_like(bias=True), _x()
    g = attribution_graph(model, x, target=2, layers=["6", "3"], width=(10, 8))
    missed = []
    for n in g.nodes:
        if n.id == ROOT:
            continue
        assert n.relevance - n.flow_out == pytest.approx(n.absorbed, rel=1e-9, abs=1e-15)
        assert n.residual <= 1e-9
        missed.append(abs(n.absorbed) / abs(n.relevance))
    assert max(missed) > 1e-3  # the biases really took a share: the check is not vacuous


def test_resnet_blocks_conserve_between_block_outputs():
    model, x = nets.resnet_like(), _x((1, 3, 32, 32))
    g = attribution_graph(model, x, target=0, width=(3, 2))
    assert g.layers == ("layer4.0", "layer3.0")  # default: the last blocks
    for n in g.nodes:
        if n.id != ROOT:
            assert n.residual <= 1e-9


def test_a_node_bypassed_by_a_shortcut_reports_it():
    """Conditioning on a layer inside a residual branch: what flows past the next chosen
    layer through the shortcut is the node's residual, not lost silently."""
    model, x = nets.resnet_like(), _x((1, 3, 32, 32))
    g = attribution_graph(model, x, target=0, layers=["layer3", "layer3.0.conv1"], width=(2, 2))
    assert max(n.residual for n in g.level(1)) > 1e-3
    for n in g.level(1):  # the heatmap still holds all of the node's relevance
        assert n.heatmap_sum == pytest.approx(concept_relevance(model, x, "layer3", [n.channel], target=0).input_sum[0],
                                              rel=1e-9)


def test_keep_prunes_to_the_nodes_carrying_most_of_the_flow():
    model, x = nets.vgg_like(), _x()
    full = attribution_graph(model, x, target=1, layers=["6", "3"], width=(8, 4))
    pruned = attribution_graph(model, x, target=1, layers=["6", "3"], width=(8, 4), keep=0.5)
    assert pruned.keep == 0.5 and len(pruned.nodes) < len(full.nodes)
    infl = full.influence()
    level1 = sorted((n for n in full.level(1)), key=lambda n: -infl[n.id])
    total = sum(infl[n.id] for n in level1)
    kept = [n.id for n in pruned.level(1)]
    assert sum(infl[k] for k in kept) >= 0.5 * total
    assert sum(infl[k] for k in kept[:-1]) < 0.5 * total  # the fewest that reach it
    assert kept == [n.id for n in level1[: len(kept)]]
    ids = {n.id for n in pruned.nodes}
    assert all(e.source in ids and e.target in ids for e in pruned.edges)
    assert set(pruned.heatmaps) <= ids
    assert full.prune(1.0).nodes == full.nodes


def test_expand_adds_a_level_below_a_node():
    model, x = nets.vgg_like(), _x()
    g = attribution_graph(model, x, target=1, layers=["6", "3"], width=(2, 2))
    low = g.level(2)[0]
    g2 = g.expand(low.id, width=3)
    assert g2.layers == ("6", "3", "0") and g2.width == (2, 2, 3)
    kids = g2.children(low.id)
    assert len(kids) == 3 and all(g2.node(e.target).level == 3 for e in kids)
    r0 = concept_relevance(model, x, "0", range(6), target=1)
    for e in kids:
        child = g2.node(e.target)
        torch.testing.assert_close(g2.heatmap(child.id), r0.maps[child.channel], rtol=1e-9, atol=1e-15)
    # the expanded node's relevance now flows to the new layer, and still balances
    assert g2.node(low.id).relevance - g2.node(low.id).flow_out == pytest.approx(g2.node(low.id).absorbed, abs=1e-12)
    # expanding an upper node adds children it did not have yet
    top = g.level(1)[0]
    g3 = g.expand(top.id, width=2)
    assert len(g3.children(top.id)) == 4
    with pytest.raises(GraphError, match="cannot grow further down|No layer with channels"):
        g2.expand(g2.children(low.id)[0].target)


def test_json_round_trip_and_drawing(tmp_path):
    model, x = nets.vgg_like(), _x()
    g = attribution_graph(model, x, target=1, layers=["6", "3"], width=(3, 2))
    path = g.to_json(tmp_path / "graph.json", about={"model": {"name": "vgg-like"}, "scan": {"file": "x.nii.gz"}})
    data = json.loads(path.read_text())
    assert data["format"] == "lrp-viewer attribution graph" and data["model"]["name"] == "vgg-like"
    assert data["software"]["torch"] == torch.__version__ and data["preset"] == "epsilon-plus"
    assert len(data["nodes"]) == len(g.nodes) and len(data["edges"]) == len(g.edges)
    back = AttributionGraph.from_json(path)
    assert back.nodes == g.nodes and back.edges == g.edges and back.layers == g.layers and back.target == g.target
    with pytest.raises(GraphError, match="not linked to a model"):
        back.expand(back.level(2)[0].id)
    with pytest.raises(GraphError, match="No heatmap"):
        back.heatmap(back.level(1)[0].id)
    picture = draw_graph(g)
    assert picture.size[0] > 300 and picture.size[1] > 300
    pixels = np.asarray(picture)
    assert (pixels[..., 0].astype(int) - pixels[..., 2] > 100).any()  # red (excitatory) edges drawn


def test_bad_requests_say_what_to_do():
    model, x = nets.vgg_like(), _x()
    with pytest.raises(GraphError, match=r"no layer named 'conv9'.*Valid layer names: 0, 1, 2"):
        attribution_graph(model, x, layers=["conv9"])
    with pytest.raises(GraphError, match="width must be positive"):
        attribution_graph(model, x, layers=["6"], width=(0,))
    with pytest.raises(GraphError, match="width must be positive"):
        attribution_graph(model, x, layers=["6", "3"], width=(3, -1))
    softmaxed = torch.nn.Sequential(*model, torch.nn.Softmax(dim=1))
    with pytest.raises(GraphError, match="does not lead to the explained output"):
        attribution_graph(softmaxed, x, layers=["13", "6"])
    with pytest.raises(GraphError, match="once"):
        attribution_graph(model, x, layers=["6", "6"])
    with pytest.raises(GraphError, match="has no channels|explained output itself"):
        attribution_graph(model, x, layers=["12"])


def test_cancel_and_progress():
    model, x = nets.vgg_like(), _x()
    seen = []
    attribution_graph(model, x, layers=["6", "3"], width=(2, 2), progress=Progress(seen.append))
    assert seen and seen[-1] == 1.0 and all(0 <= a <= b <= 1 for a, b in zip(seen, seen[1:]))
    stop = Progress(lambda f: stop.cancel.set() if f > 0.3 else None)
    with pytest.raises(Cancelled):
        attribution_graph(model, x, layers=["6", "3"], width=(4, 2), progress=stop, batch=1)


def test_batched_passes_give_the_same_graph():
    """Masks sent down together over copies of the input (the default for small inputs)
    and one at a time give the same nodes, edges, ledger and heatmaps."""
    model, x = nets.vgg_like(), _x()
    one = attribution_graph(model, x, target=1, layers=["6", "3"], width=(4, 3), batch=1)
    many = attribution_graph(model, x, target=1, layers=["6", "3"], width=(4, 3), batch=5)
    assert [n.id for n in one.nodes] == [n.id for n in many.nodes]
    assert [(e.source, e.target) for e in one.edges] == [(e.source, e.target) for e in many.edges]
    for a, b in zip(one.nodes, many.nodes):
        for field in ("relevance", "flow_out", "absorbed", "heatmap_sum"):
            va, vb = getattr(a, field), getattr(b, field)
            assert va == vb or va == pytest.approx(vb, rel=1e-9, abs=1e-15), (a.id, field)
    for nid, heat in one.heatmaps.items():
        torch.testing.assert_close(many.heatmaps[nid], heat, rtol=1e-9, atol=1e-15)


def test_3d_convolutions_and_dense_layers():
    model, x = nets.vgg_like(nd=3), _x((1, 1, 8, 8, 8))
    g = attribution_graph(model, x, target=0, layers=["6", "3"], width=(3, 2))
    assert g.heatmap(g.level(1)[0].id).shape == x.shape
    dense = attribution_graph(nets.mlp(), _x((1, 1, 8, 8)), target=2, width=(4, 3))
    assert dense.layers == ("3", "1")  # the hidden dense layers
    assert dense.channel_dims == {"3": 1, "1": 1}
    for n in dense.nodes:
        if n.id != ROOT:
            assert n.residual <= 1e-9


def test_transformer_token_features_are_channels():
    model, x = nets.tiny_vit(), _x()
    g = attribution_graph(model, x, target=1, width=(4, 3))
    assert g.layers == ("blocks.2", "blocks.1") and g.channel_dims == {"blocks.2": 2, "blocks.1": 2}
    ref = lrp(model, x, target=1)
    cr = concept_relevance(model, x, "blocks.1", range(12), target=1)
    torch.testing.assert_close(cr.maps.sum(0), ref.relevance, rtol=1e-9, atol=1e-14)
    for n in g.nodes:
        if n.id != ROOT:
            assert n.residual <= 1e-9
    off = ablate(model, g.ablation([g.level(1)[0].id]), g.channel_dims)
    hidden = {}
    off.blocks[2].register_forward_hook(lambda m, i, o: hidden.setdefault("o", o))
    off(x)
    assert float(hidden["o"][..., g.level(1)[0].channel].detach().abs().max()) == 0.0


def test_ablate_switches_channels_off_in_a_copy():
    model, x = nets.vgg_like(), _x()
    before = model(x).detach().clone()
    off = ablate(model, {"4": [1, 3]})
    assert torch.equal(model(x), before)  # the user's model is untouched
    seen = {}
    off[4].register_forward_hook(lambda m, i, o: seen.setdefault("o", o.detach()))
    out = off(x).detach()
    assert float(seen["o"][:, [1, 3]].abs().max()) == 0.0 and float(seen["o"][:, 0].abs().max()) > 0
    assert not torch.equal(out, before)
    assert "4.lrp_viewer_ablated" not in off.state_dict()  # its weights still load into the original
    r = lrp(off, x, target=1)  # the explainer's private copy keeps the ablation
    assert r.output[0, 1] == pytest.approx(float(out[0, 1]))
    twice = ablate(off, {"4": [5]})
    seen.clear()
    twice[4].register_forward_hook(lambda m, i, o: seen.setdefault("o", o.detach()))
    twice(x)
    assert float(seen["o"][:, [1, 3, 5]].abs().max()) == 0.0
    with pytest.raises(GraphError, match="no layer named"):
        ablate(model, {"nope": [0]})
