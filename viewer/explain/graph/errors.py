"""The error a user can cause when asking for conditional relevance or a graph."""

from __future__ import annotations


class GraphError(ValueError):
    """A request the graph engine cannot answer: an unknown or unusable layer, a bad
    width, a layer that does not lead to the output. The message says what to change."""
