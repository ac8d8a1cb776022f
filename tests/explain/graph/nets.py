"""Small networks for the graph tests: a VGG-like and a ResNet-like CNN, an MLP and a
tiny vision transformer whose token features (hidden units) are the channels."""

from __future__ import annotations

import torch
from torch import nn


def vgg_like(bias: bool = True, nd: int = 2) -> nn.Module:
    Conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[nd - 1]
    Max = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[nd - 1]
    Ada = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[nd - 1]
    torch.manual_seed(0)
    model = nn.Sequential(
        Conv(1, 6, 3, padding=1, bias=bias), nn.ReLU(), Max(2),
        Conv(6, 8, 3, padding=1, bias=bias), nn.ReLU(), Max(2),
        Conv(8, 10, 3, padding=1, bias=bias), nn.ReLU(), Ada(2),
        nn.Flatten(), nn.Linear(10 * 2 ** nd, 12, bias=bias), nn.ReLU(), nn.Linear(12, 4, bias=bias),
    )
    if bias:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (nn.Linear, Conv)):
                    m.bias.uniform_(-0.1, 0.1)
    return model.double().eval()


def resnet_like() -> nn.Module:
    """torchvision's ResNet with one BasicBlock per stage, BatchNorm statistics set to
    non-trivial values so that folding them matters.

    The BatchNorms' ``eps`` is 0: zennit's canonizer leaves a merged BatchNorm computing
    x / sqrt(1 + eps), not the identity, which with the default eps = 1e-5 scales the
    relevance by about 1 - 5e-6 per BatchNorm (3.5e-5 over this network) — a zennit
    rounding we do not want to mistake for a difference of ours."""
    from torchvision.models.resnet import BasicBlock, ResNet

    torch.manual_seed(0)
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=5, width_per_group=64)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
                m.eps = 0.0
    return model.double().eval()


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 16), nn.ReLU(),
                         nn.Linear(16, 3)).double().eval()


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patches of 4×4 pixels, a class token, learned positions, transformer blocks."""

    def __init__(self, size: int = 16, dim: int = 12, depth: int = 3, heads: int = 2, classes: int = 3) -> None:
        super().__init__()
        self.patch = nn.Conv2d(1, dim, 4, stride=4)
        n = (size // 4) ** 2
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.1)
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.1)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], dim=1) + self.pos
        t = self.blocks(t)
        return self.head(self.norm(t)[:, 0])


def tiny_vit() -> nn.Module:
    torch.manual_seed(0)
    return TinyViT().double().eval()
