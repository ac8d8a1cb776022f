"""What-if: switching graph features off, and graph nodes as comparison panels.

Switching a feature off runs the case through a copy of the model whose channel outputs
zero (the user's model is never touched) and reports the new probabilities next to the
old ones, with the LRP map of the copy; several features combine, and restoring one
recomputes the rest (cached per set of features, so restoring back is instant).
"Send to comparison" adds a panel whose method is :data:`NODE_METHOD`: the conditional
map of the chosen nodes, computed, cached and measured like any other panel.
"""

from __future__ import annotations

from typing import Any, Sequence

from viewer.session.graph_compute import NODE_METHOD, node_params, run_ablation, with_node_method
from viewer.session.graph_requests import AblationRequest, AblationResult, parse_node

ABLATION_SLOT = ("graph", "ablation")


class GraphAblationMixin:
    def _init_ablation(self) -> None:
        self._ablations: dict[str, int] = {}  # node id -> its layer's channel dimension, in the order switched off
        self._ablation_request: AblationRequest | None = None
        self._ablation_result: AblationResult | None = None
        self.ablation_error: str | None = None
        self.show_ablated_map = True

    # -- switching features off -------------------------------------------------------------
    @property
    def ablations(self) -> tuple[str, ...]:
        """The switched-off features (node ids), in the order they were switched off."""
        return tuple(self._ablations)

    def ablation_result(self) -> AblationResult | None:
        with self._lock:
            return self._ablation_result

    def ablation_busy(self) -> bool:
        return self._runner.is_busy(ABLATION_SLOT)

    def switch_off(self, nid: str, channel_dim: int | None = None) -> None:
        """Zero feature ``nid`` (``layer:channel``) in a copy of the model and recompute the
        prediction and map; ``channel_dim`` defaults to the current graph's for that layer."""
        layer, _channel = parse_node(nid)
        if channel_dim is None:
            result = self.graph()
            dims = dict(result.graph.channel_dims) if result is not None else {}
            if layer not in dims:
                raise ValueError(f"Layer {layer!r} is not in the current graph; switch off nodes the graph shows.")
            channel_dim = dims[layer]
        if nid in self._ablations:
            return
        self._ablations[nid] = int(channel_dim)
        self.graph_changed.emit("ablation")
        self._submit_ablation()

    def restore_feature(self, nid: str) -> None:
        """Switch feature ``nid`` back on."""
        if self._ablations.pop(nid, None) is not None:
            self.graph_changed.emit("ablation")
            self._submit_ablation()

    def restore_all_features(self) -> None:
        if self._ablations:
            self._ablations.clear()
            self.graph_changed.emit("ablation")
            self._submit_ablation()

    def set_show_ablated_map(self, show: bool) -> None:
        """Whether the views show the ablated model's map (when no node is selected)."""
        if bool(show) != self.show_ablated_map:
            self.show_ablated_map = bool(show)
            self.graph_changed.emit("ablation")

    def _forget_ablations(self) -> None:
        self._runner.drop(ABLATION_SLOT)
        with self._lock:
            self._ablations.clear()
            self._ablation_request, self._ablation_result, self.ablation_error = None, None, None

    def _make_ablation_request(self) -> AblationRequest | None:
        ctx = self._ctx
        if ctx is None or not self._ablations:
            return None
        preset, params = self.graph_lrp()
        channels = tuple((*parse_node(nid), dim) for nid, dim in self._ablations.items())
        is_region = isinstance(self.target, tuple) and self.target[:1] == ("region",)
        from viewer.session.requests import freeze

        return AblationRequest(ctx.scan_token, ctx.model_token, preset, freeze(params), self.target,
                               tuple(sorted(channels)), self.device, self.precision,
                               self._mask_token if is_region else None)

    def _submit_ablation(self) -> None:
        if self._closed:
            return
        if self._defer:
            self._dirty = True
            return
        req = self._make_ablation_request()
        with self._lock:
            if req is None:
                changed = self._ablation_result is not None or self._ablation_request is not None
                self._ablation_request, self._ablation_result, self.ablation_error = None, None, None
            else:
                changed = req != self._ablation_request or (self._ablation_result is None and not self.ablation_busy())
                if changed:
                    self._ablation_request, self._ablation_result, self.ablation_error = req, None, None
        if req is None:
            self._runner.drop(ABLATION_SLOT)
            if changed:
                self.graph_busy.emit("ablation", False)
                self.graph_changed.emit("ablation")
            return
        if not changed:
            return
        self.graph_changed.emit("ablation")
        ctx, mask, fn = self._ctx, self.mask, self._explain()
        key = ("ablation", req)
        if self._runner.cached(key) is None:
            self.graph_busy.emit("ablation", True)
        self._runner.submit(ABLATION_SLOT, key, lambda p: run_ablation(ctx, req, mask, fn, p))

    # -- worker callbacks for ablation and examples -------------------------------------------
    def _graph_part_result(self, part: str, key: Any, result: Any) -> None:
        if part == "ablation":
            with self._lock:
                if key[1] != self._ablation_request:
                    return
                self._ablation_result = result
        elif part == "examples":
            with self._lock:
                if key[1] != self._examples_request:
                    return
                self._examples_result = result
        else:
            return
        self.graph_busy.emit(part, False)
        self.graph_changed.emit(part)

    def _graph_part_error(self, part: str, key: Any, message: str) -> None:
        with self._lock:
            if part == "ablation" and key[1] == self._ablation_request:
                self.ablation_error, self._ablation_request = message, None
            elif part == "examples" and key[1] == self._examples_request:
                self.examples_error, self._examples_request = message, None
            else:
                return
        self.graph_busy.emit(part, False)
        self.graph_changed.emit(part)
        self._report_once("Switching features off failed" if part == "ablation" else "Reference examples failed",
                          message)

    def _graph_part_cancelled(self, part: str, key: Any) -> None:
        """Under the session lock: a cancelled request may be asked for again."""
        if part == "ablation" and key[1] == self._ablation_request:
            self._ablation_request = None
        elif part == "examples" and key[1] == self._examples_request:
            self._examples_request = None

    # -- graph nodes as comparison panels --------------------------------------------------------
    def send_to_comparison(self, ids: Sequence[str] | None = None) -> int:
        """Add a comparison panel with the conditional map of ``ids`` (default: the selected
        nodes) and open the comparison; returns the panel's index."""
        nodes = [n for n in (ids if ids is not None else self.graph_selection) if n != "output"]
        if not nodes:
            raise ValueError("Select one or more graph nodes to send to the comparison.")
        for nid in nodes:
            parse_node(nid)
        preset, params = self.graph_lrp()
        index = self.add_panel(NODE_METHOD, **node_params(nodes, preset, params))
        self.set_comparison_open(True)
        return index

    def _check_method(self, method: str) -> None:
        if method != NODE_METHOD:
            super()._check_method(method)  # type: ignore[misc]
        elif self.model is not None and not getattr(self.model, "structured", True):
            raise ValueError("Graph nodes need the model's layers; this model hides them.")

    def default_params(self, method: str) -> dict[str, Any]:
        if method == NODE_METHOD:
            return {}
        return super().default_params(method)  # type: ignore[misc]

    def _with_graph_methods(self, explain_fn: Any) -> Any:
        """The explain function the panels use, answering graph-node panels too."""
        return with_node_method(explain_fn)
