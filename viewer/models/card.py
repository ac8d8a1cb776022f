"""Model cards: the small TOML/JSON file that says how to build, feed and explain a model.

A card is the only thing a user writes by hand, so every field is checked here and
each problem is reported by name. Unknown fields are not fatal (a newer card should
still open in an older viewer) but they are collected as warnings.

Example (TOML)::

    name = "Demo 3D lesion side"
    task = "classification"
    architecture = "viewer.models.architectures.LesionSideNet"
    weights = "demo3d.safetensors"
    labels = ["no lesion", "lesion left", "lesion right"]
    gradcam_layer = "features.3"
    preset = "epsilon-plus"

    [architecture_args]
    spatial_dims = 3

    [input]
    spatial_dims = 3
    channels = 1
    size = [48, 56, 48]
    orientation = "RAS"
    input_range = [0.0, 1.0]

    [input.normalize]
    method = "minmax"
    percentiles = [0.5, 99.5]
    clip = true
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viewer.models.errors import ModelLoadError

TASKS = ("classification", "segmentation")
NORMALIZE_METHODS = ("none", "window", "zscore", "minmax")
CARD_SUFFIXES = (".toml", ".json")

_TOP_FIELDS = {
    "format_version", "name", "description", "task", "architecture", "architecture_args",
    "weights", "labels", "input", "gradcam_layer", "preset", "license", "source",
}
_INPUT_FIELDS = {"spatial_dims", "channels", "size", "spacing", "orientation", "normalize", "input_range"}
_NORM_FIELDS = {"method", "center", "width", "percentiles", "clip", "mean", "std"}


@dataclass(frozen=True)
class Normalization:
    """How scan values become model input values.

    ``window``: ``(v - (center - width/2)) / width`` (clipped to [0, 1] when ``clip``);
    ``zscore``: ``(v - mean) / std`` with the scan's own statistics unless given;
    ``minmax``: the ``percentiles`` of the scan map to 0 and 1 (clipped when ``clip``);
    ``none``: values pass unchanged.
    """

    method: str = "minmax"
    center: float | None = None
    width: float | None = None
    percentiles: tuple[float, float] = (0.0, 100.0)
    clip: bool = True
    mean: float | None = None
    std: float | None = None

    def default_range(self) -> tuple[float, float] | None:
        """The prepared value range when the method fixes it (clipped window/min–max)."""
        if self.method in ("window", "minmax") and self.clip:
            return (0.0, 1.0)
        return None

    def describe(self) -> str:
        if self.method == "window":
            return f"window centre {self.center:g}, width {self.width:g} → [0, 1]"
        if self.method == "minmax":
            lo, hi = self.percentiles
            return f"min–max (percentiles {lo:g}–{hi:g}) → [0, 1]" + (", clipped" if self.clip else "")
        if self.method == "zscore":
            return "z-score" + (f" (mean {self.mean:g}, std {self.std:g})" if self.mean is not None else " (per scan)")
        return "none"


@dataclass(frozen=True)
class InputSpec:
    """What the model expects as input; None fields mean "take the scan's own"."""

    spatial_dims: int
    channels: int = 1
    size: tuple[int, ...] | None = None
    spacing: tuple[float, ...] | None = None
    orientation: str = "RAS"
    normalize: Normalization = field(default_factory=Normalization)
    input_range: tuple[float, float] | None = None

    def describe(self) -> str:
        grid = (
            f"size {'×'.join(map(str, self.size))}" if self.size
            else f"spacing {'×'.join(f'{s:g}' for s in self.spacing)} mm" if self.spacing
            else "scan's own grid"
        )
        return f"{self.spatial_dims}D, {self.channels} channel(s), {grid}, {self.normalize.describe()}"


@dataclass(frozen=True)
class ModelCard:
    """A parsed, validated model card. ``path`` is the card file (None for built-in cards)."""

    name: str
    task: str
    input: InputSpec
    architecture: str | None = None
    architecture_args: dict[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    labels: tuple[str, ...] = ()
    gradcam_layer: str | None = None
    preset: str = "epsilon-plus"
    description: str = ""
    path: Path | None = None
    warnings: tuple[str, ...] = ()

    @property
    def input_range(self) -> tuple[float, float] | None:
        return self.input.input_range


def read_card(path: str | Path) -> ModelCard:
    """Read and validate a TOML or JSON card; weights resolve relative to the card."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"Cannot read model card {path}: {exc.strerror or exc}.") from exc
    try:
        if path.suffix.lower() == ".toml":
            raw = tomllib.loads(text.decode("utf-8"))
        elif path.suffix.lower() == ".json":
            raw = json.loads(text.decode("utf-8"))
        else:
            raise ModelLoadError(f"{path.name}: a model card must be a .toml or .json file.")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"Model card {path.name} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    return parse_card(raw, path)


