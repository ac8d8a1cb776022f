"""Immutable descriptions of background work; they double as cache keys.

A request names *what* to compute (which scan, model, method, parameters, target,
device and precision) without holding the heavy objects themselves: scans and models
are referred to by tokens that change whenever a new file is opened, so a cached
result can never be shown for a different scan or model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

DEVICES = ("cpu", "cuda")
PRECISIONS = ("float32", "bfloat16", "float16")

# A target as the session stores it: None (predicted class), a class index, a contrast
# (a, b), a viewer.explain.Target, or ("region", channel) = that channel inside the mask.
TargetKey = Any


def available_devices() -> list[str]:
    """Devices the user may choose: CUDA only when torch can see a GPU."""
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def freeze(value: Any) -> Any:
    """A hashable version of a parameter value (lists become tuples, dicts sorted tuples)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def normalise_target(spec: Any) -> TargetKey:
    """Canonical, hashable form of a target spec (see :data:`TargetKey`)."""
    if spec is None:
        return None
    if isinstance(spec, bool):
        raise ValueError(f"Unsupported target {spec!r}.")
    if isinstance(spec, Mapping):
        kind = spec.get("kind")
        if kind == "class":
            return int(spec["index"])
        if kind == "contrast":
            return (int(spec["index"]), int(spec["other"]))
        if kind == "region":
            return ("region", int(spec["index"]))
        raise ValueError(f"Unknown target kind {kind!r}; use class, contrast or region.")
    if isinstance(spec, (tuple, list)):
        if len(spec) == 2 and spec[0] == "region":
            return ("region", int(spec[1]))
        if len(spec) == 2:
            a, b = (int(v) for v in spec)
            if a == b:
                raise ValueError("A contrast needs two different classes.")
            return (a, b)
        raise ValueError(f"A contrast target is (class, other class); got {spec!r}.")
    if hasattr(spec, "kind") and hasattr(spec, "key"):  # viewer.explain.Target
        return spec
    return int(spec)


@dataclass(frozen=True)
class ExplainRequest:
    """One explanation: hashable, so it is also the key of the result cache.

    ``mask_token`` only matters for region targets (the region is the loaded mask), and
    is None otherwise so loading a mask does not invalidate class explanations.
    """

    scan_token: str
    model_token: str
    method: str
    params: tuple[tuple[str, Any], ...]
    target: TargetKey
    device: str = "cpu"
    precision: str = "float32"
    mask_token: str | None = None

    @staticmethod
    def make(
        scan_token: str,
        model_token: str,
        method: str,
        params: Mapping[str, Any],
        target: Any = None,
        device: str = "cpu",
        precision: str = "float32",
        mask_token: str | None = None,
    ) -> "ExplainRequest":
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {device!r}.")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
        target = normalise_target(target)
        is_region = isinstance(target, tuple) and target[:1] == ("region",)
        return ExplainRequest(
            scan_token=scan_token,
            model_token=model_token,
            method=method,
            params=freeze(dict(params)),
            target=target,
            device=device,
            precision=precision,
            mask_token=mask_token if is_region else None,
        )

    @property
    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def preset(self) -> str | None:
        return self.params_dict.get("preset")

    def with_(self, **changes: Any) -> "ExplainRequest":
        if "params" in changes:
            changes["params"] = freeze(dict(changes["params"]))
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class PredictRequest:
    """The forward pass whose probabilities the prediction readout shows."""

    scan_token: str
    model_token: str
    device: str = "cpu"
    precision: str = "float32"
