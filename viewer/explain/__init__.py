"""Attribution engine, pure torch: LRP, Grad-CAM, gradient methods, occlusion, metrics."""

from viewer.explain.progress import Cancelled, Progress
from viewer.explain.result import Relevance
from viewer.explain.target import Target
from viewer.explain.lrp import PRESETS, lrp, list_presets
from viewer.explain.registry import METHODS, MethodInfo, MethodUnavailableError, explain
from viewer.explain.preview import preview_then_refine
from viewer.explain.graph import GraphError, attribution_graph, channel_relevance, concept_relevance

__all__ = [
    "Relevance",
    "Target",
    "Progress",
    "Cancelled",
    "lrp",
    "explain",
    "PRESETS",
    "METHODS",
    "list_presets",
    "MethodInfo",
    "MethodUnavailableError",
    "preview_then_refine",
    "GraphError",
    "attribution_graph",
    "concept_relevance",
    "channel_relevance",
]
