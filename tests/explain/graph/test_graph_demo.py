"""Does the graph point at what matters? The bundled 3D demo model on every shipped
lesion case: switching off the graph's most relevant features lowers the target logit
more than switching off as many random or most activated channels of the same layers,
and the relevance an edge carries predicts what switching off its lower channel does.
(benchmarks/bench_graph.py prints the full table.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from viewer.explain.graph import ablate, attribution_graph
from viewer.io import load_scan
from viewer.models import load_model
from viewer.models.demo import demo_cases, demo_paths

pytestmark = pytest.mark.slow
DRAWS = 10


def _logit(module, x, t) -> float:
    with torch.no_grad():
        return float(module(x)[0, t])


def _drops(module, x, t, rows: list[dict[str, list[int]]]) -> list[float]:
    """Logit drop for each ``{layer: [channels]}`` switched off: all in one batched forward
    pass (row i zeroes rows[i]'s channels), as ``ablate`` would one copy at a time."""
    masks: dict[str, torch.Tensor] = {}
    for layer in {name for row in rows for name in row}:
        n = _mean_activation(module, x, layer).numel()
        m = torch.ones(len(rows), n, dtype=x.dtype)
        for i, row in enumerate(rows):
            m[i, row.get(layer, [])] = 0
        masks[layer] = m
    hooks = [module.get_submodule(layer).register_forward_hook(
        lambda mod, i, o, m=m: o * m.reshape(*m.shape, *([1] * (o.ndim - 2)))) for layer, m in masks.items()]
    try:
        with torch.no_grad():
            out = module(x.expand(len(rows), *x.shape[1:]))[:, t]
    finally:
        for h in hooks:
            h.remove()
    return [_logit(module, x, t) - float(v) for v in out]


def _mean_activation(module, x, layer) -> torch.Tensor:
    seen = {}
    handle = module.get_submodule(layer).register_forward_hook(lambda m, i, o: seen.setdefault("o", o.detach()))
    with torch.no_grad():
        module(x)
    handle.remove()
    return seen["o"].mean(dim=(0, 2, 3, 4))


@pytest.fixture(scope="module")
def demo():
    model = load_model(demo_paths().model3d)
    cases = [c for c in demo_cases() if "2d" not in c and "none" not in c]
    assert len(cases) >= 4
    return model, {c: model.prepare(load_scan(demo_paths(c).scan))[0] for c in cases}


def test_switching_off_the_graphs_top_nodes_matters_most(demo):
    model, cases = demo
    module = model.module
    rng = np.random.default_rng(0)
    drops = {k: {"graph": [], "random": [], "activation": []} for k in (1, 3, 6)}
    for x in cases.values():
        g = attribution_graph(module, x, width=(6, 3))
        t = g.target.index
        base = _logit(module, x, t)
        act = {layer: _mean_activation(module, x, layer) for layer in g.layers}
        ranked = sorted((n for n in g.nodes if n.level > 0), key=lambda n: -n.relevance)
        for k in (1, 3, 6):
            chosen: dict[str, list[int]] = {}
            for n in ranked[:k]:
                chosen.setdefault(n.layer, []).append(n.channel)
            counts = {layer: len(v) for layer, v in chosen.items()}
            drops[k]["graph"].append(base - _logit(ablate(module, chosen), x, t))
            assert _drops(module, x, t, [chosen])[0] == pytest.approx(drops[k]["graph"][-1], rel=1e-4, abs=1e-4)
            random = _drops(module, x, t, [{layer: rng.choice(act[layer].numel(), n, replace=False).tolist()
                                            for layer, n in counts.items()} for _ in range(DRAWS)])
            drops[k]["random"].append(float(np.mean(random)))
            most = {layer: act[layer].topk(n).indices.tolist() for layer, n in counts.items()}
            drops[k]["activation"].append(base - _logit(ablate(module, most), x, t))
    for k, d in drops.items():
        graph, random, activation = (float(np.mean(d[key])) for key in ("graph", "random", "activation"))
        assert graph > 2 * random, (k, d)
        assert graph > activation, (k, d)
        assert graph > 0


def test_edge_relevance_predicts_the_effect_of_switching_off_the_lower_channel(demo):
    model, cases = demo
    module = model.module
    rhos = []
    for x in cases.values():
        g = attribution_graph(module, x, width=(6, 3), heatmaps=False)
        t = g.target.index
        lower = g.layers[1]
        n_lower = _mean_activation(module, x, lower).numel()
        effect = _drops(module, x, t, [{lower: [c]} for c in range(n_lower)])
        full = attribution_graph(module, x, target=g.target, layers=list(g.layers), width=(6, n_lower),
                                 heatmaps=False)
        pairs = [(e.relevance, effect[full.node(e.target).channel]) for e in full.edges if e.source != "output"]
        rhos.append(spearmanr(*zip(*pairs)).statistic)
    assert float(np.mean(rhos)) > 0.3, rhos
