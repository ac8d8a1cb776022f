"""Explicit padding, masks and scatters, and activations written in other words
than nn.ReLU.

Padding with a constant puts values into the layer's input that are not the input:
rules that share relevance by position (Flat, WSquare, ZBox) give them some, which
the ledger must show as absorbed (it went missing before: MONAI's EfficientNet stem
pads explicitly, and ``explained == input_sum + absorbed`` failed by 8e-4). So must the relevance of
values a mask fills in (``masked_fill``, ``torch.where`` with a constant).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from viewer.explain.lrp import lrp


class Padded(nn.Module):
    """An input layer behind an explicit, asymmetric padding (the "same" padding of a
    stride-2 convolution as TensorFlow-style models write it)."""

    def __init__(self, pad: nn.Module | None = None, conv: nn.Module | None = None, mid=None) -> None:
        super().__init__()
        self.pad = pad if pad is not None else nn.ConstantPad2d((0, 1, 0, 1), 0.0)
        self.conv = conv if conv is not None else nn.Conv2d(1, 6, 3, stride=2)
        self.mid = mid
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.conv(self.pad(x)))
        if self.mid is not None:
            h = self.mid(h)
        return self.head(torch.relu(self.conv2(h)).mean((2, 3)))


def _run(model, preset, **kw):
    torch.manual_seed(0)
    model = model.double().eval()
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    r = lrp(model, x, target=0, preset=preset, **kw)
    assert "unhandled_ops" not in r.meta, r.meta.get("unhandled_ops")
    assert not r.meta["ledger_leaks"], r.meta["ledger_leaks"][:2]
    assert abs(r.conservation_error) <= 1e-10 * abs(r.explained)
    return r


@pytest.mark.parametrize("preset", ["epsilon-plus-flat", "epsilon-gamma-box"])
def test_constant_padding_before_a_positional_rule_is_absorbed_not_lost(preset):
    torch.manual_seed(0)
    r = _run(Padded(), preset, low=0.0, high=1.0)
    share = r.meta["absorbed_by_kind"]["pad"]
    # Flat spreads the stem's relevance evenly over every receptive position, padded or
    # not: 16 of the 3×3 windows' 72 taps at the border rows reach the padded column/row
    assert abs(share) > 1e-3 * abs(r.explained)


def test_padding_same_with_an_even_kernel_is_absorbed_not_lost():
    torch.manual_seed(0)
    model = Padded(pad=nn.Identity(), conv=nn.Conv2d(1, 6, 4, padding="same"))
    r = _run(model, "epsilon-plus-flat")
    assert abs(r.meta["absorbed_by_kind"]["pad"]) > 1e-3 * abs(r.explained)


def test_padding_with_a_nonzero_constant_inside_the_network():
    """A z-rule gives padded constants relevance when they are not zero."""
    torch.manual_seed(0)
    model = Padded(pad=nn.Identity(), conv=nn.Conv2d(1, 6, 3, padding=1),
                   mid=lambda h: F.pad(h, (1, 1, 1, 1), value=0.5)[..., 1:-1, :])
    r = _run(model, "epsilon")
    assert abs(r.meta["absorbed_by_kind"]["pad"]) > 1e-4 * abs(r.explained)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_that_copies_the_input_hands_relevance_back(mode):
    torch.manual_seed(0)
    model = Padded(pad=nn.Identity(), conv=nn.Conv2d(1, 6, 3, stride=2),
                   mid=lambda h: F.pad(h, (1, 1, 1, 1), mode=mode)[..., 1:-1, 1:-1])
    r = _run(model, "epsilon-plus-flat")
    assert "pad" not in r.meta["absorbed_by_kind"]


# -- the same activation in other words ----------------------------------------------------------
class Act(nn.Module):
    def __init__(self, act) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.act = act
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv2(self.act(self.conv(x)))).mean((2, 3)))


RELU_SPELLINGS = {
    "clamp": lambda h: h.clamp(min=0),
    "clamp_min": lambda h: torch.clamp_min(h, 0.0),
    "clamp_ in place": lambda h: h.clamp_(min=0),
    "clip": lambda h: torch.clip(h, 0.0, None),
    "maximum with zeros": lambda h: torch.maximum(h, torch.zeros_like(h)),
    "maximum, zeros first": lambda h: torch.maximum(torch.zeros(()), h),
    "threshold": lambda h: F.threshold(h, 0.0, 0.0),
    "threshold_ in place": lambda h: F.threshold_(h, 0.0, 0.0),
    "where": lambda h: torch.where(h > 0, h, 0.0),
    "masked_fill": lambda h: h.masked_fill(h <= 0, 0.0),
    "masked_fill_ in place": lambda h: h.masked_fill_(h <= 0, 0.0),
}


@pytest.mark.parametrize("name", sorted(RELU_SPELLINGS))
def test_relu_spelled_otherwise_explains_like_relu(name):
    torch.manual_seed(0)
    x = torch.randn(1, 1, 12, 12)
    reference = Act(nn.ReLU()).eval()
    model = Act(RELU_SPELLINGS[name]).eval()
    model.load_state_dict(reference.state_dict())
    expected = lrp(reference, x, target=1, preset="epsilon-plus").relevance
    r = lrp(model, x, target=1, preset="epsilon-plus")
    assert "unhandled_ops" not in r.meta, r.meta.get("unhandled_ops")
    torch.testing.assert_close(r.relevance, expected, rtol=1e-5, atol=1e-7)


OTHER = {
    "abs": lambda h: h.abs(),
    "log-sigmoid": nn.LogSigmoid(),
    "nan_to_num": torch.nan_to_num,
    "as_tensor": torch.as_tensor,
    "relu6 by clamping": lambda h: h.clamp(0, 6),
    "in-place shape ops": lambda h: h.unsqueeze_(0).squeeze_(0),
    "maximum of two activations": lambda h: torch.maximum(h, h.flip(-1)),
    "cumulative sum": lambda h: h.cumsum(-1) / 12,
    "grid_sample at a fixed grid": lambda h: F.grid_sample(
        h, F.affine_grid(torch.tensor([[[0.9, 0.2, 0.05], [-0.2, 0.9, 0.0]]]), list(h.shape), align_corners=False),
        align_corners=False),
    "channels scattered into zeros": lambda h: torch.zeros_like(h).scatter(
        1, torch.tensor([3, 1, 0, 2, 5, 4]).view(1, 6, 1, 1).expand_as(h), h),
    "channels index_add-ed into zeros": lambda h: torch.zeros_like(h).index_add(1, torch.tensor([3, 1, 0, 2, 5, 4]), h),
    "top-k, sorted, median": lambda h: torch.cat([
        h.flatten(2).topk(20).values, h.flatten(2).sort(-1).values[..., :50],
        h.flatten(2).median(-1, keepdim=True).values], -1).unflatten(-1, (71, 1)),
}


@pytest.mark.parametrize("name", sorted(OTHER))
def test_other_elementwise_spellings_have_a_rule(name):
    torch.manual_seed(0)
    x = torch.randn(1, 1, 12, 12)
    model = Act(OTHER[name]).eval()
    with torch.no_grad():
        logit = float(model(x)[0, 2])
    r = lrp(model, x, target=2, preset="epsilon-plus")
    assert "unhandled_ops" not in r.meta, r.meta.get("unhandled_ops")
    assert r.explained == pytest.approx(logit, rel=1e-6)
    assert abs(r.conservation_error) <= 1e-5 * abs(r.explained)
    assert r.relevance.abs().sum() > 0


@pytest.mark.parametrize("fill", [0.5, -1.0])
def test_relevance_on_values_filled_in_is_booked_as_a_constants_share(fill):
    """Positions a mask fills with a constant take relevance like a bias would; before,
    it left the books (``masked_fill``/``where`` were run by their gradient)."""
    for act in (lambda h: h.masked_fill(h < 0.2, fill), lambda h: torch.where(h < 0.2, fill, h)):
        torch.manual_seed(0)
        model = Act(act).double().eval()
        r = lrp(model, torch.randn(1, 1, 12, 12, dtype=torch.float64), target=0, preset="epsilon")
        assert "unhandled_ops" not in r.meta, r.meta.get("unhandled_ops")
        assert abs(r.conservation_error) <= 1e-10 * abs(r.explained)
        assert abs(r.meta["absorbed_by_kind"]["constant"]) > 1e-3 * abs(r.explained)
        assert not r.meta["ledger_leaks"]


# -- ZBox where the input sits at its bound -------------------------------------------------------
def test_zbox_at_the_lower_bound_keeps_the_ledger_exact_in_float32():
    """A 1×1 stem (MedNeXt's) on an image whose background sits at the lower bound:
    there ZBox's denominator is exactly 0, but ``y - offset`` leaves y's float32
    rounding noise, larger than ε, and the ledger saw relevance vanish (17 % of the
    stem's here, 0.7 % on MONAI's MedNeXt) that neither the bias nor the stabiliser took."""
    torch.manual_seed(0)
    model = nn.Sequential(  # a MedNeXt-like stem and block: relevance reaches every stem output
        nn.Conv2d(1, 8, 1), nn.GroupNorm(8, 8), nn.Conv2d(8, 16, 1), nn.GELU(), nn.Conv2d(16, 8, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)).eval()
    x = torch.rand(1, 1, 32, 32) * 1000.0 - 1000.0
    x[..., :, :16] = -1000.0  # air
    kw = dict(target=0, preset="epsilon-gamma-box", low=-1000.0, high=0.0)
    r32 = lrp(model, x, **kw)
    r64 = lrp(model.double(), x.double(), **kw)
    assert not r32.meta["ledger_leaks"], r32.meta["ledger_leaks"]
    stem32, stem64 = r32.meta["ledger"][0], r64.meta["ledger"][0]  # before: other = −17 % of the stem's
    assert stem32["stabiliser"] == pytest.approx(stem64["stabiliser"], rel=1e-3, abs=1e-6 * abs(r64.explained))
    assert torch.corrcoef(torch.stack([r32.relevance.double().flatten(), r64.relevance.flatten()]))[0, 1] > 0.9999
