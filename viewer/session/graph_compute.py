"""Graph work that runs on the worker thread: building and growing the graph, switching
features off, and the conditional map of chosen nodes as a comparison panel.

Everything here receives the :class:`~viewer.session.compute.ModelContext` (the prepared
input and the per-device model) and returns plain results on the scan's grid, so the
GUI thread only draws. The user's model is never changed: switching a feature off
works on a copy (:func:`viewer.explain.graph.ablate`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from viewer.explain.progress import Progress
from viewer.session import compute
from viewer.session.graph_requests import (
    AblationRequest, AblationResult, GraphRequest, GraphResult, parse_node, peak_of,
)
from viewer.session.results import Prediction

NODE_METHOD = "lrp-node"  # a comparison panel showing the conditional map of graph nodes
BATCH = 32


def _span(progress: Progress, start: float, end: float) -> Progress:
    from viewer.explain.graph.conditional import span

    return span(progress, start, end)


def _forward(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model output in batches (2D models see one batch element per slice)."""
    with torch.no_grad():
        return torch.cat([module(x[i: i + BATCH]) for i in range(0, x.shape[0], BATCH)]).float()


def predicted_class(module: torch.nn.Module, x: torch.Tensor) -> int | None:
    """The class the prediction readout names (mean probability over the batch, so over all
    slices of a 2D model), or None for outputs that are not one score per class."""
    out = _forward(module, x)
    if out.ndim != 2:
        return None
    return int(torch.softmax(out, dim=1).mean(0).argmax())


def graph_target(ctx: compute.ModelContext, target: Any, mask: np.ndarray | None, module: Any,
                 x: torch.Tensor) -> Any:
    """The session's target as the graph engine takes it; the predicted class for None."""
    resolved = compute.resolve_target(ctx, target, mask, module, x)
    if resolved is None:
        return predicted_class(module, x)
    return resolved


