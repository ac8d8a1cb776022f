"""The attribution graph's background work as immutable requests, and what comes back.

Like :class:`~viewer.session.requests.ExplainRequest`, each request names what to
compute (scan and model by token, the LRP preset and parameters, the target, the graph
settings) without holding heavy objects, so it doubles as the key of the job cache:
switching back to an earlier preset or width shows the earlier graph at once, and a
graph can never be shown for another scan, model or preset than the one it names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from viewer.session.requests import TargetKey, freeze

DEFAULT_WIDTH = (6, 3)
KEEP_SHARE = 0.8  # "keep 80 % of flow"
EXAMPLES_K = 8
MAX_WIDTH = 64


def parse_node(nid: str) -> tuple[str, int]:
    """``"features.3:27"`` → ``("features.3", 27)``; ValueError for anything else."""
    layer, sep, channel = str(nid).rpartition(":")
    if not sep or not layer or not channel.isdigit():
        raise ValueError(f"{nid!r} is not a graph node (written layer:channel, e.g. features.3:27).")
    return layer, int(channel)


def check_width(width: Any) -> tuple[int, ...]:
    """Nodes per parent at each level as a tuple of whole numbers between 1 and MAX_WIDTH."""
    values = (width,) if isinstance(width, int) else tuple(width)
    if not values or any(isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= MAX_WIDTH for w in values):
        raise ValueError(f"The graph's width is whole numbers between 1 and {MAX_WIDTH} (nodes at level 1, then "
                         f"children per node), e.g. 6,3; got {width!r}.")
    return values


@dataclass(frozen=True)
class GraphSettings:
    """What the user chose in the pane: layers (None: the model's last blocks), width
    per level, and whether to keep only the nodes that carry :data:`KEEP_SHARE` of the flow."""

    layers: tuple[str, ...] | None = None
    width: tuple[int, ...] = DEFAULT_WIDTH
    keep: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", check_width(self.width))
        if self.layers is not None:
            layers = tuple(str(n) for n in self.layers)
            if not layers:
                raise ValueError("Choose at least one layer, or None for the automatic choice.")
            if len(set(layers)) != len(layers):
                raise ValueError(f"Each layer may be chosen once; got {list(layers)}.")
            object.__setattr__(self, "layers", layers)

    def with_(self, **changes: Any) -> "GraphSettings":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class GraphRequest:
    """One graph: built from ``preset``/``params`` for ``target``, pruned when ``keep``,
    then grown by ``expansions`` (``(node id, width)`` in the order the user asked)."""

    scan_token: str
    model_token: str
    preset: str
    params: tuple[tuple[str, Any], ...]
    target: TargetKey
    layers: tuple[str, ...] | None
    width: tuple[int, ...]
    keep: float | None = None
    expansions: tuple[tuple[str, int], ...] = ()
    device: str = "cpu"
    precision: str = "float32"
    mask_token: str | None = None

    @staticmethod
    def make(scan_token: str, model_token: str, preset: str, params: Mapping[str, Any], target: TargetKey,
             settings: GraphSettings, expansions: tuple = (), device: str = "cpu", precision: str = "float32",
             mask_token: str | None = None) -> "GraphRequest":
        is_region = isinstance(target, tuple) and target[:1] == ("region",)
        return GraphRequest(scan_token, model_token, preset, freeze(dict(params)), target, settings.layers,
                            settings.width, KEEP_SHARE if settings.keep else None, tuple(expansions), device,
                            precision, mask_token if is_region else None)

    @property
    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def base(self) -> "GraphRequest":
        """The same graph before pruning and growing: what the others are made from."""
        return dataclasses.replace(self, keep=None, expansions=())


@dataclass(frozen=True, eq=False)
class GraphResult:
    """A graph with each node's heatmap on the scan's grid (float32, the scan's shape) and
    the voxel where that map is largest (the crosshair goes there when the node is clicked)."""

    request: GraphRequest
    graph: Any  # viewer.explain.graph.AttributionGraph
    maps: Mapping[str, np.ndarray]
    peaks: Mapping[str, tuple[int, int, int]]
    labels: tuple[str, ...] = ()

    @property
    def nbytes(self) -> int:
        n = sum(int(m.nbytes) for m in self.maps.values())
        for t in getattr(self.graph, "heatmaps", {}).values():
            n += t.element_size() * t.nelement()
        return n

    def node_ids(self) -> list[str]:
        return [n.id for n in self.graph.nodes]


def peak_of(volume: np.ndarray) -> tuple[int, int, int]:
    """The voxel of largest positive relevance (of largest |relevance| when none is positive)."""
    flat = int(np.argmax(volume)) if float(np.max(volume)) > 0 else int(np.argmax(np.abs(volume)))
    return tuple(int(v) for v in np.unravel_index(flat, volume.shape))  # type: ignore[return-value]


@dataclass(frozen=True)
class AblationRequest:
    """The current case run through a copy of the model with ``channels`` switched off
    (``((layer, channel, channel_dim), ...)``), explained with the graph's preset and target."""

    scan_token: str
    model_token: str
    preset: str
    params: tuple[tuple[str, Any], ...]
    target: TargetKey
    channels: tuple[tuple[str, int, int], ...]
    device: str = "cpu"
    precision: str = "float32"
    mask_token: str | None = None


@dataclass(frozen=True, eq=False)
class AblationResult:
    """Old and new prediction, the explained class's logit before and after, and the
    ablated model's input heatmap on the scan grid."""

    request: AblationRequest
    before: Any  # viewer.session.results.Prediction
    after: Any
    target_index: int | None
    logit_before: float | None
    logit_after: float | None
    on_scan: np.ndarray
    peak: tuple[int, int, int]

    @property
    def nbytes(self) -> int:
        return int(self.on_scan.nbytes)


@dataclass(frozen=True)
class ExamplesRequest:
    """The reference regions where ``layer:channel`` carries most relevance of ``target``."""

    model_token: str
    cases: tuple[tuple[str, str, int, int], ...]  # (name, path, size, mtime_ns): a changed file is another request
    layer: str
    channel: int
    channel_dim: int | None
    preset: str
    params: tuple[tuple[str, Any], ...]
    target: Any
    k: int = EXAMPLES_K


@dataclass(frozen=True, eq=False)
class ReferenceExample:
    """One crop for the examples panel: which case, where (a voxel of that case's scan,
    for opening it there), the score, and the crop's picture and heatmap as 2D planes
    (the plane through the crop's centre for 3D crops)."""

    name: str
    path: str
    rank: int
    score: float
    scan_ijk: tuple[int, int, int]
    slice_index: int | None
    box: tuple[tuple[int, int], ...]
    image: np.ndarray
    heatmap: np.ndarray | None


@dataclass(frozen=True, eq=False)
class ExamplesResult:
    request: ExamplesRequest
    examples: tuple[ReferenceExample, ...]
    skipped: tuple[str, ...] = field(default=())  # cases that could not be read or prepared, and why

    @property
    def nbytes(self) -> int:
        return sum(int(e.image.nbytes) + (0 if e.heatmap is None else int(e.heatmap.nbytes)) for e in self.examples)


@dataclass(frozen=True, eq=False)
class ShownMap:
    """What the slice views show instead of the main panel's map: the conditional map of
    the selected nodes (their sum), or the map of the model with features switched off."""

    kind: str  # "nodes" or "ablation"
    label: str
    on_scan: np.ndarray
    peak: tuple[int, int, int]
    _limits: dict = field(default_factory=dict, repr=False, compare=False)

    def limit(self, overlay: Any) -> float:
        """The colour limit under the main panel's overlay settings (memoised per percentile)."""
        if overlay.limit_mode == "fixed":
            return float(overlay.fixed_limit)
        key = float(overlay.percentile)
        if key not in self._limits:
            self._limits[key] = overlay.limit_for(self.on_scan)
        return self._limits[key]
