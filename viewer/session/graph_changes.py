"""Which graph nodes changed between model A and model B: "changes vs B" in the graph pane.

A node's share is its channel's relevance over the layer's total |relevance| (the
``share`` the graph shows). For the layers of A's current graph, the same case, target
(A's graph target, so both models explain the same class) and LRP preset, the shares of
*every* channel are computed for A and for B (:func:`viewer.explain.graph.channel_relevance`,
one LRP pass per model), so a channel that B moved into the top of a layer is found even
when A's graph does not show it. The result lists the channels with the largest
|Δshare| = |share_B − share_A| and gives each node of A's graph its Δ.

Computed on the worker only while the graph pane is open, model B is open and the user
asked for it; cached by request (A's graph request, its layers, B's model token).
Mixed into :class:`viewer.session.session.Session` ahead of the graph mixin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from viewer.explain.progress import Progress
from viewer.session import compute
from viewer.session.graph_requests import GraphRequest, parse_node

CHANGES_SLOT = ("graph", "changes")
TOP = 10


@dataclass(frozen=True)
class ChangesRequest:
    graph: GraphRequest  # A's graph, unpruned and ungrown (what fixes the case, target and preset)
    layers: tuple[str, ...]
    compare_token: str


@dataclass(frozen=True)
class NodeChange:
    """One channel: its share of the layer's |relevance| in A and in B, and the change."""

    nid: str
    share_a: float
    share_b: float

    @property
    def delta(self) -> float:
        return self.share_b - self.share_a


@dataclass(frozen=True, eq=False)
class GraphChanges:
    """Per layer, every channel's share in A and in B (float64 arrays)."""

    request: ChangesRequest
    shares_a: Mapping[str, np.ndarray] = field(repr=False)
    shares_b: Mapping[str, np.ndarray] = field(repr=False)

    def change(self, nid: str) -> NodeChange | None:
        """The node's change (None for a layer or channel that was not compared)."""
        layer, channel = parse_node(nid)
        if layer not in self.shares_a or not 0 <= channel < len(self.shares_a[layer]):
            return None
        return NodeChange(nid, float(self.shares_a[layer][channel]), float(self.shares_b[layer][channel]))

    def top(self, k: int = TOP) -> list[NodeChange]:
        """The ``k`` channels with the largest |Δshare| over all compared layers (ties: layer order, channel)."""
        rows = [NodeChange(f"{layer}:{c}", float(a[c]), float(self.shares_b[layer][c]))
                for layer, a in self.shares_a.items() for c in range(len(a))]
        rows.sort(key=lambda r: -abs(r.delta))  # stable: ties keep layer and channel order
        return rows[:k]

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.shares_a.values()) * 2


def layer_shares(module: Any, x: Any, layers: tuple[str, ...], target: Any, preset: str, params: Mapping[str, Any],
                 progress: Progress | None = None) -> dict[str, np.ndarray]:
    """Every channel's relevance over its layer's total |relevance| (0 for a layer without any)."""
    from viewer.explain.graph import channel_relevance

    sums = channel_relevance(module, x, list(layers), target=target, preset=preset, progress=progress, **params)
    out = {}
    for layer in layers:
        r = sums[layer].double().cpu().numpy()
        total = float(np.abs(r).sum())
        out[layer] = r / total if total else np.zeros_like(r)
    return out


def compute_changes(ctx_a: compute.ModelContext, ctx_b: compute.ModelContext, request: ChangesRequest, target: Any,
                    progress: Progress) -> GraphChanges:
    from viewer.explain.graph.conditional import span

    g = request.graph
    shares = []
    for k, ctx in enumerate((ctx_a, ctx_b)):
        module, x = ctx.module_and_input(g.device, g.precision)
        shares.append(layer_shares(module, x, request.layers, target, g.preset, g.params_dict,
                                   span(progress, k / 2, (k + 1) / 2)))
    return GraphChanges(request, shares[0], shares[1])


class GraphChangesMixin:
    def _init_graph_changes(self) -> None:
        self.graph_changes_enabled = False
        self._changes_request: ChangesRequest | None = None
        self._changes_result: GraphChanges | None = None
        self.graph_changes_error: str | None = None
        self.graph_changed.connect(self._changes_follow)
        self.compare_changed.connect(lambda part: part == "model" and self._submit_changes())

    def graph_changes(self) -> GraphChanges | None:
        """The changes between A and B for the current graph, or None (off, no B, computing)."""
        with self._lock:
            return self._changes_result

    def graph_changes_busy(self) -> bool:
        return self._runner.is_busy(CHANGES_SLOT)

    def set_graph_changes(self, enabled: bool) -> None:
        """Compare the current graph's layers between model A and model B (needs model B)."""
        enabled = bool(enabled)
        if enabled and self.compare_model is None:
            raise ValueError("Open a second model first (File → Compare with model…) to see what changed.")
        if enabled != self.graph_changes_enabled:
            self.graph_changes_enabled = enabled
            self._submit_changes()

    def _changes_follow(self, part: str) -> None:
        if part == "graph":
            self._submit_changes()

    def _submit_changes(self) -> None:
        if self._closed:
            return
        graph, ctx_a, ctx_b = self.graph(), self._ctx, self._compare_ctx
        wanted = (self.graph_changes_enabled and self.graph_enabled and graph is not None and ctx_a is not None
                  and ctx_b is not None and self.compare_model is not None)
        req = ChangesRequest(graph.request.base(), tuple(graph.graph.layers), self._compare_token) if wanted else None
        with self._lock:
            if req is not None and req == self._changes_request and (
                    self._changes_result is not None or self.graph_changes_busy()):
                return
            changed = req != self._changes_request or self._changes_result is not None
            self._changes_request, self._changes_result, self.graph_changes_error = req, None, None
        if req is None:
            self._runner.drop(CHANGES_SLOT)
            if changed:
                self.graph_busy.emit("changes", False)
                self.graph_changed.emit("changes")
            return
        if self.compare_model is not None and not getattr(self.compare_model, "structured", True):
            with self._lock:
                self.graph_changes_error = "Model B hides its layers; its graph cannot be compared."
            self.graph_changed.emit("changes")
            return
        target = graph.graph.target
        key = ("changes", req)
        if self._runner.cached(key) is None:
            self.graph_busy.emit("changes", True)
        self.graph_changed.emit("changes")
        self._runner.submit(CHANGES_SLOT, key, lambda p: compute_changes(ctx_a, ctx_b, req, target, p))

    # -- worker callbacks (ahead of the ablation mixin's) -------------------------------------------
    def _graph_part_result(self, part: str, key: Any, result: Any) -> None:
        if part != "changes":
            super()._graph_part_result(part, key, result)  # type: ignore[misc]
            return
        with self._lock:
            if key[1] != self._changes_request:
                return
            self._changes_result = result
        self.graph_busy.emit(part, False)
        self.graph_changed.emit(part)

    def _graph_part_error(self, part: str, key: Any, message: str) -> None:
        if part != "changes":
            super()._graph_part_error(part, key, message)  # type: ignore[misc]
            return
        with self._lock:
            if key[1] != self._changes_request:
                return
            self.graph_changes_error, self._changes_request = message, None
        self.graph_busy.emit(part, False)
        self.graph_changed.emit(part)
        self._report_once("Changes vs model B failed", message)

    def _graph_part_cancelled(self, part: str, key: Any) -> None:
        if part == "changes":
            if key[1] == self._changes_request:
                self._changes_request = None
            return
        super()._graph_part_cancelled(part, key)  # type: ignore[misc]
