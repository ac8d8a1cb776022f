"""What the batch runs and what one run gives: ``--method`` specs and per-case results.

A :class:`MethodSpec` is one ``--method`` text parsed and validated against the method
registry (so a typo is a usage error before any case runs); its ``tag`` names the
output file. A :class:`CaseMap` is one method's result for one case, cut out of a
batched call or put together from per-slice calls, with its conservation numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from viewer.io.export_nifti import method_tag


@dataclass(frozen=True)
class MethodSpec:
    """One ``--method``: the registry name, its keyword arguments (LRP: with ``preset``) and file tag."""

    method: str
    params: tuple[tuple[str, Any], ...]
    tag: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)


def parse_method(text: str, default_preset: str | None = None) -> MethodSpec:
    """``lrp:epsilon-plus``, ``lrp:epsilon-gamma-box,gamma=0.5``, ``gradcam``, ``occlusion,patch=8``.

    Raises ValueError (naming the valid choices) for an unknown method, preset or parameter.
    """
    from viewer.explain.registry import METHODS, validate

    head, *pairs = [p.strip() for p in text.split(",")]
    name, _, preset = head.partition(":")
    name = name.strip().lower().replace("-", "_")
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r} in --method {text!r}; choose one of: {', '.join(METHODS)}.")
    raw: dict[str, Any] = {}
    if preset:
        if name != "lrp":
            raise ValueError(f"Only LRP takes a preset (lrp:PRESET); got --method {text!r}.")
        raw["preset"] = preset.strip()
    elif name == "lrp":
        raw["preset"] = default_preset or "epsilon-plus"
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"Method parameters are key=value; got {pair!r} in --method {text!r}.")
        raw[key.strip()] = _literal(value.strip())
    params = validate(name, raw)
    tag = method_tag(name, params.get("preset"))
    extra = [f"{k}={v}" for k, v in sorted(params.items()) if k != "preset"]
    if extra:
        tag = method_tag(tag, "-".join(extra))
    return MethodSpec(name, tuple(sorted(params.items())), tag)


def _literal(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@dataclass(frozen=True)
class CaseMap:
    """One method's result for one case: its rows of the relevance and its own numbers.

    Carries what :func:`export_relevance` records (method, preset, params, target) so
    a case cut out of a batch is written exactly like a case explained alone.
    """

    relevance: torch.Tensor
    output: torch.Tensor
    target: Any
    method: str
    preset: str | None
    params: Any
    explained: float | None
    input_sum: float | None
    absorbed: float | None

    @property
    def conservation_error(self) -> float | None:
        if None in (self.explained, self.input_sum, self.absorbed):
            return None
        return self.explained - self.input_sum - self.absorbed  # type: ignore[operator]

    @staticmethod
    def of(result: Any, rows: slice | None = None, absorbed: float | None = None) -> "CaseMap":
        """The whole result, or the rows of one case (numbers recomputed for those rows)."""
        if rows is None:
            return CaseMap(result.relevance, result.output, result.target, result.method, result.preset,
                           result.params, result.explained, result.input_sum, result.absorbed)
        rel, out = result.relevance[rows], result.output[rows]
        explained = None
        if result.explained is not None:
            explained = float(result.target.value(out.float()).sum(dtype=torch.float64))
        return CaseMap(rel, out, result.target, result.method, result.preset, result.params, explained,
                       float(rel.sum(dtype=torch.float64)), absorbed)

    @staticmethod
    def combine(parts: list["CaseMap"]) -> "CaseMap":
        """Rows explained one at a time (slices of a volume) as one case: sums of the numbers."""
        def total(values: list[float | None]) -> float | None:
            return None if any(v is None for v in values) else float(sum(values))  # type: ignore[arg-type]

        first = parts[0]
        return CaseMap(torch.cat([p.relevance for p in parts]), torch.cat([p.output for p in parts]), first.target,
                       first.method, first.preset, first.params, total([p.explained for p in parts]),
                       total([p.input_sum for p in parts]), total([p.absorbed for p in parts]))
