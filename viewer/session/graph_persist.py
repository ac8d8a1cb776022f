"""The graph's part of a session file: settings, selected nodes, expansions, switched-off
features and the reference folder, as plain values under the file's ``"graph"`` key.

Older session files have no such key and restore with the graph closed and default
settings; a bad entry is named in the restore's problem list and the rest applies.
The two hooks extend :class:`~viewer.session.state.StateMixin` (this mixin comes first in
the session's bases).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from viewer.session.graph_requests import GraphSettings, parse_node


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class GraphPersistMixin:
    def graph_document(self) -> dict[str, Any]:
        """The graph's settings and choices as JSON-able values."""
        s = self.graph_settings
        return {
            "open": bool(self.graph_enabled),
            "layers": None if s.layers is None else list(s.layers),
            "width": list(s.width),
            "keep": bool(s.keep),
            "selected": list(self.graph_selection),
            "expanded": [[nid, int(w)] for nid, w in self._graph_expansions],
            "ablations": [[nid, int(dim)] for nid, dim in self._ablations.items()],
            "show_ablated_map": bool(self.show_ablated_map),
            "reference_folder": self.reference_folder,
        }

    def to_state(self) -> Any:
        state = super().to_state()  # type: ignore[misc]
        return dataclasses.replace(state, graph=self.graph_document())

    def _restore_settings(self, state: Any, problems: list[str]) -> None:
        super()._restore_settings(state, problems)  # type: ignore[misc]
        self.restore_graph(getattr(state, "graph", None), problems)

    def restore_graph(self, doc: Mapping[str, Any] | None, problems: list[str]) -> None:
        """Apply a :meth:`graph_document`; problems are appended, never raised."""
        doc = dict(doc or {})
        try:
            layers = doc.get("layers")
            settings = GraphSettings(None if layers is None else tuple(layers),
                                     tuple(doc.get("width", GraphSettings().width)), bool(doc.get("keep", False)))
            if settings.layers is not None and self.model is not None:
                from viewer.explain.graph.layers import check_layer_names

                check_layer_names(self.model.module, list(settings.layers))
        except (TypeError, ValueError) as exc:
            problems.append(f"Graph settings not restored: {exc}")
            settings = GraphSettings()
        self.graph_settings = settings
        self._graph_expansions = tuple((nid, int(w)) for nid, w in self._pairs(doc, "expanded", problems))
        self._graph_selected = tuple(n for n in self._nodes(doc.get("selected") or [], "selected", problems))
        self._forget_ablations()
        for nid, dim in self._pairs(doc, "ablations", problems):
            self._ablations[nid] = int(dim)
        self.show_ablated_map = bool(doc.get("show_ablated_map", True))
        folder = doc.get("reference_folder")
        if folder is not None and not isinstance(folder, str):
            problems.append("Reference folder not restored: it should be a path.")
        elif folder != self.reference_folder:
            self.set_reference_folder(folder)  # a folder that is gone is reported (into the problems)
        self.set_graph_enabled(bool(doc.get("open", False)))
        self.graph_changed.emit("settings")
        self._submit_graph()
        self._submit_ablation()

    def _nodes(self, values: Any, what: str, problems: list[str]) -> list[str]:
        out = []
        for v in values if isinstance(values, list) else []:
            try:
                parse_node(v)
                out.append(v)
            except ValueError as exc:
                problems.append(f"Graph {what} entry not restored: {exc}")
        if not isinstance(values, list):
            problems.append(f"Graph {what} not restored: it should be a list of nodes.")
        return out

    def _pairs(self, doc: Mapping[str, Any], what: str, problems: list[str]) -> list[tuple[str, int]]:
        """``[[node, number], ...]`` entries (expansion widths, channel dimensions)."""
        out = []
        for item in doc.get(what) or []:
            ok = isinstance(item, (list, tuple)) and len(item) == 2 and _is_int(item[1])
            if ok and self._nodes([item[0]], what, problems):
                out.append((str(item[0]), int(item[1])))
            elif not ok:
                problems.append(f"Graph {what} entry {item!r} not restored: it should be [node, number].")
        return out