def parse_card(raw: Any, path: Path | None = None) -> ModelCard:
    """Validate a card given as a dict (already read from TOML/JSON)."""
    where = path.name if path else "model card"
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{where}: expected a table of fields at the top level.")
    warnings = [f"{where}: unknown field '{k}' ignored" for k in raw if k not in _TOP_FIELDS]
    missing = [k for k in ("task", "weights", "input") if k not in raw]
    if missing:
        raise ModelLoadError(
            f"{where}: required field(s) missing: {', '.join(missing)}. "
            "A card needs at least task, weights and an [input] table (spatial_dims)."
        )
    task = _str(raw, "task", where)
    if task not in TASKS:
        raise ModelLoadError(f"{where}: task must be one of {', '.join(TASKS)}, got '{task}'.")
    arch = raw.get("architecture")
    if arch is not None and not (isinstance(arch, str) and "." in arch):
        raise ModelLoadError(
            f"{where}: architecture must be an import path like 'monai.networks.nets.DenseNet121', got {arch!r}."
        )
    args = raw.get("architecture_args", {})
    if not isinstance(args, dict):
        raise ModelLoadError(f"{where}: architecture_args must be a table of keyword arguments.")
    if args and arch is None:
        warnings.append(f"{where}: architecture_args given without architecture; ignored")
    weights = Path(_str(raw, "weights", where))
    if path is not None and not weights.is_absolute():
        weights = path.parent / weights
    labels = raw.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ModelLoadError(f"{where}: labels must be a list of strings.")
    spec = _parse_input(raw["input"], where, warnings)
    name = raw.get("name") or (path.stem if path else "model")
    return ModelCard(
        name=str(name),
        task=task,
        input=spec,
        architecture=arch,
        architecture_args=dict(args),
        weights=weights,
        labels=tuple(labels),
        gradcam_layer=_opt_str(raw, "gradcam_layer", where),
        preset=_opt_str(raw, "preset", where) or "epsilon-plus",
        description=str(raw.get("description", "")),
        path=path,
        warnings=tuple(warnings),
    )


def _parse_input(raw: Any, where: str, warnings: list[str]) -> InputSpec:
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{where}: [input] must be a table (spatial_dims, channels, size/spacing, normalize).")
    warnings += [f"{where}: unknown field 'input.{k}' ignored" for k in raw if k not in _INPUT_FIELDS]
    if "spatial_dims" not in raw:
        raise ModelLoadError(f"{where}: required field missing: input.spatial_dims (2 or 3).")
    dims = raw["spatial_dims"]
    if dims not in (2, 3) or isinstance(dims, bool):
        raise ModelLoadError(f"{where}: input.spatial_dims must be 2 or 3, got {dims!r}.")
    channels = raw.get("channels", 1)
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise ModelLoadError(f"{where}: input.channels must be a positive integer, got {channels!r}.")
    size = _tuple(raw.get("size"), dims, int, f"{where}: input.size")
    spacing = _tuple(raw.get("spacing"), dims, float, f"{where}: input.spacing")
    if size is not None and spacing is not None:
        raise ModelLoadError(f"{where}: give input.size or input.spacing, not both.")
    orientation = str(raw.get("orientation", "RAS")).upper()
    if orientation != "RAS":
        raise ModelLoadError(
            f"{where}: input.orientation '{orientation}' is not supported; scans are read in RAS order, use 'RAS'."
        )
    norm = _parse_normalize(raw.get("normalize", {"method": "minmax"}), where, warnings)
    rng = raw.get("input_range")
    if rng is not None:
        rng = _tuple(rng, 2, float, f"{where}: input.input_range", positive=False)
        if not rng[0] < rng[1]:
            raise ModelLoadError(f"{where}: input.input_range must be [low, high] with low < high, got {list(rng)}.")
    else:
        rng = norm.default_range()
        if rng is None:
            warnings.append(
                f"{where}: no input.input_range; LRP's ZBox rule will fall back to the input's own min/max"
            )
    return InputSpec(dims, channels, size, spacing, orientation, norm, rng)


