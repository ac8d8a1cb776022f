"""The attribution graph as data: nodes (features), edges (relevance flows), heatmaps.

Everything but the heatmaps and the link back to the model is plain numbers and
strings, so a graph round-trips through JSON (:meth:`AttributionGraph.to_json`,
:meth:`AttributionGraph.from_json`) and a UI can show a saved graph without the model.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from viewer.explain.graph.errors import GraphError
from viewer.explain.target import Target

ROOT = "output"
FORMAT = "lrp-viewer attribution graph"
FORMAT_VERSION = 1


def node_id(layer: str, channel: int) -> str:
    return f"{layer}:{channel}"


@dataclass(frozen=True)
class GraphNode:
    """One feature: channel ``channel`` of layer ``layer`` (the root is the target output).

    ``relevance`` is the target's signed relevance at this channel, ``share`` that
    over the layer's total |relevance|. Relevance leaving the node goes to every
    channel of the next layer (``flow_out``; the edges hold the largest flows) or, at
    the lowest level, to the input (the heatmap); ``absorbed`` is what biases and
    stabilisers took on the way, and ``residual = |flow_out + absorbed − relevance| /
    |relevance|`` is what went missing (relevance that bypasses the next layer through
    a shortcut, or rounding). ``heatmap_sum`` is the sum of the node's input map.
    """

    id: str
    layer: str
    channel: int
    level: int
    relevance: float
    share: float
    flow_out: float | None = None
    absorbed: float | None = None
    residual: float | None = None
    heatmap_sum: float | None = None


@dataclass(frozen=True)
class GraphEdge:
    """Relevance flowing from node ``source`` (upper) to node ``target`` (lower); signed:
    a negative edge is inhibitory. ``share`` is ``relevance`` over the source's relevance."""

    source: str
    target: str
    relevance: float
    share: float


