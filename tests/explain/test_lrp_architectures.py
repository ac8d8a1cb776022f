"""Conservation on real architectures, with no per-architecture code:
explained == input_sum + absorbed (the ledger of biases and stabilisers)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from viewer.explain.lrp import PRESETS, lrp
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


# -- transformers, hybrids and gated CNNs under every preset ---------------------------------------
def _calibrated(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Random weights, but BatchNorm statistics of the data (as after training) and no
    all-zero head (torchvision's ViT starts with one)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if bns:
        for m in bns:
            m.momentum = None
            m.reset_running_stats()
        model.train()
        with torch.no_grad():
            model(torch.cat([x + 0.5 * torch.randn_like(x) for _ in range(4)]))
    for m in model.modules():
        if isinstance(m, nn.Linear) and not m.weight.any():
            nn.init.normal_(m.weight, std=0.05)
    return model.eval()


def _tv(name: str, **kw):
    tv = pytest.importorskip("torchvision.models")
    return lambda: getattr(tv, name)(num_classes=5, **kw)


ZOO = {  # name: (builder, input shape, target kind)
    "monai_vit_2d": (lambda: nets.ViT(in_channels=1, img_size=(32, 32), patch_size=(8, 8), classification=True,
                                      num_classes=3, hidden_size=96, mlp_dim=192, num_layers=2, num_heads=4,
                                      spatial_dims=2), (1, 1, 32, 32), None),
    "swinunetr_2d": (lambda: nets.SwinUNETR(in_channels=1, out_channels=2, feature_size=12, spatial_dims=2,
                                            depths=(1, 1, 1, 1), num_heads=(3, 3, 3, 3)), (1, 1, 64, 64), "region"),
    "dynunet_res_3d": (lambda: nets.DynUNet(spatial_dims=3, in_channels=1, out_channels=2, kernel_size=[3, 3, 3],
                                            strides=[1, 2, 2], upsample_kernel_size=[2, 2], res_block=True),
                       (1, 1, 16, 16, 16), "region"),
    "mobilenet_v3_small": (_tv("mobilenet_v3_small"), (1, 3, 32, 32), None),
    # explicit asymmetric padding before the stem (its relevance was lost under Flat/ZBox)
    "monai_efficientnet_b0_2d": (lambda: nets.EfficientNetBN("efficientnet-b0", spatial_dims=2, in_channels=1,
                                                             num_classes=3, pretrained=False), (1, 1, 64, 64), None),
    # a 1×1 stem into GroupNorm (ZBox's denominator vanishes at the input's bounds)
    "mednext_2d": (lambda: nets.MedNeXt(spatial_dims=2, in_channels=1, out_channels=2, init_filters=8,
                                        blocks_down=(1, 1, 1, 1), blocks_bottleneck=1, blocks_up=(1, 1, 1, 1)),
                   (1, 1, 32, 32), "region"),
    # residuals written `x + torch.as_tensor(pad(x))`, channels padded with zeros
    "highresnet_2d": (lambda: nets.HighResNet(spatial_dims=2, in_channels=1, out_channels=2), (1, 1, 32, 32), "region"),
}
ZOO_SLOW = {
    "vit_b_16": (_tv("vit_b_16", image_size=32), (1, 3, 32, 32), None),
    "swin_t": (_tv("swin_t"), (1, 3, 32, 32), None),
    "unetr_3d": (lambda: nets.UNETR(in_channels=1, out_channels=2, img_size=(32, 32, 32), feature_size=4,
                                    hidden_size=96, mlp_dim=192, num_heads=4), (1, 1, 32, 32, 32), "region"),
    "efficientnet_b0": (_tv("efficientnet_b0"), (1, 3, 32, 32), None),
    "regnet_y_400mf": (_tv("regnet_y_400mf"), (1, 3, 32, 32), None),
}


def _region(model, x):
    with torch.no_grad():
        out = model(x)
    mask = torch.zeros(out.shape[2:], dtype=torch.bool)
    mask[tuple(slice(s // 4, s // 2) for s in out.shape[2:])] = True
    return Target.region(1, mask.numpy())


def _every_preset(name, make, shape, kind):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    model = _calibrated(make(), x)
    target = _region(model, x) if kind == "region" else None
    for preset in PRESETS:
        r = lrp(model, x, target=target, preset=preset)
        e = abs(r.explained)
        where = f"{name} / {preset}"
        assert "unhandled_ops" not in r.meta, (where, r.meta.get("unhandled_ops"))
        assert torch.isfinite(r.relevance).all(), where
        assert abs(r.conservation_error) <= 1e-4 * e, where
        # every absorbed part is a bias or a stabiliser share (their closed forms hold)
        assert not r.meta["ledger_leaks"], (where, r.meta["ledger_leaks"][:3])
        # no explosion: no operation receives more than 100 times the explained value
        # (before the LayerNorm rule ViT-B's input share was -2,664, DenseNet121's under
        # the epsilon preset 10²⁹; LRP-0 on a random RegNet legitimately reaches 40)
        assert max(abs(row["in"]) for row in r.meta["ledger"]) <= 100 * e, where
        # and where it means something, no kind of operation absorbs more than the
        # explained value: not for LRP-0 (epsilon: gradient × input, whose bias terms
        # of both signs exceed a random network's logit), not for alpha2-beta1 (α = 2
        # doubles relevance wherever a layer has no negative contribution), and not for
        # a region of a segmentation output (its last bias counts once per voxel)
        kinds = r.meta["absorbed_by_kind"]
        if preset not in ("epsilon", "epsilon-alpha2-beta1") and kind != "region":
            assert max(abs(v) for v in kinds.values()) <= e, (where, {k: v / e for k, v in kinds.items()})


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_preset_on_transformers_and_gated_cnns(name):
    _every_preset(name, *ZOO[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ZOO_SLOW))
def test_every_preset_on_large_transformers_and_gated_cnns(name):
    _every_preset(name, *ZOO_SLOW[name])


def test_a_model_returning_a_dict_is_explained_through_its_first_tensor():
    """torchvision's segmentation models return {"out": ..., "aux": ...}, MONAI's HoVerNet
    three named maps: the first tensor is explained, and the note says which."""
    tv = pytest.importorskip("torchvision.models.segmentation")
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    model = _calibrated(tv.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3), x)
    with torch.no_grad():
        out = model(x)["out"]
    mask = torch.zeros(out.shape[2:], dtype=torch.bool)
    mask[8:20, 8:20] = True
    r = lrp(model, x, target=Target.region(2, mask.numpy()), preset="epsilon-plus")
    assert r.meta["output_note"] == "the model returned a dict; its first tensor, 'out', was explained"
    assert r.explained == pytest.approx(float(out[0, 2][mask].sum()), rel=1e-5)
    assert "unhandled_ops" not in r.meta, r.meta.get("unhandled_ops")
    assert abs(r.conservation_error) <= 1e-4 * abs(r.explained)
    # the gradient methods read the same output
    from viewer.explain.gradients import input_x_gradient

    g = input_x_gradient(model, x, target=Target.region(2, mask.numpy()))
    assert float(g.relevance.sum()) != 0.0
    with pytest.raises(ValueError, match="returns a tensor, or a tuple or dict"):
        lrp(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), _NoTensor()), x)


class _NoTensor(nn.Module):
    def forward(self, h):
        return {"note": "no tensor here"}
