"""The transformer preset: chosen for models with attention, gates overridable."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from viewer.explain.lrp import has_attention, lrp, recommended_preset


def test_models_with_attention_get_attn_lrp():
    tv = pytest.importorskip("torchvision.models")
    nets = pytest.importorskip("monai.networks.nets")
    assert recommended_preset(tv.vit_b_16(image_size=32)) == "attn-lrp"
    assert recommended_preset(tv.swin_t()) == "attn-lrp"
    assert recommended_preset(nets.ViT(in_channels=1, img_size=32, patch_size=16, hidden_size=48, mlp_dim=96,
                                       num_layers=1, num_heads=2, spatial_dims=2)) == "attn-lrp"
    assert recommended_preset(nets.SwinUNETR(in_channels=1, out_channels=2, feature_size=12, spatial_dims=2,
                                             depths=(1, 1, 1, 1), num_heads=(3, 3, 3, 3))) == "attn-lrp"
    assert recommended_preset(tv.resnet18()) == "epsilon-plus"
    assert recommended_preset(tv.efficientnet_b0()) == "epsilon-plus"  # squeeze-excitation is not attention
    assert not has_attention(nets.DenseNet121(spatial_dims=2, in_channels=1, out_channels=2))
    assert has_attention(nn.Sequential(nn.Linear(4, 4), nn.MultiheadAttention(4, 2)))


class Gated(nn.Module):
    """Squeeze-and-excitation followed by a GLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(4, 2), nn.Linear(2, 4)
        self.glu = nn.Linear(4, 6)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(h.mean((2, 3))))))
        h = h * s[:, :, None, None]
        return self.head(nn.functional.glu(self.glu(h.mean((2, 3))), dim=-1))


def test_gates_are_constants_unless_overridden():
    torch.manual_seed(0)
    model = Gated().double().eval()
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64)
    const = lrp(model, x, target=0, preset="attn-lrp")
    uniform = lrp(model, x, target=0, preset="attn-lrp", gates="uniform")
    assert "unhandled_ops" not in const.meta and "unhandled_ops" not in uniform.meta
    for r in (const, uniform):
        assert abs(r.conservation_error) <= 1e-10 * abs(r.explained)
        assert r.meta["ledger_leaks"] == []
    assert const.params["gates"] == "constant" and uniform.params["gates"] == "uniform"
    # uniform: half of each gated product's relevance goes into the gate branch, which
    # shows up as absorbed by the products and as a different map
    assert "product" in uniform.meta["absorbed_by_kind"] and "product" not in const.meta["absorbed_by_kind"]
    assert not torch.allclose(const.relevance, uniform.relevance)
    with pytest.raises(ValueError, match="gates"):
        lrp(model, x, target=0, preset="attn-lrp", gates="open")
