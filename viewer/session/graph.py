"""The attribution graph as part of the session: settings, background builds, selection.

The graph follows the main panel: its preset and LRP parameters (the model's preset when
the panel shows another method), the target, the scan and the model. Whenever one of
them changes, the current graph is dropped at once (a graph is never shown for settings
it was not built with) and a new :class:`GraphRequest` goes to the session's single
worker, after the panels' own explanations; results for older requests are dropped,
and finished graphs are cached by request like explanations, so switching back is
instant. Graphs are only built while the graph pane is open (:meth:`set_graph_enabled`).

Selecting nodes makes their conditional heatmap (summed over several nodes) what the
slice views show (:meth:`graph_overlay`). Mixed into :class:`viewer.session.session.Session`
ahead of the other mixins; switching features off, reference examples and session-file
fields are in :mod:`graph_ablation`, :mod:`graph_examples` and :mod:`graph_persist`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from viewer.session.graph_ablation import GraphAblationMixin
from viewer.session.graph_compute import build_graph
from viewer.session.graph_examples import GraphExamplesMixin
from viewer.session.graph_persist import GraphPersistMixin
from viewer.session.graph_requests import GraphRequest, GraphResult, GraphSettings, ShownMap
from viewer.session.signals import Signal

KIND = "graph"
BUILD_SLOT = (KIND, "build")
GRAPH_SIGNALS = ("graph_changed", "graph_progress", "graph_busy")
ROOT = "output"


def is_graph_slot(slot: Any) -> bool:
    return isinstance(slot, tuple) and slot[:1] == (KIND,)


class GraphMixin(GraphAblationMixin, GraphExamplesMixin, GraphPersistMixin):
    """Signals: ``graph_changed(part)`` (part: "graph", "selection", "settings",
    "ablation", "examples"), ``graph_progress(part, fraction)``, ``graph_busy(part, busy)``;
    they may come from the worker thread, like the session's other signals."""

    def _init_graph(self) -> None:
        for name in GRAPH_SIGNALS:
            setattr(self, name, Signal(name))
        self.graph_settings = GraphSettings()
        self.graph_enabled = False
        self._graph_request: GraphRequest | None = None
        self._graph_result: GraphResult | None = None
        self.graph_error: str | None = None
        self._graph_expansions: tuple[tuple[str, int], ...] = ()
        self._graph_selected: tuple[str, ...] = ()
        self._shown_memo: tuple[Any, ShownMap | None] = (None, None)
        self._init_ablation()
        self._init_examples()
        self.scan_changed.connect(self._graph_scan_changed)
        self.model_changed.connect(self._graph_model_changed)

    def _graph_routes(self, **callbacks: Callable[..., None]) -> dict[str, Callable[..., None]]:
        """The job runner's callbacks, with graph jobs going to this mixin's handlers."""
        mine = {"on_result": self._graph_on_result, "on_error": self._graph_on_error,
                "on_progress": self._graph_on_progress, "on_cancelled": self._graph_on_cancelled}

        def route(own: Callable[..., None], other: Callable[..., None]) -> Callable[..., None]:
            def call(slot: Any, *args: Any) -> None:
                (own if is_graph_slot(slot) else other)(slot, *args)

            return call

        return {name: route(mine[name], fn) for name, fn in callbacks.items()}

    # -- state ----------------------------------------------------------------------------
    def graph(self) -> GraphResult | None:
        """The graph for the current scan, model and settings, or None while it is computed."""
        with self._lock:
            return self._graph_result

    @property
    def graph_request(self) -> GraphRequest | None:
        return self._graph_request

    def graph_busy_now(self) -> bool:
        return self._runner.is_busy(BUILD_SLOT)

    def graph_lrp(self) -> tuple[str, dict[str, Any]]:
        """``(preset, parameters)`` the graph uses: the main panel's when it shows LRP, else
        the model's recommended preset with its defaults."""
        panel = self._panel_states[0]
        params = dict(panel.params) if panel.method == "lrp" else self.default_params("lrp")
        preset = params.pop("preset", None) or getattr(self.model, "preset", None) or "epsilon-plus"
        return str(preset), params

    def graph_layer_choices(self) -> list[str]:
        """Layers a graph level can be: the model's blocks, then its conv/dense layers."""
        if self.model is None or not getattr(self.model, "structured", True):
            return []
        from viewer.explain.graph.layers import candidates

        blocks, plain = candidates(self.model.module)
        return list(dict.fromkeys(blocks + plain))

    # -- settings -------------------------------------------------------------------------
    def set_graph_enabled(self, enabled: bool) -> None:
        """Build graphs (the pane is open) or not (nothing is computed for a closed pane)."""
        enabled = bool(enabled)
        if enabled == self.graph_enabled:
            return
        self.graph_enabled = enabled
        self.graph_changed.emit("settings")
        if enabled:
            self._submit_graph()
        else:
            self._runner.drop(BUILD_SLOT)
            with self._lock:
                self._graph_request = None
            self.graph_busy.emit("graph", False)

    def set_graph_settings(self, **changes: Any) -> None:
        """Change ``layers`` (None: automatic), ``width`` or ``keep`` and rebuild. Expanded
        nodes stay expanded when only ``keep`` changes; new layers or widths start over."""
        settings = self.graph_settings.with_(**changes)
        if settings.layers is not None and self.model is not None:
            from viewer.explain.graph.layers import check_layer_names

            check_layer_names(self.model.module, list(settings.layers))
        if settings == self.graph_settings:
            return
        if (settings.layers, settings.width) != (self.graph_settings.layers, self.graph_settings.width):
            self._graph_expansions = ()
        self.graph_settings = settings
        self.graph_changed.emit("settings")
        self._submit_graph()

    def expand_graph_node(self, nid: str, width: int | None = None) -> None:
        """Grow the graph one level below node ``nid`` (``width`` children; default the last width)."""
        result = self.graph()
        if result is None or nid not in result.node_ids():
            raise ValueError(f"Node {nid!r} is not in the current graph; wait for the graph, then expand one of "
                             "its nodes.")
        if nid == ROOT:
            raise ValueError("The output's children are the first level; raise the first width instead.")
        w = int(width if width is not None else self.graph_settings.width[-1])
        self._graph_expansions = self._graph_expansions + ((nid, w),)
        self._submit_graph()

    def cancel_graph(self) -> None:
        """Stop the graph being built (it stays empty until something changes or Refresh)."""
        self._runner.cancel(BUILD_SLOT)

    def refresh_graph(self) -> None:
        """Build the graph again if it was cancelled or failed."""
        with self._lock:
            if self._graph_result is None:
                self._graph_request = None
        self._submit_graph()

    # -- selection ------------------------------------------------------------------------------
    @property
    def graph_selection(self) -> tuple[str, ...]:
        return self._graph_selected

    def select_graph_nodes(self, ids: Sequence[str], add: bool = False, jump: bool = True) -> None:
        """Show the conditional map of ``ids`` (summed) on the views; ``add`` toggles them in
        and out of the current selection (shift-click). ``jump`` moves the crosshair to
        the shown map's peak."""
        result = self.graph()
        known = set(result.maps) if result is not None else set()
        wanted = [n for n in dict.fromkeys(ids) if n != ROOT]
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise ValueError(f"Node {unknown[0]!r} is not in the current graph.")
        if add:
            current = list(self._graph_selected)
            for n in wanted:
                current.remove(n) if n in current else current.append(n)
            wanted = current
        self._graph_selected = tuple(wanted)
        self.graph_changed.emit("selection")
        shown = self.graph_overlay()
        if jump and shown is not None and shown.kind == "nodes":
            self.set_cursor(shown.peak)

    def clear_graph_selection(self) -> None:
        if self._graph_selected:
            self._graph_selected = ()
            self.graph_changed.emit("selection")

    def graph_overlay(self) -> ShownMap | None:
        """What the slice views show in place of the main panel's map, or None for the panel's:
        the selected nodes' map, else (with features switched off and the ablated map
        chosen) the ablated model's map."""
        result, selected = self.graph(), self._graph_selected
        ablation = self.ablation_result() if self.show_ablated_map else None
        memo_key, memo = self._shown_memo
        if memo_key is not None and memo_key[0] is result and memo_key[1] == selected and memo_key[2] is ablation:
            return memo
        shown = None
        ids = [n for n in selected if result is not None and n in result.maps]
        if ids:
            volume = result.maps[ids[0]] if len(ids) == 1 else np.sum([result.maps[n] for n in ids], axis=0,
                                                                       dtype=np.float32)
            from viewer.session.graph_requests import peak_of

            label = " + ".join(_node_label(n) for n in ids)
            shown = ShownMap("nodes", label, volume, result.peaks[ids[0]] if len(ids) == 1 else peak_of(volume))
        elif ablation is not None:
            off = ", ".join(_node_label(n) for n in self.ablations)
            shown = ShownMap("ablation", f"LRP with {off} switched off", ablation.on_scan, ablation.peak)
        self._shown_memo = ((result, selected, ablation), shown)
        return shown

    # -- scheduling ------------------------------------------------------------------------------
    def _graph_follow(self, pid: int) -> None:
        """Called after the session submitted panel ``pid``: the graph follows panel 0."""
        if self._panel_ids and pid == self._panel_ids[0]:
            self._submit_graph()

    def _make_graph_request(self) -> GraphRequest | None:
        ctx = self._ctx
        if ctx is None:
            return None
        preset, params = self.graph_lrp()
        return GraphRequest.make(ctx.scan_token, ctx.model_token, preset, params, self.target, self.graph_settings,
                                 self._graph_expansions, self.device, self.precision, self._mask_token)

    def _submit_graph(self) -> None:
        if self._closed or not self.graph_enabled:
            return
        if self._defer:
            self._dirty = True
            return
        ctx = self._ctx
        if ctx is None:
            return
        if not getattr(self.model, "structured", True):
            message = (f"The attribution graph needs the model's layers: "
                       f"{getattr(self.model, 'unavailable_reason', '') or 'this model hides them'}.")
            if message != self.graph_error:
                self.graph_error = message
                self.graph_changed.emit("graph")
            return
        req = self._make_graph_request()
        with self._lock:
            same = req == self._graph_request and (self._graph_result is not None or self.graph_busy_now())
            if not same:
                self._graph_request, self._graph_result, self.graph_error = req, None, None
        if not same:
            self.graph_changed.emit("graph")
            key = (KIND, req)
            if self._runner.cached(key) is None:
                self.graph_busy.emit("graph", True)
            mask, cached = self.mask, self._runner.cached
            self._runner.submit(BUILD_SLOT, key, lambda p: build_graph(ctx, req, mask, cached, p))
        self._submit_ablation()

    # -- worker callbacks (worker thread, or the caller's for cached results) --------------------
    def _graph_on_result(self, slot: Any, key: Any, result: Any) -> None:
        part = slot[1]
        if part != "build":
            self._graph_part_result(part, key, result)
            return
        with self._lock:
            if key[1] != self._graph_request:
                return
            self._graph_result = result
            self._graph_selected = tuple(n for n in self._graph_selected if n in result.maps)
        self.graph_busy.emit("graph", False)
        self.graph_changed.emit("graph")
        self._submit_examples()

    def _graph_on_error(self, slot: Any, key: Any, exc: BaseException) -> None:
        part, message = slot[1], str(exc) or type(exc).__name__
        if part != "build":
            self._graph_part_error(part, key, message)
            return
        with self._lock:
            if key[1] != self._graph_request:
                return
            self.graph_error = message
        self.graph_busy.emit("graph", False)
        self.graph_changed.emit("graph")
        self._report_once("Attribution graph failed", message)

    def _graph_on_cancelled(self, slot: Any, key: Any) -> None:
        part = slot[1]
        with self._lock:
            if part == "build" and key[1] == self._graph_request:
                self._graph_request = None  # a later identical request builds again
            else:
                self._graph_part_cancelled(part, key)
        self.graph_busy.emit("graph" if part == "build" else part, False)
        self.graph_changed.emit("graph" if part == "build" else part)

    def _graph_on_progress(self, slot: Any, key: Any, fraction: float) -> None:
        self.graph_progress.emit("graph" if slot[1] == "build" else slot[1], fraction)

    # -- a new scan or model ---------------------------------------------------------------
    def _graph_scan_changed(self) -> None:
        """Another case: the graph is rebuilt (once the panels are submitted); selected nodes
        and switched-off features stay when the new graph has them."""
        with self._lock:
            self._graph_request, self._graph_result, self.graph_error = None, None, None
        self._graph_expansions = ()
        self._forget_examples_result()
        self.graph_changed.emit("graph")

    def _graph_model_changed(self) -> None:
        """Another model: its layers, channels and features are others, so everything resets."""
        with self._lock:
            self._graph_request, self._graph_result, self.graph_error = None, None, None
        self._graph_expansions, self._graph_selected = (), ()
        if self.graph_settings.layers is not None:
            self.graph_settings = self.graph_settings.with_(layers=None)
        self._forget_ablations()
        self._forget_examples_result()
        self.graph_changed.emit("graph")


def _node_label(nid: str) -> str:
    layer, _, channel = nid.rpartition(":")
    return f"{layer} · {channel}"
