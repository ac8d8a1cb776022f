"""Conservation on real architectures, with no per-architecture code:
explained == input_sum + absorbed (the ledger of biases and stabilisers)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from viewer.explain.lrp import lrp
from viewer.explain.target import Target

nets = pytest.importorskip("monai.networks.nets")


def _with_bn_stats(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Random but non-trivial running statistics: a few train-mode passes."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        model.train()
        with torch.no_grad():
            for i in range(2):
                model(torch.cat([x * (1 + i), x + 0.5 * torch.randn_like(x)]))
    return model.eval()


class VGGish(nn.Module):
    """A small torchvision-style VGG with BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        cfg, layers, c = [8, "M", 16, "M", 16], [], 1
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(nn.Linear(64, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, 3))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _vit():
    pytest.importorskip("einops")
    return nets.ViT(in_channels=1, img_size=(32, 32, 32), patch_size=(8, 8, 8), classification=True, num_classes=3,
                    hidden_size=96, mlp_dim=192, num_layers=2, num_heads=4)


CASES = {
    "vgg_bn_2d": (VGGish, (1, 1, 64, 64), None),
    "densenet121_2d": (lambda: nets.DenseNet121(spatial_dims=2, in_channels=1, out_channels=3), (1, 1, 64, 64), None),
    "vit_3d": (_vit, (1, 1, 32, 32, 32), None),
    "unet_3d": (lambda: nets.UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(8, 16, 32), strides=(2, 2),
                                  num_res_units=2), (1, 1, 32, 32, 32), "region"),
    "segresnet_3d": (lambda: nets.SegResNet(spatial_dims=3, in_channels=1, out_channels=2, init_filters=8),
                     (1, 1, 32, 32, 32), "region"),
}
SLOW = {
    "resnet18_3d": (lambda: nets.resnet18(spatial_dims=3, n_input_channels=1, num_classes=3), (1, 1, 32, 32, 32), None),
    "seresnet50_3d": (lambda: nets.SEResNet50(spatial_dims=3, in_channels=1, num_classes=3), (1, 1, 32, 32, 32), None),
    "densenet121_3d": (lambda: nets.DenseNet121(spatial_dims=3, in_channels=1, out_channels=3), (1, 1, 32, 32, 32), None),
    "resnet50_3d": (lambda: nets.resnet50(spatial_dims=3, n_input_channels=1, num_classes=3), (1, 1, 32, 32, 32), None),
}


def _target(kind, model, x):
    if kind != "region":
        return None
    with torch.no_grad():
        out = model(x)
    mask = torch.zeros(out.shape[2:], dtype=torch.bool)
    mask[8:20, 8:20, 8:20] = True
    return Target.region(1, mask.numpy())


def _check(name, make, shape, kind, preset, dtype=torch.float32):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    model = _with_bn_stats(make(), x).to(dtype)
    x = x.to(dtype)
    r = lrp(model, x, target=_target(kind, model, x), preset=preset)
    assert "unhandled_ops" not in r.meta, r.meta.get("unhandled_ops")
    assert r.relevance.shape == x.shape
    assert torch.isfinite(r.relevance).all()
    tol = 1e-8 if dtype == torch.float64 else 1e-4
    assert abs(r.conservation_error) <= tol * max(abs(r.explained), abs(r.input_sum), abs(r.absorbed))
    assert r.relevance.abs().sum() > 0
    return r


@pytest.mark.parametrize("name", sorted(CASES))
def test_ledger_balances(name):
    make, shape, kind = CASES[name]
    r = _check(name, make, shape, kind, "epsilon-plus")
    if name == "vit_3d":
        assert "tuple" in r.meta["output_note"]
    if name in ("vgg_bn_2d", "densenet121_2d"):
        assert r.meta["folded_batchnorms"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_ledger_balances_large(name):
    make, shape, kind = SLOW[name]
    _check(name, make, shape, kind, "epsilon-gamma-box", dtype=torch.float64)


def test_bias_free_resnet_conserves_without_ledger():
    """With biases removed (and BatchNorm left out), relevance itself is conserved."""
    torch.manual_seed(0)
    model = nets.resnet18(spatial_dims=2, n_input_channels=1, num_classes=3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # folds into a scale without shift
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.running_mean.zero_()
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
    model = model.double().eval()
    x = torch.randn(1, 1, 64, 64).double()
    r = lrp(model, x, target=1, preset="epsilon", epsilon=1e-12, stabilizer=1e-12)
    assert "unhandled_ops" not in r.meta
    assert abs(r.input_sum - r.explained) <= 1e-3 * abs(r.explained)
