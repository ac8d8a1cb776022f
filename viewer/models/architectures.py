"""Small CNNs of our own, used by the bundled demo models.

They live inside ``viewer`` so the allow-list in :mod:`viewer.models.safety` covers
them: a demo card can name ``viewer.models.architectures.LesionSideNet`` without
asking the user to trust anything.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_GAP = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_GMP = {2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d}


class ConvBlock(nn.Sequential):
    """conv (optionally strided) → BatchNorm → ReLU (→ 2× max-pool): the plainest block LRP must handle.

    With ``norm=True`` the BatchNorm exercises the LRP engine's folding of BN into the
    preceding convolution. With ``norm=False`` the block is conv (no bias) → ReLU: a
    bias-free block passes all relevance on to its input instead of absorbing part of
    it in a (folded) bias, which keeps explanations conservative and on the evidence.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        pool: bool,
        stride: int = 1,
        norm: bool = True,
        kernel_size: int = 3,
    ) -> None:
        conv = _CONV[spatial_dims](
            in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=kernel_size // 2, bias=False
        )
        layers: list[tuple[str, nn.Module]] = [("conv", conv)]
        if norm:
            layers.append(("norm", _NORM[spatial_dims](out_channels)))
        layers.append(("act", nn.ReLU()))
        if pool:
            layers.append(("pool", _POOL[spatial_dims](2)))
        super().__init__(OrderedDict(layers))


class LesionSideNet(nn.Module):
    """Classifies whether a scan holds a lesion in the left or the right hemisphere.

    Four conv blocks (the first three halve the grid), then an average pool that keeps
    **two bins along axis 0** (patient left half, patient right half in RAS order)
    instead of one: a plain global average pool discards *where* a feature fired, so a
    network could only tell left from right through padding artefacts. Two bins make
    the side explicit while staying a linear pooling that LRP and Grad-CAM handle.

    Parameters
    ----------
    spatial_dims
        2 (axial slices) or 3 (volumes).
    in_channels, num_classes
        Input channels and number of output logits.
    channels
        Output channels of the four conv blocks.
    side_bins
        Bins kept along axis 0 by the final pooling (1 gives a plain global pool).
    stem_stride
        Stride of the first convolution (which then has no max-pool): 2 makes the
        full-resolution layer, the costliest on a CPU, eight times cheaper in 3D.
    pooling
        "avg" or "max" for the final pooling; max answers "did a lesion detector fire
        anywhere in this half?", which a small lesion does not dilute.
    downsamplings
        How many of the blocks halve the grid (the first ones; at most one fewer than
        there are blocks). Fewer keeps each final feature's receptive field, and so the
        region its relevance spreads over, smaller.
    norm
        "batch" (BatchNorm after each convolution) or "none" (bias-free conv → ReLU
        blocks; see :class:`ConvBlock`).
    last_kernel
        Kernel size of the last block's convolution (odd). 1 makes the last block a
        per-location mix of the previous features, which keeps the receptive field of
        the pooled features, and so where their relevance can land, smaller.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        num_classes: int = 3,
        channels: Sequence[int] = (8, 16, 32, 32),
        side_bins: int = 2,
        pooling: str = "avg",
        stem_stride: int = 1,
        downsamplings: int | None = None,
        norm: str = "batch",
        last_kernel: int = 3,
    ) -> None:
        super().__init__()
        if last_kernel < 1 or last_kernel % 2 == 0:
            raise ValueError(f"last_kernel must be a positive odd number, got {last_kernel}")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if norm not in ("batch", "none"):
            raise ValueError(f"norm must be 'batch' or 'none', got {norm!r}")
        down = len(channels) - 1 if downsamplings is None else int(downsamplings)
        if not 0 <= down < len(channels):
            raise ValueError(f"downsamplings must be between 0 and {len(channels) - 1}, got {downsamplings}")
        blocks = []
        prev = in_channels
        for i, ch in enumerate(channels):
            stride = stem_stride if i == 0 else 1
            pool = i < down and stride == 1
            kernel = int(last_kernel) if i == len(channels) - 1 else 3
            blocks.append(
                ConvBlock(spatial_dims, prev, int(ch), pool=pool, stride=stride, norm=norm == "batch", kernel_size=kernel)
            )
            prev = int(ch)
        self.features = nn.Sequential(*blocks)
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
        self.pool = (_GAP if pooling == "avg" else _GMP)[spatial_dims]((side_bins,) + (1,) * (spatial_dims - 1))
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(prev * side_bins, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))