def _on_scan(to_scan: Callable[[Any], np.ndarray], t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(to_scan(t.detach().to(device="cpu", dtype=torch.float32)), dtype=np.float32)


def build_graph(ctx: compute.ModelContext, request: GraphRequest, mask: np.ndarray | None,
                cached: Callable[[Any], Any], progress: Progress) -> GraphResult:
    """The graph of ``request``; pruning and growing start from the cached unpruned graph
    when there is one (so toggling "keep 80 %" or expanding a node is quick)."""
    from viewer.explain.graph import GraphError, attribution_graph

    module, x = ctx.module_and_input(request.device, request.precision)
    _, to_scan = ctx.prepared()
    base = request.base()
    hit = cached(("graph", base)) if request != base else None
    notes: list[str] = []
    if hit is not None:
        graph = hit.graph
    else:
        target = graph_target(ctx, request.target, mask, module, x)
        graph = attribution_graph(module, x, target=target, layers=request.layers, width=request.width,
                                  preset=request.preset, progress=_span(progress, 0.0, 0.85), **request.params_dict)
    if request.keep is not None:
        graph = graph.prune(request.keep)
    for i, (nid, width) in enumerate(request.expansions):
        progress.step(0.85 + 0.1 * i / len(request.expansions), 1.0)
        if nid not in {n.id for n in graph.nodes}:
            notes.append(f"Node {nid} is not in this graph; it was not expanded.")
            continue
        try:
            graph = graph.expand(nid, width=width, progress=Progress(None, progress.cancel))
        except GraphError as exc:
            notes.append(f"Node {nid} cannot grow: {exc}")
    progress.check()
    heatmaps = {nid: t.detach().cpu() for nid, t in graph.heatmaps.items()}
    graph = dataclasses.replace(graph, heatmaps=heatmaps, meta={**dict(graph.meta), "notes": tuple(notes)})
    maps = {nid: _on_scan(to_scan, t) for nid, t in heatmaps.items()}
    labels = tuple(getattr(ctx.model, "labels", []) or [])
    return GraphResult(request, graph, maps, {nid: peak_of(m) for nid, m in maps.items()}, labels)


# -- switching features off ------------------------------------------------------------------
def _prediction(model: Any, module: torch.nn.Module, x: torch.Tensor) -> tuple[Prediction, torch.Tensor]:
    """Probabilities as :meth:`LoadedModel.predict` computes them, and the raw outputs."""
    out = _forward(module, x)
    task = getattr(model, "task", "classification")
    probs = torch.sigmoid(out) if out.shape[1] == 1 and task == "segmentation" else torch.softmax(out, dim=1)
    labels = list(getattr(model, "labels", []) or [])
    return Prediction.from_probabilities(probs, labels, task), out


def _target_value(out: torch.Tensor, target: Any) -> tuple[int | None, float | None]:
    """``(class index, mean logit over the batch)`` of a class or contrast target."""
    if out.ndim != 2:
        return None, None
    kind = getattr(target, "kind", None)
    if isinstance(target, int) or kind == "class":
        index = int(target if isinstance(target, int) else target.index)
        return index, float(out[:, index].mean())
    if isinstance(target, tuple) or kind == "contrast":
        a, b = (target if isinstance(target, tuple) else (target.index, target.other))
        return int(a), float((out[:, int(a)] - out[:, int(b)]).mean())
    return None, None


def ablation_channels(request: AblationRequest) -> tuple[dict[str, list[int]], dict[str, int]]:
    channels: dict[str, list[int]] = {}
    dims: dict[str, int] = {}
    for layer, channel, dim in request.channels:
        channels.setdefault(layer, []).append(int(channel))
        dims[layer] = int(dim)
    return channels, dims


def run_ablation(ctx: compute.ModelContext, request: AblationRequest, mask: np.ndarray | None,
                 explain_fn: Callable[..., Any], progress: Progress) -> AblationResult:
    """Prediction and LRP map of a copy of the model with the requested channels at zero."""
    from viewer.explain.graph import ablate

    module, x = ctx.module_and_input(request.device, request.precision)
    _, to_scan = ctx.prepared()
    target = graph_target(ctx, request.target, mask, module, x)
    channels, dims = ablation_channels(request)
    twin = ablate(module, channels, channel_dim=dims)
    progress.check()
    before, out_before = _prediction(ctx.model, module, x)
    after, out_after = _prediction(ctx.model, twin, x)
    index, logit_before = _target_value(out_before, target)
    _, logit_after = _target_value(out_after, target)
    progress.step(0.1, 1.0)
    rel = explain_fn(twin, x, method="lrp", target=target, progress=_span(progress, 0.1, 1.0),
                     preset=request.preset, **dict(request.params))
    on_scan = _on_scan(to_scan, rel.relevance)
    return AblationResult(request, before, after, index, logit_before, logit_after, on_scan, peak_of(on_scan))


# -- graph nodes as a comparison panel -----------------------------------------------------
def node_relevance(module: torch.nn.Module, x: torch.Tensor, target: Any = None, *, nodes: Sequence[str] = (),
                   preset: str = "epsilon-plus", progress: Progress | None = None, **params: Any) -> Any:
    """The input relevance of ``target`` through the given nodes (summed over layers), as a
    :class:`~viewer.explain.Relevance` whose ``explained`` is the relevance that reached
    the nodes, so the comparison pane's conservation readout applies to it."""
    from viewer.explain.graph import concept_relevance
    from viewer.explain.result import Relevance

    progress = progress or Progress()
    groups: dict[str, list[int]] = {}
    for nid in nodes:
        layer, channel = parse_node(nid)
        groups.setdefault(layer, []).append(channel)
    if not groups:
        raise ValueError("Choose at least one graph node to show.")
    if target is None:
        target = predicted_class(module, x)
    total, reached, summed, absorbed, cr = None, 0.0, 0.0, 0.0, None
    for i, (layer, chans) in enumerate(groups.items()):
        cr = concept_relevance(module, x, layer, [tuple(chans)], target, preset,
                               progress=_span(progress, i / len(groups), (i + 1) / len(groups)), **params)
        total = cr.maps[0] if total is None else total + cr.maps[0]
        reached += cr.relevance[0]
        summed += cr.input_sum[0]
        absorbed += cr.absorbed[0]
    return Relevance(relevance=total, output=cr.output, target=cr.target, method=NODE_METHOD, preset=cr.preset,
                     params=dict(cr.params), explained=reached, input_sum=summed, absorbed=absorbed,
                     meta={"nodes": tuple(nodes)})


def with_node_method(explain_fn: Callable[..., Any]) -> Callable[..., Any]:
    """``explain_fn`` that also answers :data:`NODE_METHOD` (graph nodes in a comparison panel)."""

    def run(module: Any, x: torch.Tensor, method: str = "gradcam", target: Any = None,
            progress: Progress | None = None, **params: Any) -> Any:
        if method == NODE_METHOD:
            nodes = params.pop("nodes", ())
            return node_relevance(module, x, target, nodes=tuple(nodes), progress=progress, **params)
        return explain_fn(module, x, method=method, target=target, progress=progress, **params)

    return run


def node_params(nodes: Sequence[str], preset: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A node panel's parameters: the nodes and the LRP preset/parameters of the graph."""
    return {"nodes": tuple(nodes), "preset": preset, **dict(params)}
