"""The last step of every loader: check the network and wrap it with its card.

Cards, bundles and bare files all end here, so the checks that do not depend on where
a model came from live in one place: the Grad-CAM layer exists (or a default is
chosen), and every weight is finite — a network with a NaN weight answers NaN or,
worse, a confident-looking class, so it is refused naming the first bad tensor.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from viewer.models.card import ModelCard
from viewer.models.errors import ModelLoadError
from viewer.models.loaded import LoadedModel

TORCHSCRIPT_REASON = (
    "the model is TorchScript (compiled): LRP and Grad-CAM need the Python module structure "
    "(layers to rewrite or hook); gradient methods work"
)


def check_finite(module: nn.Module, source: str) -> None:
    """Raise naming the first parameter or buffer that holds NaN or ±Inf."""
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        if tensor.is_floating_point() or tensor.is_complex():
            if not bool(torch.isfinite(tensor.detach()).all()):
                bad = int((~torch.isfinite(tensor.detach())).sum())
                raise ModelLoadError(
                    f"The weights from {source} are not usable: '{name}' holds {bad} NaN/infinite value(s) "
                    f"of {tensor.numel()}. A network with such weights cannot give a meaningful prediction; "
                    "the checkpoint is probably from a diverged training run or damaged."
                )


def finish(module: nn.Module, card: ModelCard, kind: str, warnings: list[str], structured: bool = True) -> LoadedModel:
    """Wrap ``module``; fill in the Grad-CAM layer when the card names none."""
    check_finite(module, str(card.weights.name if card.weights else card.name))
    if structured:
        layer = card.gradcam_layer
        convs = [n for n, m in module.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
        if layer is not None:
            try:
                module.get_submodule(layer)
            except AttributeError:
                raise ModelLoadError(
                    f"gradcam_layer '{layer}' is not a layer of this model; the last convolutions are "
                    f"{', '.join(convs[-3:]) or 'none'}. Fix the card's gradcam_layer."
                ) from None
        elif convs:
            card = replace(card, gradcam_layer=convs[-1])
            warnings.append(f"no gradcam_layer given; using the last convolution '{convs[-1]}'")
    return LoadedModel(
        module=module,
        card=card,
        kind=kind,
        structured=structured,
        unavailable_reason=None if structured else TORCHSCRIPT_REASON,
        warnings=warnings,
        source=card.path or card.weights,
    )
