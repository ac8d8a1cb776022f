"""Presets: which rule goes on which kind of layer (zennit calls these composites).

A preset names a rule for convolutions, one for dense layers and optionally a
special rule for the first layer.  Everything else (activations, sums, pooling,
normalisation, attention) gets the same treatment in every preset; see
``engine.py``.  The names and default parameters match zennit's composites so
that results can be compared across tools.
"""

from __future__ import annotations

from dataclasses import dataclass

from viewer.explain.params import ParamSpec

EPSILON = ParamSpec("epsilon", float, 1e-6, min=0.0, max=10.0, label="ε (dense layers)")
GAMMA = ParamSpec("gamma", float, 0.25, min=0.0, max=10.0, label="γ (convolutions)")
LOW = ParamSpec("low", float, None, label="ZBox lower bound")
HIGH = ParamSpec("high", float, None, label="ZBox upper bound")
ALPHA = ParamSpec("alpha", float, 2.0, min=1.0, max=10.0, label="α (positive share)")
BETA = ParamSpec("beta", float, 1.0, min=0.0, max=9.0, label="β (negative share, α − β = 1)")


@dataclass(frozen=True)
class Preset:
    """Rule assignment: ``conv`` for (transposed) convolutions, ``dense`` for
    linear layers, ``first`` for the first layer when ``first_kinds`` matches it
    ("conv" or "any")."""

    name: str
    label: str
    description: str
    conv: str
    dense: str
    first: str | None = None
    first_kinds: str = "conv"
    params: tuple[ParamSpec, ...] = (EPSILON,)
    fixed: tuple[tuple[str, object], ...] = ()


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
            "zplus", "epsilon",
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
            "zplus", "epsilon", first="flat", first_kinds="any",
        ),
    )
}


def get_preset(name: str) -> Preset:
    key = name.lower().replace("_", "-")
    if key not in PRESETS:
        raise ValueError(f"Unknown LRP preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return PRESETS[key]


def list_presets() -> list[PresetInfo]:
    """Presets and their parameters, for parameter panels and the command line."""
    return [PresetInfo(p.name, p.label, p.params, p.description) for p in PRESETS.values()]
