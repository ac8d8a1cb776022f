"""The transposed maps the rules use: the depthwise / polyphase form for input layers
must equal autograd's own (oneDNN) transposed convolution."""

from __future__ import annotations

import pytest
import torch

from viewer.explain.lrp.affine import AffineOp

CASES = [
    # nd, size, in channels, out channels, kernel, stride, padding, depthwise form chosen
    (3, 20, 1, 16, 7, 1, 3, True),  # MONAI resnet stem
    (3, 20, 1, 16, 7, 2, 3, True),  # MONAI DenseNet stem
    (3, 20, 1, 8, 3, 1, 1, True),  # the 3D demo model's first layer
    (3, 20, 1, 64, 3, 1, 1, False),  # into many channels oneDNN is faster
    (3, 21, 2, 16, 3, 2, 1, False),  # 3³ at stride 2: 2.4× the taps
    (2, 40, 1, 16, 5, 1, 2, True),
    (2, 41, 3, 8, 3, 2, 0, False),  # RGB, odd size, no padding
    (2, 33, 1, 8, 4, 1, 1, False),  # even kernel
    (2, 33, 1, 8, 4, 3, 2, False),  # stride 3
    (2, 30, 1, 8, 7, 2, 5, True),  # padding beyond half the kernel
    (3, 19, 1, 8, (7, 3, 5), (2, 1, 3), (3, 1, 2), True),  # anisotropic everything
]


@pytest.mark.parametrize("nd,size,cin,cout,kernel,stride,padding,chosen", CASES)
def test_depthwise_transposed_map_equals_autograd(nd, size, cin, cout, kernel, stride, padding, chosen) -> None:
    torch.manual_seed(0)
    op = AffineOp.conv(nd, stride, padding, 1)
    ks = kernel if isinstance(kernel, tuple) else (kernel,) * nd
    x = torch.randn(2, cin, *([size] * nd))
    w1, w2 = torch.randn(cout, cin, *ks), torch.randn(cout, cin, *ks)
    g = torch.randn_like(op.forward(x, w1, None))
    # chosen where it was measured faster than oneDNN's own map (AffineOp._few_inputs)
    assert op._few_inputs(g, (w1, w2), x) == chosen
    xx = x.clone().requires_grad_(True)
    (want1,) = torch.autograd.grad(op.forward(xx, w1, None), xx, g)
    (want2,) = torch.autograd.grad(op.forward(xx, w2, None), xx, g)
    got1 = op.vjp(g, w1, x)
    pair = op._vjp_depthwise(g, (w1, w2), x)
    for got, want in ((got1, want1), (pair[0], want1), (pair[1], want2)):
        assert got.shape == want.shape and got.is_contiguous()
        torch.testing.assert_close(got, want, rtol=0, atol=2e-5 * float(want.abs().max()))
    # the pair as the rules ask for it (depthwise, or one transposed map into 2·cin channels)
    for got, want in zip(op.vjp_pair(g, w1, w2, x), (want1, want2)):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=0, atol=2e-5 * float(want.abs().max()))


def test_many_channel_layers_and_float64_keep_autograd_path() -> None:
    op = AffineOp.conv(3, 1, 1, 1)
    x, w = torch.randn(1, 16, 8, 8, 8), torch.randn(16, 16, 3, 3, 3)
    g = torch.randn_like(op.forward(x, w, None))
    assert not op._few_inputs(g, (w,), x)
    x1, w1 = torch.randn(1, 1, 8, 8, 8, dtype=torch.float64), torch.randn(16, 1, 3, 3, 3, dtype=torch.float64)
    assert not op._few_inputs(torch.randn(1, 16, 8, 8, 8, dtype=torch.float64), (w1,), x1)


@pytest.mark.parametrize(
    "cin,cout,kernel,stride,padding,dilation,groups",
    [(16, 8, 3, 1, 1, 1, 1), (16, 8, 3, 2, 1, 1, 1), (16, 8, 1, 1, 0, 1, 1), (16, 8, 3, 1, 2, 2, 1),
     (16, 8, 3, 1, 1, 1, 4), (8, 16, 5, 1, 0, 1, 1), (8, 16, (3, 1, 3), 1, (1, 0, 1), 1, 1)],
)
def test_onednn_3d_maps_equal_pytorch(cin, cout, kernel, stride, padding, dilation, groups) -> None:
    """3D convolutions called through oneDNN directly (forward, and the stride-1
    transposed map as a flipped-kernel convolution) equal F.conv3d and autograd."""
    torch.manual_seed(0)
    op = AffineOp.conv(3, stride, padding, dilation, groups)
    ks = kernel if isinstance(kernel, tuple) else (kernel,) * 3
    x = torch.randn(2, cin, 12, 12, 12)
    w, b = torch.randn(cout, cin // groups, *ks), torch.randn(cout)
    y = op.forward(x, w, b)
    torch.testing.assert_close(y, torch.nn.functional.conv3d(x, w, b, stride, padding, dilation, groups))
    g = torch.randn_like(y)
    xx = x.clone().requires_grad_(True)
    (want,) = torch.autograd.grad(torch.nn.functional.conv3d(xx, w, b, stride, padding, dilation, groups), xx, g)
    got = op.vjp(g, w, x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=2e-5 * float(want.abs().max()))


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_pair_frees_each_map_before_the_next(stride, monkeypatch) -> None:
    """Each depthwise correlation's output is as large as the relevance it reads
    (64 channels at the input's resolution for a stem): none may still be alive when
    the next one starts (a kept one cost ResNet18-3D 0.24× one gradient in peak memory)."""
    import gc
    import weakref

    import torch.nn.functional as F

    alive_at_call: list[int] = []
    outputs: list[weakref.ref] = []
    real = F.conv3d

    def spy(*args, **kwargs):
        gc.collect()
        alive_at_call.append(sum(r() is not None for r in outputs))
        out = real(*args, **kwargs)
        outputs.append(weakref.ref(out))
        return out

    monkeypatch.setattr(F, "conv3d", spy)
    op = AffineOp.conv(3, stride, 3)
    w1, w2 = torch.randn(16, 1, 7, 7, 7), torch.randn(16, 1, 7, 7, 7)
    x = torch.rand(1, 1, 20, 20, 20)
    g = torch.randn(1, 16, *([20 // stride] * 3))
    assert op._few_inputs(g, (w1, w2), x)
    a, b = op.vjp_pair(g, w1, w2, x)
    assert alive_at_call and max(alive_at_call) == 0, alive_at_call
    monkeypatch.undo()
    for got, w in ((a, w1), (b, w2)):
        want = torch.nn.grad.conv3d_input(x.shape, w, g, stride, 3)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))
