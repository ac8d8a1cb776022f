"""Layer-wise Relevance Propagation at the level of torch operations.

``lrp(model, x, target, preset, overrides, **params)`` explains one input; the
rules (``rules.py``), presets (``presets.py``), the operation tracer
(``trace.py``) and the model preparation (``canonize.py``) are separate so each can
be read on its own.
"""

from viewer.explain.lrp.engine import lrp
from viewer.explain.lrp.presets import PRESETS, Preset, PresetInfo, has_attention, list_presets, recommended_preset
from viewer.explain.lrp.rules import RULES, AlphaBeta, Epsilon, Flat, Gamma, Norm, Pass, Rule, WSquare, ZBox, ZPlus, make_rule

__all__ = [
    "lrp", "PRESETS", "Preset", "PresetInfo", "list_presets", "recommended_preset", "has_attention", "RULES", "Rule",
    "make_rule",
    "Epsilon", "ZPlus", "Gamma", "AlphaBeta", "Flat", "WSquare", "ZBox", "Pass", "Norm",
]
