"""Building an attribution graph from one traced forward pass.

Level 1 holds the ``width[0]`` channels of the first chosen layer with the largest
|relevance|. For each node, its relevance (the layer's relevance with every other
channel masked) is propagated down to the next chosen layer and summed per channel:
those are its flows, and its ``width[1]`` largest |flows| become edges to level-2
nodes, and so on. A node is one feature (layer, channel) however many parents point
at it; its heatmap is the target's input relevance through that channel alone.

Cost: one forward pass, one backward pass to the lowest layer, and for each node one
pass from its layer down (to the next layer for the flows, then on to the input
for the heatmap, so a node's two uses share one pass).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from viewer.explain.graph.conditional import (
    FORWARD_SHARE, ConditionalPass, channel_sums, span,
)
from viewer.explain.graph.errors import GraphError
from viewer.explain.graph.layers import candidates, check_layer_names, pick_defaults
from viewer.explain.graph.model import ROOT, AttributionGraph, GraphEdge, GraphNode, node_id
from viewer.explain.progress import Progress


def attribution_graph(
    module: nn.Module,
    x: torch.Tensor,
    target: Any = None,
    layers: Sequence[str] | None = None,
    width: Sequence[int] | int = (6, 3),
    preset: str = "epsilon-plus",
    *,
    keep: float | None = None,
    heatmaps: bool = True,
    overrides: Mapping | None = None,
    channel_dim: int | Mapping[str, int] | None = None,
    progress: Progress | None = None,
    batch: int | None = None,
    **params: Any,
) -> AttributionGraph:
    """Which channels of which layers carry the relevance of ``target``, and how it flows.

    Parameters
    ----------
    module, x, target, preset, overrides, **params
        As for :func:`viewer.explain.lrp`.
    layers
        Module names, nearest to the output first (they are put in that order anyway);
        None picks the last block outputs (see :mod:`viewer.explain.graph.layers`), as
        many as ``width`` has entries.
    width
        Nodes per parent at each level: ``width[0]`` at level 1, ``width[1]`` children per
        level-1 node, ... (the last value repeats if there are more layers).
    keep
        Prune to the nodes that carry this share of the relevance flow (see
        :meth:`AttributionGraph.prune`).
    heatmaps
        Compute each node's input map (False: only the graph, about half the cost).
    batch
        Masked passes run together in one backward pass over copies of the input
        (None: one at a time; since the layer below a mask runs on the masked channels
        only, a pass costs a fraction of a backward, and batching six passes on the 2D
        demo model took 5.5× one LRP explanation against 3.9× one at a time).
    progress
        ``Progress(callback, cancel)`` for a worker thread: fractions in [0, 1], and a
        set ``cancel`` event raises :class:`viewer.explain.Cancelled` between passes.
    """
    widths = _widths(width)
    progress = progress or Progress()
    rows = 1 if batch is None else batch
    if layers is None:
        cp, names = _with_default_layers(module, x, len(widths), target, preset, overrides, channel_dim, progress,
                                         rows, params)
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        if not names:
            raise GraphError("Choose at least one layer.")
        check_layer_names(module, names)
        cp = ConditionalPass(module, x, names, target, preset, overrides, channel_dim, progress, batch=rows,
                             **params)
        names = cp.order
    widths = (widths + [widths[-1]] * len(names))[: len(names)]
    graph = _build(cp, names, widths, heatmaps, progress)
    graph = replace(graph, source=_Source(module, x, preset, dict(overrides or {}), channel_dim, dict(params), batch))
    return graph.prune(keep) if keep is not None else graph


class _Source:
    """What :meth:`AttributionGraph.expand` needs to trace the model again (not exported)."""

    def __init__(self, module, x, preset, overrides, channel_dim, params, batch):
        self.module, self.x, self.preset = module, x, preset
        self.overrides, self.channel_dim, self.params, self.batch = overrides, channel_dim, params, batch


def _widths(width: Sequence[int] | int) -> list[int]:
    values = [width] if isinstance(width, int) else list(width)
    if not values or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in values):
        raise GraphError(f"width must be positive whole numbers (nodes per parent at each level), got {width!r}.")
    return values


def _with_default_layers(module, x, n, target, preset, overrides, channel_dim, progress, rows, params):
    blocks, plain = candidates(module)
    cp = ConditionalPass(module, x, list(dict.fromkeys(blocks + plain)), target, preset, overrides, channel_dim,
                         progress, require=False, batch=rows, **params)
    usable = set(cp.tensors)
    spatial = [p for p in plain if p in usable and cp.tensors[p].ndim == x.ndim]
    chosen = pick_defaults(blocks, spatial if len(spatial) >= n else plain, cp.traced.tap_order, usable, n)
    if cp.on_path(chosen) != set(chosen):  # some candidate is off the relevance path: ask about all
        usable = cp.on_path(sorted(usable))
        chosen = pick_defaults(blocks, spatial if len(spatial) >= n else plain, cp.traced.tap_order, usable, n)
    return cp, chosen


def _build(cp: ConditionalPass, names: list[str], widths: list[int], heatmaps: bool, progress: Progress,
           ) -> AttributionGraph:
    progress = span(progress, FORWARD_SHARE, 1.0)
    rel = cp.relevance(names)
    sums = {n: channel_sums(rel[n], cp.dims[n]) for n in names}
    totals = {n: float(sums[n].abs().sum()) for n in names}
    explained = cp.explained
    nodes: dict[str, GraphNode] = {ROOT: GraphNode(ROOT, "output", cp.target.index, 0, explained, 1.0)}
    edges: list[GraphEdge] = []
    maps: dict[str, torch.Tensor] = {}
    bypass: dict[str, bool] = {}

    def make(layer: str, c: int, level: int) -> str:
        nid = node_id(layer, c)
        if nid not in nodes:
            r = float(sums[layer][c])
            nodes[nid] = GraphNode(nid, layer, c, level, r, r / totals[layer] if totals[layer] else 0.0)
        return nid

    first = names[0]
    top = [c for c in _top(sums[first], widths[0]) if float(sums[first][c]) != 0.0]
    frontier = []
    for c in top:
        nid = make(first, c, 1)
        edges.append(GraphEdge(ROOT, nid, nodes[nid].relevance, _ratio(nodes[nid].relevance, explained)))
        frontier.append(nid)
    steps, fan = 0, 1
    for w in [len(top)] + widths[1:]:  # the most nodes the levels can have
        fan *= w
        steps += fan
    done = 0
    for level, layer in enumerate(names, start=1):
        below = names[level] if level < len(names) else None
        next_frontier: list[str] = []
        for start in range(0, len(frontier), cp.batch):  # cp.batch nodes share each backward pass
            part = frontier[start:start + cp.batch]
            progress.step(done, steps)
            done += len(part)
            channels = [nodes[nid].channel for nid in part]
            if below is None:
                if heatmaps:
                    for nid, (heat, absorbed) in zip(part, cp.down_channels(layer, channels)):
                        nodes[nid] = _settle(nodes[nid], float(heat.sum(dtype=torch.float64)), absorbed, heat)
                        maps[nid] = heat.to(cp.x.dtype)
                continue
            results = cp.down_channels(layer, channels, to=below)
            for nid, (flow, absorbed) in zip(part, results):
                node = nodes[nid]
                flows = channel_sums(flow, cp.dims[below])
                nodes[nid] = _settle(node, float(flows.sum()), absorbed, None)
                for c in _top(flows, widths[level]):
                    if float(flows[c]) == 0.0:
                        continue
                    child = make(below, c, level + 1)
                    edges.append(GraphEdge(nid, child, float(flows[c]), _ratio(float(flows[c]), node.relevance)))
                    if child not in next_frontier:
                        next_frontier.append(child)
            if heatmaps:
                if layer not in bypass:
                    bypass[layer] = _bypasses(cp.tensors[layer], cp.tensors[below], cp.traced.input)
                # from the flows at the layer below (sharing the flows' pass) unless a path
                # from the node to the input avoids that layer
                heats = cp.down_channels(layer, channels, ledger=False) if bypass[layer] else \
                    cp.down_many(below, [f for f, _ in results], ledger=False)
                for nid, (heat, _) in zip(part, heats):
                    nodes[nid] = replace(nodes[nid], heatmap_sum=float(heat.sum(dtype=torch.float64)))
                    maps[nid] = heat.to(cp.x.dtype)
        frontier = next_frontier
    progress.step(1, 1)
    return AttributionGraph(
        nodes=tuple(nodes.values()), edges=tuple(edges), layers=tuple(names), width=tuple(widths),
        target=cp.target, explained=explained, preset=cp.traced.preset.name, params=dict(cp.traced.params),
        channel_dims={n: cp.dims[n] for n in names}, meta={"layer_totals": totals}, heatmaps=maps,
    )


def _bypasses(top: torch.Tensor, bottom: torch.Tensor, leaf: torch.Tensor) -> bool:
    """Whether the autograd graph leads from ``top`` to the input ``leaf`` without passing ``bottom``."""
    stop = bottom.grad_fn
    seen: set[int] = set()
    todo = [top.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn is stop or id(fn) in seen:
            continue
        seen.add(id(fn))
        if getattr(fn, "variable", None) is leaf:
            return True
        todo.extend(f for f, _ in fn.next_functions)
    return False


def _settle(node: GraphNode, flow_out: float, absorbed: float, heat: torch.Tensor | None) -> GraphNode:
    residual = abs(flow_out + absorbed - node.relevance) / abs(node.relevance) if node.relevance else None
    out = replace(node, flow_out=flow_out, absorbed=absorbed, residual=residual)
    if heat is not None:
        out = replace(out, heatmap_sum=flow_out)
    return out


def _top(values: torch.Tensor, k: int) -> list[int]:
    k = min(k, values.numel())
    return [int(i) for i in values.abs().topk(k).indices]


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def expand(graph: AttributionGraph, nid: str, width: int = 3, layer: str | None = None,
           progress: Progress | None = None) -> AttributionGraph:
    """``graph`` with up to ``width`` more children of node ``nid``: the channels of the
    layer below that receive most of its relevance (those already in the graph stay).

    The layer below is the next of ``graph.layers``; below the lowest one it is
    ``layer`` or, by default, the next block towards the input. New nodes get their
    heatmaps; a new lowest layer extends ``graph.layers``.
    """
    src = graph.source
    if src is None:
        raise GraphError("This graph is not linked to a model (it was read from a file); build it again from the "
                         "model to expand it.")
    node = graph.node(nid)
    if node.id == ROOT:
        raise GraphError("The output's children are the first level; build the graph with a larger width[0] instead.")
    w = _widths(width)[0]
    progress = progress or Progress()
    index = graph.layers.index(node.layer)
    if layer is None:
        layer = graph.layers[index + 1] if index + 1 < len(graph.layers) else _next_below(graph, node.layer, progress)
    elif layer in graph.layers and graph.layers.index(layer) != index + 1:
        raise GraphError(f"Layer {layer!r} is not the level below {node.layer!r} in this graph; its next level is "
                         f"{graph.layers[index + 1] if index + 1 < len(graph.layers) else 'a new layer'}.")
    check_layer_names(src.module, [node.layer, layer])
    cp = ConditionalPass(src.module, src.x, [node.layer, layer], graph.target, src.preset, src.overrides,
                         src.channel_dim, progress, batch=1 if src.batch is None else src.batch,
                         **src.params)
    if cp.order != [node.layer, layer]:
        raise GraphError(f"Layer {layer!r} is not below {node.layer!r}: choose a layer nearer the input.")
    rel = cp.relevance([node.layer, layer])
    dims = {**dict(graph.channel_dims), layer: cp.dims[layer]}
    sums = channel_sums(rel[layer], cp.dims[layer])
    total = float(sums.abs().sum())
    ((flow, absorbed),) = cp.down_channels(node.layer, [node.channel], to=layer)
    flows = channel_sums(flow, cp.dims[layer])
    have = {e.target for e in graph.children(nid)}
    fresh = [c for c in _top(flows, flows.numel()) if node_id(layer, c) not in have and float(flows[c]) != 0.0][:w]
    nodes = {n.id: n for n in graph.nodes}
    edges = list(graph.edges)
    maps = dict(graph.heatmaps)
    new_layer = layer not in graph.layers
    if new_layer:  # the node's relevance now leaves towards the new layer, not the input
        nodes[nid] = _settle(nodes[nid], float(flows.sum()), absorbed, None)
    unseen = [c for c in fresh if node_id(layer, c) not in nodes]
    heats = cp.down_channels(layer, unseen)
    for c, (heat, ab) in zip(unseen, heats):
        cid = node_id(layer, c)
        r = float(sums[c])
        nodes[cid] = GraphNode(cid, layer, c, node.level + 1, r, r / total if total else 0.0)
        nodes[cid] = _settle(nodes[cid], float(heat.sum(dtype=torch.float64)), ab, heat) if new_layer else \
            replace(nodes[cid], heatmap_sum=float(heat.sum(dtype=torch.float64)))
        maps[cid] = heat.to(src.x.dtype)
    for c in fresh:
        edges.append(GraphEdge(nid, node_id(layer, c), float(flows[c]), _ratio(float(flows[c]), node.relevance)))
    totals = {**dict(graph.meta.get("layer_totals", {})), layer: total}
    progress.step(1, 1)
    return replace(
        graph, nodes=tuple(nodes.values()), edges=tuple(edges), heatmaps=maps, channel_dims=dims,
        layers=graph.layers + ((layer,) if new_layer else ()), width=graph.width + ((w,) if new_layer else ()),
        meta={**dict(graph.meta), "layer_totals": totals},
    )


def _next_below(graph: AttributionGraph, layer: str, progress: Progress) -> str:
    """The nearest block (else conv/dense layer) that runs before ``layer`` and leads to it."""
    src = graph.source
    blocks, plain = candidates(src.module)
    cp = ConditionalPass(src.module, src.x, list(dict.fromkeys(blocks + plain + [layer])), graph.target, src.preset,
                         src.overrides, src.channel_dim, progress, require=False, **src.params)  # one copy: no masks
    order = cp.traced.tap_order
    if layer not in order:
        raise GraphError(f"Layer {layer!r} did not run; cannot find the layer below it.")
    before = order[: order.index(layer)]
    usable = cp.on_path([n for n in before if n in cp.tensors])
    depth = layer.count(".")
    for group in ([n for n in blocks if n.count(".") == depth], blocks, plain):
        options = [n for n in before if n in usable and n in set(group)]
        if options:
            return options[-1]
    raise GraphError(f"No layer with channels lies below {layer!r}; the graph cannot grow further down.")
