"""Operations, not only modules: residual `+=`, reused and in-place activations,
concatenation, upsampling, transposed convolutions, adaptive pooling, softmax heads,
attention.  Bias-free models make conservation exact up to the tiny stabiliser, so
every mishandled operation shows up as a relevance sum different from f_target(x)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from viewer.explain.lrp import lrp


class Block(nn.Module):
    """Written the MONAI/torchvision way: `out += residual`, one ReLU module used twice."""

    def __init__(self, style: str) -> None:
        super().__init__()
        self.style = style
        self.conv1 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.act = nn.ReLU(inplace=(style == "inplace"))
        self.act2 = nn.ReLU()

    def forward(self, x):
        out = self.act(self.conv1(x))
        out = self.conv2(out)
        if self.style in ("inplace", "reused"):
            out += x
            return self.act(out)
        if self.style == "functional":
            return self.act2(torch.add(out, x))
        return self.act2(out + x)


class OpsNet(nn.Module):
    def __init__(self, style: str = "plain", head: str = "logits") -> None:
        super().__init__()
        self.head = head
        self.stem = nn.Conv2d(2, 6, 3, padding=1, bias=False)
        self.block = Block(style)
        self.down = nn.Conv2d(6, 6, 3, stride=2, padding=1, bias=False)
        self.up = nn.ConvTranspose2d(6, 4, 2, stride=2, bias=False)
        self.side = nn.Conv2d(6, 4, 1, bias=False)
        self.mix = nn.Conv2d(8 + 6, 8, 3, padding=1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d((2, 2))
        self.fc = nn.Linear(8 * 4, 3, bias=False)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = self.block(x)
        d = F.relu(self.down(x))
        u = self.up(d)                                                  # transposed conv
        s = F.interpolate(self.side(d), scale_factor=2, mode="bilinear", align_corners=False)
        n = F.interpolate(d, scale_factor=2, mode="nearest")            # upsampling
        x = torch.cat([u, s, n], dim=1)                                 # concatenation
        x = F.relu(self.mix(x))
        x = self.fc(torch.flatten(self.pool(x), 1))
        return torch.softmax(x, dim=1) if self.head == "softmax" else x


def _x(shape=(1, 2, 16, 16), seed=0):
    torch.manual_seed(seed)
    return torch.randn(*shape).double()


def _model(style="plain", head="logits"):
    torch.manual_seed(3)
    return OpsNet(style, head).double().eval()


@pytest.mark.parametrize("style", ["plain", "inplace", "reused", "functional"])
@pytest.mark.parametrize("preset", ["epsilon", "epsilon-plus"])
def test_conserves_through_every_operation(style, preset):
    r = lrp(_model(style), _x(), target=1, preset=preset, epsilon=1e-12, stabilizer=1e-12)
    assert "unhandled_ops" not in r.meta
    if preset == "epsilon":  # ZPlus legitimately drops relevance where no input contributes positively
        assert abs(r.input_sum - r.explained) <= 1e-3 * abs(r.explained)
    assert abs(r.conservation_error) <= 1e-9 * abs(r.explained)


def test_writing_style_does_not_change_relevance():
    """`out += x` with a reused in-place ReLU gives what `relu(out + x)` gives."""
    ref = lrp(_model("plain"), _x(), target=2).relevance
    for style in ("inplace", "reused", "functional"):
        other = lrp(_model(style), _x(), target=2).relevance
        torch.testing.assert_close(other, ref, rtol=1e-12, atol=1e-14)


def test_epsilon_equals_gradient_times_input_on_bias_free_relu_net():
    """A known identity (LRP-0 = gradient × input for bias-free ReLU nets) checks every
    operation at once: a residual sum that duplicated relevance, or a concatenation
    that lost it, would break it."""
    model, x = _model("inplace"), _x()
    r = lrp(model, x, target=1, preset="epsilon", epsilon=1e-300, stabilizer=1e-300)
    xx = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xx)[0, 1], xx)
    torch.testing.assert_close(r.relevance, g * x, rtol=1e-9, atol=1e-15)


def test_softmax_head_explains_the_logit():
    logits_model, soft_model = _model(head="logits"), _model(head="softmax")
    a = lrp(logits_model, _x(), target=0)
    b = lrp(soft_model, _x(), target=0)
    torch.testing.assert_close(b.output, a.output)
    assert b.explained == pytest.approx(a.explained, rel=1e-12)
    torch.testing.assert_close(b.relevance, a.relevance)
    assert "softmax" in b.meta["output_note"]


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_adaptive_pooling_and_transposed_conv_in_each_dimension(nd):
    Conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[nd - 1]
    ConvT = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[nd - 1]
    Avg = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[nd - 1]
    Max = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)[nd - 1]
    torch.manual_seed(0)
    model = nn.Sequential(
        Conv(1, 4, 3, padding=1, bias=False), nn.ReLU(), ConvT(4, 4, 2, stride=2, bias=False), nn.ReLU(),
        Max(6), Avg(3), nn.Flatten(), nn.Linear(4 * 3 ** nd, 2, bias=False),
    ).double().eval()
    x = _x((1, 1) + (8,) * nd)
    r = lrp(model, x, target=0, epsilon=1e-12, stabilizer=1e-12)
    assert r.relevance.shape == x.shape
    assert abs(r.input_sum - r.explained) <= 1e-3 * abs(r.explained)


class TinyAttention(nn.Module):
    """Hand-written attention (matmul + softmax), SDPA and nn.MultiheadAttention."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.embed = nn.Linear(4, 8, bias=False)
        self.qkv = nn.Linear(8, 24, bias=False)
        self.mha = nn.MultiheadAttention(8, 2, bias=False, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 3, bias=False)

    def forward(self, x):
        h = self.embed(x)
        if self.kind == "mha":
            a, _ = self.mha(h, h, h, need_weights=False)
        else:
            q, k, v = self.qkv(h).chunk(3, dim=-1)
            if self.kind == "sdpa":
                a = F.scaled_dot_product_attention(q, k, v)
            else:
                a = torch.softmax(q @ k.transpose(-2, -1) / 8 ** 0.5, dim=-1) @ v
        h = self.norm(h + a)
        h = h * torch.sigmoid(h.mean(1, keepdim=True))  # a squeeze-excite style gate
        return self.head(F.gelu(h).mean(1))


@pytest.mark.parametrize("kind", ["manual", "sdpa", "mha"])
def test_attention_is_handled_and_ledger_balances(kind):
    torch.manual_seed(0)
    model = TinyAttention(kind).double().eval()
    x = _x((1, 5, 4))
    r = lrp(model, x, target=0)
    assert "unhandled_ops" not in r.meta
    assert abs(r.conservation_error) <= 1e-9 * max(1.0, abs(r.explained))
    assert r.relevance.abs().sum() > 0


def test_sdpa_matches_handwritten_attention():
    torch.manual_seed(0)
    manual, sdpa = TinyAttention("manual").double().eval(), TinyAttention("sdpa").double().eval()
    sdpa.load_state_dict(manual.state_dict())
    x = _x((1, 5, 4))
    torch.testing.assert_close(lrp(sdpa, x, target=1).relevance, lrp(manual, x, target=1).relevance)


def test_unhandled_operation_is_reported():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(torch.exp(x))

    with pytest.warns(UserWarning, match="exp"):
        r = lrp(Odd().double(), _x((1, 4)), target=0)
    assert r.meta["unhandled_ops"] == {"exp": 1}
