"""What may run without the user's explicit trust.

Opening a model can execute code in two ways: unpickling a full module (pickle runs
whatever the file says) and importing the package that defines an architecture.
Weights read with ``torch.load(weights_only=True)`` or safetensors run nothing, and
architectures from a few well-known packages are imported from the user's own
environment, so those are allowed. Everything else needs ``trust=True`` (``--trust``
on the command line, a confirmation dialog in the UI).
"""

from __future__ import annotations

import importlib
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from viewer.models.errors import ModelLoadError, UntrustedModelError

ALLOWED_PACKAGES = ("torch", "monai", "torchvision", "timm", "viewer")


def is_allowed(import_path: str) -> bool:
    """True when ``import_path`` lives in one of :data:`ALLOWED_PACKAGES`."""
    return import_path.split(".", 1)[0] in ALLOWED_PACKAGES


def untrusted_message(what: str, source: str) -> str:
    return (
        f"Loading {what} would run code from {source}. Only do this for files you trust "
        "(a pickled model can do anything your user account can). "
        "Pass trust=True (command line: --trust) to load it anyway."
    )


def resolve_architecture(import_path: str, trust: bool) -> type[nn.Module] | Any:
    """Import ``package.module.Name``; refuse packages outside the allow-list unless trusted."""
    if not is_allowed(import_path) and not trust:
        package = import_path.split(".", 1)[0]
        raise UntrustedModelError(
            untrusted_message(f"architecture '{import_path}'", f"the package '{package}'")
            + f" Allowed without trust: {', '.join(ALLOWED_PACKAGES)}."
        )
    module_name, _, attr = import_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(
            f"Cannot import '{module_name}' for architecture '{import_path}': {exc}. "
            "Check the spelling, or install the package that provides it."
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ModelLoadError(
            f"'{module_name}' has no '{attr}' (architecture '{import_path}'); check the name in the card."
        ) from None


def build_module(import_path: str, kwargs: dict[str, Any], trust: bool) -> nn.Module:
    """Construct the architecture with keyword arguments; it must be an ``nn.Module``."""
    factory = resolve_architecture(import_path, trust)
    if not callable(factory):
        raise ModelLoadError(f"Architecture '{import_path}' is not a class or function.")
    try:
        module = factory(**kwargs)
    except TypeError as exc:
        raise ModelLoadError(f"Cannot build '{import_path}' with arguments {kwargs}: {exc}") from exc
    if not isinstance(module, nn.Module):
        raise ModelLoadError(f"'{import_path}' built a {type(module).__name__}, not a torch.nn.Module.")
    return module


def load_torch_file(path: Path, trust: bool) -> Any:
    """``torch.load`` that runs no code unless trusted.

    A file that holds only tensors loads with ``weights_only=True``. If that fails
    because the pickle names a class (a full pickled module), the file would run code
    when loaded: refused without trust, loaded with ``weights_only=False`` with it.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust:
            raise UntrustedModelError(
                untrusted_message("this model", f"the file {path.name}")
                + f" (The file is a pickled object, not plain weights; it names {_pickled_class(exc)}.)"
            ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelLoadError(f"Cannot read {path.name} as PyTorch weights: {_first_line(exc)}") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # arbitrary code ran and failed; report it, the user opted in
        raise ModelLoadError(f"Loading the pickled model {path.name} failed: {_first_line(exc)}") from exc


def _pickled_class(exc: BaseException) -> str:
    """The class the pickle wanted to import, from torch's weights-only error message."""
    match = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return f"the class {match.group(1)}" if match else "objects other than tensors"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
