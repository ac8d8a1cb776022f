"""MONAI bundles: ``configs/metadata.json`` + ``configs/inference.json|yaml`` + ``models/model.*``.

The network comes from the config's ``network_def``: a ``_target_`` (a MONAI network
name or an import path) with literal keyword arguments, where a value may be an
``@ref`` to another config key. Every ``_target_`` met on the way, nested ones
included, follows the rule of :mod:`viewer.models.safety` (an allow-listed network
class). ``$`` expressions are Python code and ``%`` macros pull in other files, so a
bundle that needs either is refused unless trusted; with trust, MONAI's own
``ConfigParser`` evaluates the definition. YAML configs are read with ``safe_load``,
which refuses the tags that construct Python objects. A TorchScript ``models/model.ts``
needs trust like any TorchScript file. Labels and the input specification come from
``metadata.json`` (``network_data_format``); intensity scaling is read from the first
``ScaleIntensityRange(d)`` / ``NormalizeIntensity(d)`` / ``ScaleIntensity(d)`` transform
found in the config, otherwise min–max to [0, 1] (with a warning).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from viewer.models.assemble import finish
from viewer.models.card import InputSpec, ModelCard, Normalization
from viewer.models.errors import ModelLoadError, UntrustedModelError
from viewer.models.installed import import_installed
from viewer.models.loaded import LoadedModel
from viewer.models.safety import call_factory, check_arguments, resolve_architecture, untrusted_message
from viewer.models.torch_file import is_torchscript, jit_load
from viewer.models.weights import apply_state_dict, read_state_dict

_MONAI_HOMES = ("monai.networks.nets", "monai.networks.blocks", "monai.networks.layers", "torch.nn")
_WEIGHT_NAMES = ("model.safetensors", "model.pt", "model.pth", "model.ts")
_SPECIAL = ("_target_", "_desc_", "_requires_", "_disabled_", "_mode_")


def load_bundle(folder: Path, trust: bool) -> LoadedModel:
    configs = folder / "configs"
    if not (configs / "metadata.json").is_file():
        raise ModelLoadError(
            f"{folder} is a folder but not a MONAI bundle (no configs/metadata.json); "
            "open a model card file or a bundle folder."
        )
    metadata = _read_json(configs / "metadata.json")
    config = _read_config(configs)
    weights = next((folder / "models" / n for n in _WEIGHT_NAMES if (folder / "models" / n).is_file()), None)
    if weights is None:
        raise ModelLoadError(f"Bundle {folder.name} has no models/model.pt (or .safetensors / .ts); add the weights.")
    warnings: list[str] = []
    card = _card(folder, metadata, config, weights, warnings)
    if is_torchscript(weights):
        return finish(jit_load(weights, trust), card, "torchscript", warnings, structured=False)
    if "network_def" not in config:
        raise ModelLoadError(f"Bundle {folder.name}: the inference config has no 'network_def'.")
    module = _network(config, configs, trust)
    state = read_state_dict(weights, trust)
    if isinstance(state, nn.Module):
        return finish(state, card, "pickle", warnings + [f"{weights.name} is a pickled full module"])
    apply_state_dict(module, state, f"{folder.name}/models/{weights.name}")
    return finish(module, card, "bundle", warnings)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"Cannot read {path.parent.name}/{path.name}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path.name} must hold a JSON object.")
    return data


def _read_config(configs: Path) -> dict:
    if (configs / "inference.json").is_file():
        return _read_json(configs / "inference.json")
    for name in ("inference.yaml", "inference.yml"):
        if (configs / name).is_file():
            try:
                import yaml
            except ImportError:
                raise ModelLoadError(
                    f"This bundle's config is {name} (YAML); install pyyaml (pip install pyyaml) to open it."
                ) from None
            try:
                data = yaml.safe_load((configs / name).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise ModelLoadError(f"Cannot read configs/{name}: {exc}") from exc
            if not isinstance(data, dict):
                raise ModelLoadError(f"configs/{name} must hold a mapping.")
            return data
    raise ModelLoadError("Bundle has no configs/inference.json (or .yaml); cannot tell how to build the network.")


def _network(config: dict, configs: Path, trust: bool) -> nn.Module:
    if _uses_expressions(config["network_def"], config, set()):
        if not trust:
            raise UntrustedModelError(
                untrusted_message("this bundle's network", "the bundle's config",
                                  "its network_def uses $ expressions, which are Python code, or % macros, "
                                  "which pull definitions from other files")
            )
        from monai.bundle import ConfigParser

        parser = ConfigParser(config)
        module = parser.get_parsed_content("network_def")
    else:
        module = _Resolver(config, trust).build(config["network_def"], "network_def")
    if not isinstance(module, nn.Module):
        raise ModelLoadError(f"The bundle's network_def built a {type(module).__name__}, not a torch.nn.Module.")
    return module


def _uses_expressions(value: Any, config: dict, seen: set[str]) -> bool:
    if isinstance(value, str):
        if value.startswith(("$", "%")):
            return True
        if value.startswith("@"):
            key = value[1:]
            if key in seen:
                return False
            seen.add(key)
            return _uses_expressions(_lookup(config, key), config, seen)
        return False
    if isinstance(value, dict):
        return any(_uses_expressions(v, config, seen) for v in value.values())
    if isinstance(value, list):
        return any(_uses_expressions(v, config, seen) for v in value)
    return False


def _lookup(config: dict, ref: str) -> Any:
    node: Any = config
    for part in ref.replace("#", "::").split("::"):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise ModelLoadError(f"The bundle config refers to '@{ref}', which it does not define.")
    return node


class _Resolver:
    """Builds ``_target_`` objects with literal and ``@ref`` arguments; runs no expressions."""

    def __init__(self, config: dict, trust: bool) -> None:
        self.config = config
        self.trust = trust
        self.stack: list[str] = []

    def build(self, value: Any, where: str) -> Any:
        if isinstance(value, str) and value.startswith("@"):
            ref = value[1:]
            if ref in self.stack:
                raise ModelLoadError(f"The bundle config has a circular reference: {' → '.join(self.stack + [ref])}.")
            self.stack.append(ref)
            try:
                return self.build(_lookup(self.config, ref), ref)
            finally:
                self.stack.pop()
        if isinstance(value, list):
            return [self.build(v, f"{where}::{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if value.get("_disabled_") in (True, "true", "True"):
                return None
            args = {k: self.build(v, f"{where}::{k}") for k, v in value.items() if k not in _SPECIAL}
            if "_target_" not in value:
                return args
            if value.get("_mode_", "default") != "default" or "_requires_" in value:
                raise ModelLoadError(f"{where}: '_mode_' and '_requires_' are not supported in a network definition.")
            return self._call(self._target(str(value["_target_"])), args, where)
        return value

    def _target(self, name: str) -> str:
        if "." in name:
            return name
        for home in _MONAI_HOMES:
            try:
                if hasattr(import_installed(home, f"the bundle's _target_ '{name}'"), name):
                    return f"{home}.{name}"
            except ModelLoadError:
                continue
        raise ModelLoadError(
            f"The bundle's _target_ '{name}' is not a MONAI network or torch.nn layer; is MONAI installed "
            "and recent enough? Use a full import path otherwise."
        )

    def _call(self, path: str, args: dict, where: str) -> Any:
        entry = f"the bundle's _target_ at {where}"
        factory = resolve_architecture(path, self.trust, entry)  # without trust: allow-listed network classes only
        if not self.trust:
            args = check_arguments(factory, args, f"{entry} '{path}'")
        return call_factory(factory, args, f"{entry} '{path}'")


def _card(folder: Path, metadata: dict, config: dict, weights: Path, warnings: list[str]) -> ModelCard:
    fmt = metadata.get("network_data_format", {})
    inputs = fmt.get("inputs", {}) if isinstance(fmt, dict) else {}
    outputs = fmt.get("outputs", {}) if isinstance(fmt, dict) else {}
    image = inputs.get("image") or next(iter(inputs.values()), {}) if isinstance(inputs, dict) else {}
    pred = outputs.get("pred") or next(iter(outputs.values()), {}) if isinstance(outputs, dict) else {}
    shape = image.get("spatial_shape") or []
    net_def = config.get("network_def", {})
    dims = net_def.get("spatial_dims") if isinstance(net_def, dict) else None
    if dims not in (2, 3):
        dims = len(shape) if len(shape) in (2, 3) else None
    if dims is None:
        raise ModelLoadError(
            f"Bundle {folder.name}: cannot tell 2D from 3D (metadata inputs.image.spatial_shape is missing); "
            "add it to configs/metadata.json or write a model card."
        )
    size = tuple(int(s) for s in shape) if shape and all(isinstance(s, int) for s in shape) else None
    norm, range_ = _normalization(config, warnings)
    if image.get("value_range") and isinstance(image["value_range"], list) and len(image["value_range"]) == 2:
        range_ = (float(image["value_range"][0]), float(image["value_range"][1]))
    channel_def = pred.get("channel_def") or {}
    n_out = int(pred.get("num_channels", len(channel_def) or 0))
    labels = tuple(str(channel_def.get(str(i), channel_def.get(i, f"class {i}"))) for i in range(n_out))
    if not channel_def:
        warnings.append("bundle metadata has no outputs.pred.channel_def; labels are 'class 0'…")
    task = "segmentation" if pred.get("format") == "segmentation" or pred.get("type") == "image" else "classification"
    spec = InputSpec(spatial_dims=dims, channels=int(image.get("num_channels", 1)), size=size,
                     normalize=norm, input_range=range_)
    return ModelCard(
        name=str(metadata.get("name") or folder.name),
        task=task,
        input=spec,
        architecture=str(net_def.get("_target_")) if isinstance(net_def, dict) else None,
        weights=weights,
        labels=labels,
        description=str(metadata.get("description", "")),
        path=folder,
    )


def _normalization(config: dict, warnings: list[str]) -> tuple[Normalization, tuple[float, float] | None]:
    for node in _walk(config):
        target = str(node.get("_target_", "")).rsplit(".", 1)[-1]
        if target in ("ScaleIntensityRanged", "ScaleIntensityRange"):
            try:
                a_min, a_max = float(node["a_min"]), float(node["a_max"])
                b_min, b_max = float(node.get("b_min", 0.0)), float(node.get("b_max", 1.0))
            except (KeyError, TypeError, ValueError):
                continue
            if (b_min, b_max) == (0.0, 1.0) and a_max > a_min:
                clip = bool(node.get("clip", False))
                norm = Normalization("window", center=(a_min + a_max) / 2, width=a_max - a_min, clip=clip)
                return norm, norm.default_range()
        if target in ("NormalizeIntensityd", "NormalizeIntensity"):
            return Normalization("zscore"), None
        if target in ("ScaleIntensityd", "ScaleIntensity"):
            return Normalization("minmax", percentiles=(0.0, 100.0)), (0.0, 1.0)
    warnings.append("no intensity transform recognised in the bundle config; inputs are min–max scaled to [0, 1]")
    return Normalization("minmax", percentiles=(0.0, 100.0)), (0.0, 1.0)


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)
