"""Which internal features carry a decision, and how relevance flows between them.

Pure torch, built on the LRP engine (one traced forward pass, masked backward passes):

* :func:`concept_relevance` — the input relevance through chosen channels of a layer;
* :func:`channel_relevance` — relevance per channel summed over a reference set,
  optionally only what lands in a region (for attribution-guided training);
* :func:`layer_names` — the valid layer names of a model.
"""

from viewer.explain.graph.channels import channel_relevance
from viewer.explain.graph.conditional import ConceptRelevance, concept_relevance
from viewer.explain.graph.errors import GraphError
from viewer.explain.graph.layers import layer_names

__all__ = [
    "GraphError",
    "ConceptRelevance",
    "concept_relevance",
    "channel_relevance",
    "layer_names",
]
