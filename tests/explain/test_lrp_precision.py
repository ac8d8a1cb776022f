"""Half precision: the forward may run in bfloat16/float16, the relevance pass and the
ledger stay in float32, so maps match the float32 ones and the books still balance."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from viewer.explain.lrp import lrp
from viewer.explain.target import Target

nets = pytest.importorskip("monai.networks.nets")


class GatedCNN(nn.Module):
    """EfficientNet-like: SiLU, depthwise convolution, squeeze-and-excitation, residual."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.SiLU())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.SiLU())
        self.se1, self.se2 = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        self.proj = nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = self.stem(x)
        d = self.dw(h)
        d = d * torch.sigmoid(self.se2(nn.functional.silu(self.se1(d.mean((2, 3), keepdim=True)))))
        h = self.proj(d) + h
        return self.head(h.mean((2, 3)))


def _vit():
    return nets.ViT(in_channels=1, img_size=(32, 32), patch_size=(8, 8), classification=True, num_classes=3,
                    hidden_size=96, mlp_dim=192, num_layers=3, num_heads=4, spatial_dims=2)


def _swin():
    return nets.SwinUNETR(in_channels=1, out_channels=2, feature_size=12, spatial_dims=2, depths=(1, 1, 1, 1),
                          num_heads=(3, 3, 3, 3))


def _model(make, x):
    torch.manual_seed(0)
    model = make()
    if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        model.train()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = None
            model(torch.cat([x + 0.3 * torch.randn_like(x) for _ in range(4)]))
    return model.eval()


def _region(x: torch.Tensor) -> Target:
    mask = torch.zeros(x.shape[2:], dtype=torch.bool)
    mask[8:24, 8:24] = True
    return Target.region(1, mask.numpy())


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten().double(), b.flatten().double()]))[0, 1])


@pytest.mark.parametrize("name,make,size,preset", [
    ("gated_cnn", GatedCNN, 24, "epsilon-plus"),
    ("gated_cnn", GatedCNN, 24, "epsilon-gamma-box"),
    ("vit", _vit, 32, "attn-lrp"),
    ("vit", _vit, 32, "epsilon-plus"),
    ("swinunetr", _swin, 64, "attn-lrp"),
])
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_half_precision_matches_float32(name, make, size, preset, precision):
    torch.manual_seed(1)
    x = torch.randn(1, 1, size, size)
    model = _model(make, x)
    target = _region(x) if name == "swinunetr" else 0
    ref = lrp(model, x, target=target, preset=preset)
    r = lrp(model, x, target=target, preset=preset, precision=precision)
    assert r.meta["precision"] == precision
    assert r.relevance.dtype == torch.float32
    assert torch.isfinite(r.relevance).all()
    assert abs(r.meta["conservation_error"]) <= 0.01 * abs(r.explained)
    assert r.explained == pytest.approx(ref.explained, rel=0.05)
    assert _pearson(r.relevance, ref.relevance) >= 0.99
    assert r.meta["ledger_leaks"] == []  # closed forms hold to the rounding of the half forward


def test_half_precision_saves_the_inputs_of_layers_in_half():
    """Convolutions, dense layers and products keep their inputs in the half dtype for
    the relevance pass (sums, norms and softmax keep float32, where their rules cancel)."""
    torch.manual_seed(1)
    x = torch.randn(1, 1, 32, 32)
    model = _model(_vit, x)
    sizes = {}
    for precision in ("float32", "bfloat16"):
        saved = []

        def pack(t):
            saved.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            lrp(model, x, target=0, preset="attn-lrp", precision=precision)
        sizes[precision] = sum(saved)
    assert sizes["bfloat16"] < 0.9 * sizes["float32"]


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("make,preset", [(GatedCNN, "epsilon-gamma-box"), (_vit, "attn-lrp"), (_swin, "attn-lrp")])
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_gpu_maps_match_cpu_maps(make, preset, precision):
    torch.manual_seed(1)
    x = torch.randn(1, 1, 64, 64) if make is _swin else torch.randn(1, 1, 32, 32)
    model = _model(make, x)
    target = _region(x) if make is _swin else 0
    cpu = lrp(model, x, target=target, preset=preset)
    gpu = lrp(model.cuda(), x.cuda(), target=target, preset=preset, precision=precision)
    assert gpu.relevance.device.type == "cuda"
    assert _pearson(gpu.relevance.cpu(), cpu.relevance) >= (0.9999 if precision == "float32" else 0.99)
    assert abs(gpu.conservation_error) <= 0.01 * abs(gpu.explained)
