"""Which internal features carry a decision, and how relevance flows between them.

Pure torch, built on the LRP engine (one traced forward pass, masked backward passes):

* :func:`concept_relevance` — the input relevance through chosen channels of a layer;
* :func:`attribution_graph` — nodes (channels) and edges (relevance flows) from the
  target down through chosen layers, each node with its heatmap; prunable, growable
  (:meth:`AttributionGraph.expand`), exportable (:func:`export_graph`);
* :func:`channel_relevance` — relevance per channel summed over a reference set,
  optionally only what lands in a region (for attribution-guided training);
* :func:`ablate` — a copy of a model with chosen channels switched off;
* :func:`feature_examples` — the reference cases and regions where a channel carries
  most relevance, cached on disk;
* :func:`layer_names` — the valid layer names of a model.
"""

from viewer.explain.graph.ablation import ablate
from viewer.explain.graph.build import attribution_graph
from viewer.explain.graph.channels import channel_relevance
from viewer.explain.graph.conditional import ConceptRelevance, concept_relevance
from viewer.explain.graph.drawing import draw_graph, save_graph_png
from viewer.explain.graph.errors import GraphError
from viewer.explain.graph.examples import FeatureExample, feature_examples
from viewer.explain.graph.export import export_graph
from viewer.explain.graph.layers import layer_names
from viewer.explain.graph.model import AttributionGraph, GraphEdge, GraphNode

__all__ = [
    "GraphError",
    "ConceptRelevance",
    "concept_relevance",
    "attribution_graph",
    "AttributionGraph",
    "GraphNode",
    "GraphEdge",
    "channel_relevance",
    "ablate",
    "export_graph",
    "feature_examples",
    "FeatureExample",
    "draw_graph",
    "save_graph_png",
    "layer_names",
]
