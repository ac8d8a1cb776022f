"""Writing a graph to a folder: ``graph.json``, ``graph.png`` and one NIfTI per node.

Node heatmaps go onto the scan's own grid (through the ``to_scan`` that
``LoadedModel.prepare`` returned), so ``nodes/<layer>_<channel>.nii.gz`` opens aligned
over the scan in any viewer, like the batch command's relevance maps. Every file is
written atomically; nothing about the patient is recorded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from viewer.explain.graph.drawing import save_graph_png
from viewer.explain.graph.errors import GraphError
from viewer.explain.graph.model import ROOT, AttributionGraph


def node_file(layer: str, channel: int) -> str:
    """``nodes/`` file name of a node: the layer name made file-safe, then the channel."""
    return f"{re.sub(r'[^A-Za-z0-9.-]+', '-', layer).strip('-') or 'layer'}_{channel}.nii.gz"


def export_graph(
    graph: AttributionGraph,
    out: str | os.PathLike,
    scan: Any = None,
    to_scan: Any = None,
    labels: Sequence[str] | None = None,
    about: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``graph.json``, ``graph.png`` and (given ``scan`` and ``to_scan``) the node
    heatmaps into folder ``out`` (created if missing). Returns the written paths by role
    (``json``, ``png``, and each node id)."""
    from viewer.io.nifti import save_nifti

    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GraphError(f"Cannot create the output folder {folder}: {exc}") from exc
    written: dict[str, Path] = {}
    files: dict[str, str] = {}
    if scan is not None and to_scan is not None and graph.heatmaps:
        (folder / "nodes").mkdir(exist_ok=True)
        for node in graph.nodes:
            if node.id == ROOT or node.id not in graph.heatmaps:
                continue
            name = node_file(node.layer, node.channel)
            path = folder / "nodes" / name
            save_nifti(graph.heatmap_on_scan(node.id, to_scan), like=scan, path=path,
                       description=f"lrp-viewer crp {node.layer}:{node.channel} {graph.preset}",
                       extensions={"content": "conditional relevance", "node": node.id, "layer": node.layer,
                                   "channel": node.channel, "relevance": node.relevance, "preset": graph.preset})
            written[node.id] = path
            files[node.id] = f"nodes/{name}"
    info = {**dict(about or {}), "node_files": files}
    written["json"] = graph.to_json(folder / "graph.json", about=info, labels=labels)
    written["png"] = save_graph_png(graph, folder / "graph.png", list(labels) if labels else None)
    return written
