"""``load_model``: one entry point for model cards, MONAI bundles, TorchScript and pickles.

Which loader runs depends on what the path is:

* a folder → a MONAI bundle (:mod:`viewer.models.bundle`);
* ``.toml`` / ``.json`` → a model card (:mod:`viewer.models.card`);
* any other file → TorchScript if it is a TorchScript archive, else a pickled full
  module; both need ``trust=True`` since both carry code. Plain weights without a card
  are refused, since they do not say which architecture they belong to.

Whatever goes wrong, the caller sees a :class:`ModelLoadError` (or its subclass
:class:`UntrustedModelError` when only trust would help), never a bare ``KeyError`` or
``RuntimeError`` from a library: a model file is user input.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from viewer.models.assemble import TORCHSCRIPT_REASON, finish
from viewer.models.bundle import load_bundle
from viewer.models.card import CARD_SUFFIXES, InputSpec, ModelCard, Normalization, read_card
from viewer.models.errors import ModelLoadError
from viewer.models.loaded import LoadedModel
from viewer.models.safety import build_module
from viewer.models.torch_file import first_line, is_torchscript, jit_load, load_torch_file
from viewer.models.weights import apply_state_dict, read_state_dict

__all__ = ["load_model", "is_torchscript", "TORCHSCRIPT_REASON"]


def load_model(path: str | Path, trust: bool = False) -> LoadedModel:
    """Load a model for explanation.

    Parameters
    ----------
    path
        A model card (.toml/.json), a MONAI bundle folder, a TorchScript file, or (with
        ``trust``) a pickled full module.
    trust
        Allow loading that executes code from the file or builds something other than
        an allow-listed network class (see :mod:`viewer.models.safety`). Off by default
        because a model file from the internet can run anything when loaded.

    Raises
    ------
    ModelLoadError
        With a message that says what was wrong and what to do;
        :class:`~viewer.models.errors.UntrustedModelError` when only ``trust`` would help.
    """
    path = Path(path)
    try:
        loaded = _load(path, trust)
        loaded.module.eval()
        loaded.module.to("cpu")
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a model file is user input; no library error escapes raw
        raise ModelLoadError(f"Cannot load the model {path.name}: {type(exc).__name__}: {first_line(exc)}") from exc
    return loaded


def _load(path: Path, trust: bool) -> LoadedModel:
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist; choose a model card, a MONAI bundle folder or a model file.")
    if path.is_dir():
        return load_bundle(path, trust)
    if not path.is_file():
        raise ModelLoadError(f"{path} is not a regular file (a pipe or device?); choose a model card or model file.")
    if path.suffix.lower() in CARD_SUFFIXES:
        return _from_card(read_card(path), trust)
    return _from_file(path, trust)


def _from_card(card: ModelCard, trust: bool) -> LoadedModel:
    warnings = list(card.warnings)
    weights = card.weights
    assert weights is not None
    where = card.path.name if card.path else "the card"
    if not weights.exists():
        raise ModelLoadError(
            f"Weights file {weights} named by {where} does not exist; "
            "check the 'weights' field (it is relative to the card)."
        )
    if not weights.is_file():
        raise ModelLoadError(f"Weights {weights} named by {where} is not a regular file; name a weights file.")
    if is_torchscript(weights):
        if card.architecture:
            warnings.append(f"{weights.name} is TorchScript; the card's architecture is not used")
        module = jit_load(weights, trust)
        return finish(module, card, "torchscript", warnings, structured=False)
    if card.architecture is None:
        obj = load_torch_file(weights, trust) if weights.suffix.lower() != ".safetensors" else None
        if isinstance(obj, nn.Module):
            return finish(obj, card, "pickle", warnings + [f"{weights.name} is a pickled full module"])
        raise ModelLoadError(
            f"{where} has no 'architecture' and {weights.name} holds "
            "plain weights; name the architecture (e.g. architecture = \"monai.networks.nets.DenseNet121\" "
            "with [architecture_args])."
        )
    module = build_module(card.architecture, card.architecture_args, trust)
    state = read_state_dict(weights, trust)
    if isinstance(state, nn.Module):
        warnings.append(f"{weights.name} is a pickled full module; the card's architecture is not used")
        return finish(state, card, "pickle", warnings)
    apply_state_dict(module, state, weights.name)
    return finish(module, card, "card", warnings)


def _from_file(path: Path, trust: bool) -> LoadedModel:
    if is_torchscript(path):
        module = jit_load(path, trust)
        card, warnings = _inferred_card(module, path)
        return finish(module, card, "torchscript", warnings, structured=False)
    if path.suffix.lower() == ".safetensors":
        raise ModelLoadError(
            f"{path.name} holds only weights; write a model card (.toml) that names the architecture, "
            "the weights file and the input specification, and open the card."
        )
    obj = load_torch_file(path, trust)
    if isinstance(obj, nn.Module):
        card, warnings = _inferred_card(obj, path)
        return finish(obj, card, "pickle", warnings + [f"{path.name} is a pickled full module (loaded with trust)"])
    raise ModelLoadError(
        f"{path.name} holds plain weights (a state dict) without an architecture; write a model card "
        "(.toml) that names the architecture and this weights file, and open the card instead."
    )


def _inferred_card(module: nn.Module, path: Path) -> tuple[ModelCard, list[str]]:
    """A card for a model file that came without one: guessed from its parameters."""
    params = [p for _, p in _named_tensors(module)]
    conv = next((p for p in params if p.dim() in (4, 5)), None)
    if conv is None:
        raise ModelLoadError(
            f"Cannot tell whether {path.name} is a 2D or 3D model (no convolution weights found); "
            "write a model card with [input] spatial_dims."
        )
    dims = conv.dim() - 2
    channels = int(conv.shape[1])
    last = next((p for p in reversed(params) if p.dim() == 1), None)
    n_out = int(last.shape[0]) if last is not None else 0
    labels = tuple(f"class {i}" for i in range(n_out))
    spec = InputSpec(spatial_dims=dims, channels=channels, normalize=Normalization("minmax", percentiles=(0.0, 100.0)),
                     input_range=(0.0, 1.0))
    warnings = [
        f"{path.name} has no model card: guessed a {dims}D classifier with {channels} input channel(s) and "
        f"{n_out} outputs (labels 'class 0'…), input min–max scaled to [0, 1] on the scan's own grid; "
        "write a card to set labels and preprocessing"
    ]
    card = ModelCard(name=path.stem, task="classification", input=spec, weights=path, labels=labels, path=None)
    return card, warnings


def _named_tensors(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return list(module.named_parameters()) or [(n, b) for n, b in module.named_buffers() if b.is_floating_point()]
