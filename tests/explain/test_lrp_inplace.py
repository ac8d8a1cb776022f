"""In-place code, unary minus and the model-copy cache: the engine explains the
function the model computes, however it is written."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from viewer.explain.lrp import PRESETS, lrp
from viewer.explain.target import Target


class ResBlock(nn.Module):
    """MONAI's UnetResBlock pattern: conv → norm → activation → conv → norm, then
    ``out += residual`` on the norm's output (a view made inside F.instance_norm)."""

    def __init__(self, norm: str, inplace: bool) -> None:
        super().__init__()
        self.inplace = inplace
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        make = {"instance": lambda: nn.InstanceNorm2d(4, affine=True), "group": lambda: nn.GroupNorm(2, 4),
                "batch": lambda: nn.BatchNorm2d(4)}[norm]
        self.norm1, self.norm2 = make(), make()
        self.act = nn.LeakyReLU(0.01, inplace=inplace)

    def forward(self, x):
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        if self.inplace:
            out += x
        else:
            out = out + x
        return self.act(out)


class Net(nn.Module):
    def __init__(self, norm: str, inplace: bool) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = ResBlock(norm, inplace)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).mean((2, 3)))


def _pair(norm: str) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    a = Net(norm, inplace=True)
    with torch.no_grad():
        for p in a.parameters():
            p.add_(0.1 * torch.randn_like(p))
    b = Net(norm, inplace=False)
    b.load_state_dict(a.state_dict())
    return a.double().eval(), b.double().eval()


@pytest.mark.parametrize("norm", ["instance", "group", "batch"])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_residual_added_in_place_after_a_norm(norm, preset):
    inplace, plain = _pair(norm)
    torch.manual_seed(1)
    x = torch.randn(1, 1, 10, 10, dtype=torch.float64)
    a = lrp(inplace, x, target=1, preset=preset)
    b = lrp(plain, x, target=1, preset=preset)
    with torch.no_grad():
        assert a.explained == pytest.approx(float(plain(x)[0, 1]), rel=1e-12)
    torch.testing.assert_close(a.relevance, b.relevance, rtol=1e-10, atol=1e-12)
    assert abs(a.conservation_error) <= 1e-9 * abs(a.explained)
    assert "unhandled_ops" not in a.meta


def test_monai_dynunet_with_residual_blocks():
    nets = pytest.importorskip("monai.networks.nets")
    torch.manual_seed(0)
    model = nets.DynUNet(spatial_dims=2, in_channels=1, out_channels=2, kernel_size=[3, 3, 3], strides=[1, 2, 2],
                         upsample_kernel_size=[2, 2], res_block=True).eval()
    x = torch.randn(1, 1, 32, 32)
    mask = np.zeros((32, 32), bool)
    mask[8:20, 8:20] = True
    with torch.no_grad():
        want = float(model(x)[0, 1][torch.from_numpy(mask)].sum())
    r = lrp(model, x, target=Target.region(1, mask), preset="epsilon-gamma-box")
    assert r.explained == pytest.approx(want, rel=1e-5)
    assert abs(r.conservation_error) <= 1e-4 * abs(r.explained)
    assert "unhandled_ops" not in r.meta


def test_in_place_statement_on_a_kept_output_changes_the_model_function():
    """``h.add_(c)`` as a statement on a convolution output that the ε-rule keeps for
    its backward: the rest of the forward sees the shifted h, the rule the original."""

    class Shift(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 2, 3, padding=1)

        def forward(self, x):
            h = self.a(x)
            h.add_(0.5)
            h[:, :2] *= 2.0  # in place through a view
            return self.b(F.relu(h)).sum((2, 3))

    torch.manual_seed(0)
    net = Shift().double().eval()
    x = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        want = float(net(x)[0, 1])
    for preset in ("epsilon", "epsilon-plus", "epsilon-gamma-box"):
        r = lrp(net, x, target=1, preset=preset, low=0.0, high=1.0)
        assert r.explained == pytest.approx(want, rel=1e-12), preset
        assert abs(r.conservation_error) <= 1e-9 * abs(r.explained), preset


def test_relu_in_place_with_discarded_result():
    """``F.relu(h, inplace=True)`` used as a statement changes h for what follows."""

    class Statement(nn.Module):
        def __init__(self, style: str) -> None:
            super().__init__()
            self.style = style
            self.a = nn.Linear(6, 8)
            self.b = nn.Linear(8, 3)

        def forward(self, x):
            h = self.a(x) - 0.2
            if self.style == "statement":
                F.relu(h, inplace=True)
            else:
                h = F.relu(h)
            return self.b(h)

    torch.manual_seed(0)
    stmt, plain = Statement("statement").double().eval(), Statement("plain").double().eval()
    plain.load_state_dict(stmt.state_dict())
    x = torch.randn(1, 6, dtype=torch.float64)
    with torch.no_grad():
        want = float(plain(x)[0, 0])
    a, b = lrp(stmt, x, target=0, preset="epsilon"), lrp(plain, x, target=0, preset="epsilon")
    assert a.explained == pytest.approx(want, rel=1e-12)
    torch.testing.assert_close(a.relevance, b.relevance, rtol=1e-12, atol=1e-14)


def test_unary_minus_passes_relevance_like_a_scale():
    """LRP-0 equals gradient × input on a bias-free ReLU net, also through ``-h``
    (before, ``neg`` had no rule and the map came out with its sign flipped)."""

    class Minus(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(5, 7, bias=False)
            self.b = nn.Linear(7, 2, bias=False)

        def forward(self, x):
            return self.b(-F.relu(self.a(x)))

    torch.manual_seed(0)
    net = Minus().double().eval()
    x = torch.randn(1, 5, dtype=torch.float64)
    r = lrp(net, x, target=0, preset="epsilon", epsilon=1e-300, stabilizer=1e-300)
    assert "unhandled_ops" not in r.meta
    xx = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(xx)[0, 0], xx)
    torch.testing.assert_close(r.relevance, g * x, rtol=1e-10, atol=1e-14)
    assert r.input_sum == pytest.approx(r.explained, rel=1e-10)


def test_cache_follows_changed_module_settings():
    """Changing a module setting (BatchNorm's eps) after a first call explains the new model."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    x = torch.randn(1, 1, 6, 6)
    model(x)
    model.eval()
    with torch.no_grad():
        model[1].running_var.fill_(0.01)
    first = lrp(model, x, target=0, preset="epsilon")
    model[1].eps = 1.0
    with torch.no_grad():
        want = model(x)
    second = lrp(model, x, target=0, preset="epsilon")
    torch.testing.assert_close(second.output, want)
    assert second.explained != pytest.approx(first.explained, rel=1e-3)
