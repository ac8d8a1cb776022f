"""Which modules can hold graph nodes, and where a layer's channels are.

A *layer* is a module name (``features.3``, ``layer4.1``, ``blocks.11``); its
*channels* are the entries of one dimension of the module's output: dimension 1 of a
feature map ``(B, C, *spatial)`` or of a dense output ``(B, D)``, the last dimension
of transformer tokens ``(B, N, D)`` (a hidden unit is a channel).

Default layers are picked by name, without knowing the architecture: the modules
that are *blocks* (a module with parameters and children, itself an entry of a
``Sequential``/``ModuleList``/``ModuleDict``) — LesionSideNet's ``features.N``, a
ResNet's ``layerK.N``, DenseNet's ``denseblockK``/``transitionK``, a ViT's
``blocks.N`` — at the shallowest nesting depth that has enough of them, the last ones
in forward order. A network of plain layers (VGG) falls back to its convolution and
dense layers.
"""

from __future__ import annotations

import difflib
from typing import Sequence

import torch
from torch import nn

from viewer.explain.graph.errors import GraphError

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_AFFINE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
MAX_LISTED = 60


def layer_names(module: nn.Module) -> list[str]:
    """Every named submodule, in definition order: the valid values of ``layers``."""
    return [name for name, _ in module.named_modules() if name]


def check_layer_names(module: nn.Module, names: Sequence[str]) -> None:
    """Raise :class:`GraphError` for an unknown name, listing the valid ones."""
    valid = layer_names(module)
    known = set(valid)
    for name in names:
        if not isinstance(name, str) or name not in known:
            close = difflib.get_close_matches(str(name), valid, n=5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            listed = ", ".join(valid[:MAX_LISTED]) + (f", … ({len(valid) - MAX_LISTED} more)" if len(valid) > MAX_LISTED else "")
            raise GraphError(f"The model has no layer named {name!r}.{hint} Valid layer names: {listed}.")
    if len(set(names)) != len(names):
        raise GraphError(f"Each layer may be chosen once; got {list(names)}.")


def candidates(module: nn.Module) -> tuple[list[str], list[str]]:
    """``(blocks, plain)``: the blocks (see the module docstring) and the conv/dense layers."""
    blocks = []
    for parent_name, parent in module.named_modules():
        if not isinstance(parent, _CONTAINERS):
            continue
        for child_name, child in parent.named_children():
            has_params = any(True for _ in child.parameters())
            if has_params and any(True for _ in child.children()):
                blocks.append(f"{parent_name}.{child_name}" if parent_name else child_name)
    plain = [name for name, m in module.named_modules() if name and isinstance(m, _AFFINE)]
    return list(dict.fromkeys(blocks)), plain


def channel_dim_of(t: torch.Tensor, input_ndim: int, channel_dim: int | None = None) -> int | None:
    """The channel dimension of a layer output ``t`` (non-negative), None if it has none.

    Automatic: dimension 1 for a dense output (B, D) and for a feature map of the
    input's rank; the last dimension otherwise (tokens (B, N, D) of an image model).
    """
    if t.ndim < 2:
        return None
    if channel_dim is not None:
        d = channel_dim if channel_dim >= 0 else t.ndim + channel_dim
        if not 1 <= d < t.ndim:
            raise GraphError(f"channel_dim={channel_dim} does not exist for a layer output of shape {tuple(t.shape)}.")
        return d
    if t.ndim == 2 or t.ndim == input_ndim:
        return 1
    return t.ndim - 1


def pick_defaults(blocks: Sequence[str], plain: Sequence[str], order: Sequence[str], usable: set[str],
                  n: int) -> list[str]:
    """The last ``n`` usable blocks in forward order, at the shallowest depth that has ``n``;
    else the last ``n`` usable conv/dense layers. Nearest-to-the-output first, as the
    graph's levels go."""
    blocks_in_order = [name for name in order if name in usable and name in set(blocks)]
    by_depth: dict[int, list[str]] = {}
    for name in blocks_in_order:
        by_depth.setdefault(name.count("."), []).append(name)
    for depth in sorted(by_depth):
        if len(by_depth[depth]) >= n:
            return list(reversed(by_depth[depth][-n:]))
    if len(blocks_in_order) >= n:
        return list(reversed(blocks_in_order[-n:]))
    plain_in_order = [name for name in order if name in usable and name in set(plain)]
    if len(plain_in_order) >= n:
        return list(reversed(plain_in_order[-n:]))
    found = blocks_in_order or plain_in_order
    raise GraphError(
        f"Could not find {n} layers with channels between the input and the output "
        f"(found {len(found)}: {found}); pass layers=[...] explicitly."
    )