@dataclass(frozen=True)
class AttributionGraph:
    """Nodes by level (0 = the target output, 1 = ``layers[0]``, ...), edges, node heatmaps.

    ``heatmaps[node_id]`` is shaped like the model input (map it onto the scan with the
    ``to_scan`` of ``LoadedModel.prepare``: :meth:`heatmap_on_scan`). A graph built from
    a model can grow (:meth:`expand`); one read from JSON has no heatmaps and cannot.
    """

    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    layers: tuple[str, ...]
    width: tuple[int, ...]
    target: Target
    explained: float
    preset: str
    params: Mapping[str, Any]
    channel_dims: Mapping[str, int]
    keep: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    heatmaps: Mapping[str, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)
    source: Any = field(default=None, repr=False, compare=False)

    # -- lookup --------------------------------------------------------------------------------
    def node(self, nid: str) -> GraphNode:
        for n in self.nodes:
            if n.id == nid:
                return n
        raise GraphError(f"The graph has no node {nid!r}; its nodes are {[n.id for n in self.nodes]}.")

    def level(self, level: int) -> list[GraphNode]:
        return [n for n in self.nodes if n.level == level]

    def children(self, nid: str) -> list[GraphEdge]:
        return [e for e in self.edges if e.source == nid]

    def parents(self, nid: str) -> list[GraphEdge]:
        return [e for e in self.edges if e.target == nid]

    def heatmap(self, nid: str) -> torch.Tensor:
        """The node's conditional input relevance (shaped like the model input)."""
        if nid not in self.heatmaps:
            raise GraphError(f"No heatmap for node {nid!r}: it was not computed (heatmaps=False or a graph read "
                             "from JSON); rebuild the graph from the model to get it.")
        return self.heatmaps[nid]

    def heatmap_on_scan(self, nid: str, to_scan) -> np.ndarray:
        """The node's heatmap on the scan's voxel grid (``to_scan`` from ``LoadedModel.prepare``)."""
        return to_scan(self.heatmap(nid))

    def ablation(self, nids: Sequence[str]) -> dict[str, list[int]]:
        """``{layer: [channels]}`` of the given nodes, the argument :func:`ablate` takes."""
        out: dict[str, list[int]] = {}
        for nid in nids:
            n = self.node(nid)
            if n.id == ROOT:
                raise GraphError("The target output cannot be switched off; choose feature nodes.")
            out.setdefault(n.layer, []).append(n.channel)
        return out

    # -- growth and pruning ----------------------------------------------------------------------
    def expand(self, nid: str, width: int = 3, layer: str | None = None, progress=None) -> "AttributionGraph":
        """The graph with ``width`` more children of node ``nid`` in the layer below it (see
        :func:`viewer.explain.graph.build.expand`)."""
        from viewer.explain.graph.build import expand

        return expand(self, nid, width=width, layer=layer, progress=progress)

    def influence(self) -> dict[str, float]:
        """Each node's share of the target's relevance along the graph's paths: |relevance|
        over |explained| at level 1, then the parents' influence times |edge share|, summed."""
        return self._influence(keep=None)[0]

    @property
    def depth(self) -> int:
        return max((n.level for n in self.nodes), default=0)

    def prune(self, keep: float) -> "AttributionGraph":
        """Keep, level by level, the fewest nodes that carry ``keep`` of the level's influence
        (counted through the nodes kept above), as circuit tracers prune, so that wide
        graphs stay readable."""
        if not 0 < keep <= 1:
            raise GraphError(f"keep must be in (0, 1], got {keep}.")
        _, kept = self._influence(keep)
        return replace(
            self, nodes=tuple(n for n in self.nodes if n.id in kept),
            edges=tuple(e for e in self.edges if e.source in kept and e.target in kept), keep=keep,
            heatmaps={k: v for k, v in self.heatmaps.items() if k in kept},
        )

    def _influence(self, keep: float | None) -> tuple[dict[str, float], set[str]]:
        infl, kept = {ROOT: 1.0}, {ROOT}
        scale = abs(self.explained) or 1.0
        for level in range(1, self.depth + 1):
            here = {}
            for n in self.level(level):
                if level == 1:
                    here[n.id] = abs(n.relevance) / scale
                else:
                    here[n.id] = sum(infl[e.source] * abs(e.share) for e in self.parents(n.id) if e.source in kept)
            total, acc = sum(here.values()), 0.0
            for nid, value in sorted(here.items(), key=lambda kv: -kv[1]):
                if keep is not None and (value <= 0 or acc >= keep * total * (1 - 1e-12)):
                    break
                kept.add(nid)
                infl[nid] = value
                acc += value
        return infl, kept

    # -- export --------------------------------------------------------------------------------
    def to_dict(self, about: Mapping[str, Any] | None = None, labels: Sequence[str] | None = None) -> dict[str, Any]:
        """Plain JSON-able record: nodes, edges, parameters, identifiers, versions; ``labels``
        name the model's classes in the target's description."""
        from viewer import __version__

        t = self.target
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "software": {"lrp-viewer": __version__, "torch": torch.__version__},
            "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            **{k: _plain(v) for k, v in {**dict(self.meta), **dict(about or {})}.items()},
            "method": "lrp",
            "preset": self.preset,
            "params": _plain(dict(self.params)),
            "target": {"kind": t.kind, "index": t.index, "other": t.other, "description": t.describe(labels)},
            "explained": _number(self.explained),
            "layers": list(self.layers),
            "width": list(self.width),
            "keep": self.keep,
            "channel_dims": dict(self.channel_dims),
            "nodes": [{k: _plain(v) for k, v in asdict(n).items()} for n in self.nodes],
            "edges": [{k: _plain(v) for k, v in asdict(e).items()} for e in self.edges],
        }

    def to_json(self, path: str | os.PathLike, about: Mapping[str, Any] | None = None,
                labels: Sequence[str] | None = None) -> Path:
        """Write :meth:`to_dict` as JSON, atomically; ``about`` adds identifiers (model, scan)."""
        from viewer.io.atomic import atomic_write

        text = json.dumps(self.to_dict(about, labels), indent=1, allow_nan=False)
        with atomic_write(path, "w") as fh:
            fh.write(text)
        return Path(path)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "AttributionGraph":
        """Read a graph written by :meth:`to_json` (without heatmaps and model link)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise GraphError(f"Cannot read an attribution graph from {path}: {exc}") from exc
        if data.get("format") != FORMAT:
            raise GraphError(f"{path} is not an attribution graph written by lrp-viewer.")
        t = data["target"]
        known = {"format", "format_version", "software", "created", "method", "preset", "params", "target",
                 "explained", "layers", "width", "keep", "channel_dims", "nodes", "edges"}
        return cls(
            nodes=tuple(GraphNode(**n) for n in data["nodes"]),
            edges=tuple(GraphEdge(**e) for e in data["edges"]),
            layers=tuple(data["layers"]), width=tuple(data["width"]),
            target=Target(t["kind"], t["index"], t.get("other")), explained=data["explained"],
            preset=data["preset"], params=data["params"], channel_dims=data.get("channel_dims", {}),
            keep=data.get("keep"), meta={k: v for k, v in data.items() if k not in known},
        )


def _number(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _plain(v: Any) -> Any:
    """JSON-able copy of parameters (tensors and arrays become lists, NaN becomes None)."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    if isinstance(v, np.ndarray):
        return v.tolist() if v.ndim else _plain(v.item())
    if isinstance(v, np.generic):
        return _plain(v.item())
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float):
        return _number(v)
    if v is None or isinstance(v, (str, int, bool)):
        return v
    return str(v)
