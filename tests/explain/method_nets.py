"""Small networks shared by the attribution-method tests (not a test module itself).

``RegionModel``: the output depends only on the input inside a known box, so a
faithful map must put its positive mass there. ``densenet``: a small MONAI DenseNet in
eval mode, the oracle tests' real architecture.
"""

from __future__ import annotations

import torch
from torch import nn

REGION_2D = (slice(8, 24), slice(8, 24))
"""16×16 box in a 32×32 image, aligned with 8-voxel patches."""
REGION_3D = (slice(4, 12), slice(4, 12), slice(4, 12))
"""8³ box in a 16³ volume, aligned with 4-voxel patches."""


class RegionGate(nn.Module):
    """Multiplies the input by a fixed 0/1 mask of the region."""

    def __init__(self, shape: tuple[int, ...], region: tuple[slice, ...]) -> None:
        super().__init__()
        mask = torch.zeros(shape)
        mask[region] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


class RegionModel(nn.Module):
    """gate → conv → ReLU → conv → ReLU → global sum → linear (class 0 positive weights).

    Bias-free convolutions keep every activation outside the region's receptive-field
    border at exactly zero.
    """

    def __init__(self, spatial_dims: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        shape, region = ((32, 32), REGION_2D) if spatial_dims == 2 else ((16, 16, 16), REGION_3D)
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.gate = RegionGate(shape, region)
        self.conv1 = conv(1, 4, 3, padding=1, bias=False)
        self.act1 = nn.ReLU()
        self.conv2 = conv(4, 4, 3, padding=1, bias=False)
        self.act2 = nn.ReLU()
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            for layer in (self.conv1, self.conv2):
                layer.weight.copy_(torch.rand(layer.weight.shape, generator=g) - 0.2)
            self.head.weight.copy_(torch.tensor([[1.0, 0.5, 0.8, 1.2], [-1.0, -0.5, -0.3, 0.2]]))
            self.head.bias.zero_()
        self.dims = tuple(range(2, 2 + spatial_dims))
        self.region = region
        self.shape = shape
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act2(self.conv2(self.act1(self.conv1(self.gate(x)))))
        return self.head(a.sum(dim=self.dims))

    def mask(self) -> torch.Tensor:
        """Boolean region mask of the spatial shape."""
        return self.gate.mask.bool()

    def example(self, seed: int = 1) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.rand((1, 1, *self.shape), generator=g) + 0.5


def densenet(spatial_dims: int, dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Module:
    """A small MONAI DenseNet (DenseNet121's blocks, fewer and thinner), 1 channel in,
    3 classes, eval mode, fixed random weights: the oracle tests' real architecture at
    a size 2 CPU cores run in a second."""
    from monai.networks.nets import DenseNet

    torch.manual_seed(seed)
    net = DenseNet(spatial_dims=spatial_dims, in_channels=1, out_channels=3, init_features=8, growth_rate=4,
                   block_config=(2, 2))
    return net.to(dtype).eval()


def example(spatial_dims: int, size: int = 32, dtype: torch.dtype = torch.float64, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((1, 1, *([size] * spatial_dims)), generator=g).to(dtype)