def _parse_normalize(raw: Any, where: str, warnings: list[str]) -> Normalization:
    if isinstance(raw, str):
        raw = {"method": raw}
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{where}: input.normalize must be a table with a 'method'.")
    warnings += [f"{where}: unknown field 'input.normalize.{k}' ignored" for k in raw if k not in _NORM_FIELDS]
    method = raw.get("method", "minmax")
    if method not in NORMALIZE_METHODS:
        raise ModelLoadError(
            f"{where}: input.normalize.method must be one of {', '.join(NORMALIZE_METHODS)}, got {method!r}."
        )
    clip = raw.get("clip", True)
    if not isinstance(clip, bool):
        raise ModelLoadError(f"{where}: input.normalize.clip must be true or false.")
    kw: dict[str, Any] = {"method": method, "clip": clip}
    if method == "window":
        for key in ("center", "width"):
            if key not in raw:
                raise ModelLoadError(f"{where}: input.normalize.method 'window' needs '{key}'.")
            kw[key] = _float(raw[key], f"{where}: input.normalize.{key}")
        if kw["width"] <= 0:
            raise ModelLoadError(f"{where}: input.normalize.width must be positive.")
    if method == "minmax":
        pct = _tuple(raw.get("percentiles", [0.0, 100.0]), 2, float, f"{where}: input.normalize.percentiles", positive=False)
        if not 0 <= pct[0] < pct[1] <= 100:
            raise ModelLoadError(f"{where}: input.normalize.percentiles must satisfy 0 <= low < high <= 100.")
        kw["percentiles"] = pct
    if method == "zscore":
        if ("mean" in raw) != ("std" in raw):
            raise ModelLoadError(f"{where}: input.normalize needs both mean and std, or neither (per-scan).")
        if "mean" in raw:
            kw["mean"] = _float(raw["mean"], f"{where}: input.normalize.mean")
            kw["std"] = _float(raw["std"], f"{where}: input.normalize.std")
            if kw["std"] <= 0:
                raise ModelLoadError(f"{where}: input.normalize.std must be positive.")
    return Normalization(**kw)


def _str(raw: dict, key: str, where: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value:
        raise ModelLoadError(f"{where}: field '{key}' must be a non-empty string, got {value!r}.")
    return value


def _opt_str(raw: dict, key: str, where: str) -> str | None:
    return _str(raw, key, where) if raw.get(key) is not None else None


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelLoadError(f"{what} must be a finite number, got {value!r}.")
    return float(value)


def _tuple(value: Any, n: int, kind: type, what: str, positive: bool = True) -> tuple | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise ModelLoadError(f"{what} must be a list of {n} numbers, got {value!r}.")
    out = tuple(_float(v, what) for v in value)
    if kind is int:
        if any(v != int(v) or v < 1 for v in out):
            raise ModelLoadError(f"{what} must hold positive integers, got {value!r}.")
        return tuple(int(v) for v in out)
    if positive and any(v <= 0 for v in out):
        raise ModelLoadError(f"{what} must hold positive numbers, got {value!r}.")
    return out
