"""Presets: which rule goes on which kind of layer (zennit calls these composites).

A preset names a rule for convolutions, one for dense layers and optionally a
special rule for the first layer.  Everything else (activations, sums, pooling,
normalisation, attention, gates) gets the same treatment in every preset; see
``handlers.py``.  The names and default parameters of the CNN presets match
zennit's composites so that results can be compared across tools; ``attn-lrp``
is the transformer preset (AttnLRP, Achtibat et al. 2024), which the app chooses
for models with attention (:func:`recommended_preset`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from viewer.explain.params import ParamSpec

EPSILON = ParamSpec("epsilon", float, 1e-6, min=0.0, max=10.0, label="ε (dense layers)")
GAMMA = ParamSpec("gamma", float, 0.25, min=0.0, max=10.0, label="γ (convolutions)")
LOW = ParamSpec("low", float, None, label="ZBox lower bound")
HIGH = ParamSpec("high", float, None, label="ZBox upper bound")
ALPHA = ParamSpec("alpha", float, 2.0, min=1.0, max=10.0, label="α (positive share)")
BETA = ParamSpec("beta", float, 1.0, min=0.0, max=9.0, label="β (negative share, α − β = 1)")
GATES = ParamSpec("gates", str, "constant", choices=("constant", "uniform"),
                  label="Gates (sigmoid factors): constant, or half of the relevance each")


@dataclass(frozen=True)
class Preset:
    """Rule assignment: ``conv`` for (transposed) convolutions, ``dense`` for
    linear layers, ``first`` for the first layer when ``first_kinds`` matches it
    ("conv" or "any"), ``batchnorm`` for an eval-mode BatchNorm that could not be
    folded into the layer before it: "norm" (the ε-rule of its per-channel affine
    map, its shift a bias) or "pass" (relevance passes unchanged).

    "pass" is what canonizing BatchNorm → activation → layer gives (the BatchNorm's
    scale moves into the next layer's weights, where the z-rules do not see it, and
    its shift into the activation's threshold; Motzkus et al. 2022). The layer below
    then divides by the BatchNorm's input: harmless under ZPlus, whose denominator
    bounds what it passes on, but under ε or γ that is where DenseNet121's relevance
    exploded (ε: 10³⁶ times the logit at 128²), so only the ZPlus presets use it."""

    name: str
    label: str
    description: str
    conv: str
    dense: str
    first: str | None = None
    first_kinds: str = "conv"
    params: tuple[ParamSpec, ...] = (EPSILON,)
    fixed: tuple[tuple[str, object], ...] = ()
    batchnorm: str = "norm"


@dataclass(frozen=True)
class PresetInfo:
    """What the UI needs to offer a preset: its name, label, parameters, description."""

    name: str
    label: str
    params: tuple[ParamSpec, ...]
    description: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("epsilon", "Epsilon", "ε-rule everywhere: faithful but noisy in deep nets.", "epsilon", "epsilon"),
        Preset(
            "epsilon-plus", "Epsilon + ZPlus",
            "ZPlus on convolutions, ε on dense layers: positive, well-localised evidence (the usual default).",
            "zplus", "epsilon", batchnorm="pass",
        ),
        Preset(
            "epsilon-gamma-box", "Epsilon + Gamma + ZBox",
            "ZBox on the first convolution (input bounds), γ on other convolutions, ε on dense layers: "
            "signed evidence, good for comparing classes.",
            "gamma", "epsilon", first="zbox", first_kinds="conv", params=(EPSILON, GAMMA, LOW, HIGH),
        ),
        Preset(
            "epsilon-alpha2-beta1", "Epsilon + α2β1",
            "α=2, β=1 on convolutions, ε on dense layers: shows counter-evidence as well.",
            "alphabeta", "epsilon", params=(EPSILON,), fixed=(("alpha", 2.0), ("beta", 1.0)),
        ),
        Preset(
            "epsilon-plus-flat", "Epsilon + ZPlus + Flat",
            "Like Epsilon + ZPlus, with the Flat rule on the first layer: smoother maps.",
            "zplus", "epsilon", first="flat", first_kinds="any", batchnorm="pass",
        ),
        Preset(
            "attn-lrp", "AttnLRP (transformers)",
            "For transformers and hybrids: ε on dense layers, γ on convolutions; softmax, query·key "
            "products and LayerNorm by their AttnLRP rules (as in every preset); gates held constant.",
            "gamma", "epsilon", params=(EPSILON, GAMMA, GATES),
        ),
    )
}


def has_attention(model: nn.Module) -> bool:
    """Whether ``model`` contains an attention block (torch's MultiheadAttention or a
    module named like one: MONAI's SABlock and WindowAttention, torchvision's
    ShiftedWindowAttention, timm's Attention)."""
    for m in model.modules():
        name = type(m).__name__
        if isinstance(m, nn.MultiheadAttention) or "attention" in name.lower() or name == "SABlock":
            return True
    return False


def recommended_preset(model: nn.Module) -> str:
    """``attn-lrp`` for a model with attention, ``epsilon-plus`` otherwise."""
    return "attn-lrp" if has_attention(model) else "epsilon-plus"


def get_preset(name: str) -> Preset:
    key = name.lower().replace("_", "-")
    if key not in PRESETS:
        raise ValueError(f"Unknown LRP preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return PRESETS[key]


def list_presets() -> list[PresetInfo]:
    """Presets and their parameters, for parameter panels and the command line."""
    return [PresetInfo(p.name, p.label, p.params, p.description) for p in PRESETS.values()]
