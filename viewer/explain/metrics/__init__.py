"""Metrics for attribution maps: conservation, localisation against a mask,
faithfulness by perturbation, and agreement between two maps."""

from viewer.explain.metrics.agreement import spearman, top_k_overlap
from viewer.explain.metrics.conservation import Conservation, conservation
from viewer.explain.metrics.localisation import (
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    top_k_iou,
)
from viewer.explain.metrics.perturbation import PerturbationCurve, aopc, perturbation_curve

__all__ = [
    "Conservation",
    "conservation",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "pointing_game",
    "top_k_iou",
    "PerturbationCurve",
    "perturbation_curve",
    "aopc",
    "spearman",
    "top_k_overlap",
]
