"""Reading weight files and fitting them to an architecture, with messages that name keys.

A mismatch between weights and architecture is the most common user error (wrong
architecture arguments, a checkpoint from another version); the error lists the
first missing keys, unexpected keys and shape mismatches so it can be fixed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from viewer.models.errors import ModelLoadError
from viewer.models.torch_file import load_torch_file

SHOW = 5  # keys listed per kind of mismatch
_WRAPPERS = ("state_dict", "model_state_dict", "model", "network", "net", "weights")


def read_state_dict(path: Path, trust: bool) -> dict[str, torch.Tensor] | nn.Module:
    """Tensors from ``.safetensors`` or a ``torch.save``'d state dict (run no code).

    Common checkpoint wrappers (``{"state_dict": ...}``, ``{"model": ...}``) and the
    ``module.`` prefix of DataParallel are unwrapped. A pickled full module is returned
    as is (only when ``trust``; otherwise :func:`load_torch_file` refuses it).
    """
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(f"Cannot read {path.name} as safetensors: {exc}") from exc
    obj: Any = load_torch_file(path, trust)
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, dict):
        for key in _WRAPPERS:
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(torch.is_tensor(v) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ModelLoadError(
            f"{path.name} does not hold a state dict (a mapping of parameter names to tensors); "
            f"found {type(obj).__name__}."
        )
    keys = list(obj)
    if keys and all(k.startswith("module.") for k in keys):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def apply_state_dict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module`` strictly, or raise naming the mismatching keys and shapes."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing in the file ({len(missing)}): {_first(missing)}")
        if unexpected:
            parts.append(f"not in the model ({len(unexpected)}): {_first(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {_first(shapes)}")
        raise ModelLoadError(
            f"The weights in {source} do not fit the architecture — "
            + "; ".join(parts)
            + ". Check the architecture and architecture_args in the card."
        )
    full = dict(state)
    for k, v in expected.items():  # tolerate checkpoints saved without BN counters
        full.setdefault(k, v)
    module.load_state_dict(full, strict=True)


def _first(items: list[str]) -> str:
    more = f", … ({len(items) - SHOW} more)" if len(items) > SHOW else ""
    return ", ".join(items[:SHOW]) + more
