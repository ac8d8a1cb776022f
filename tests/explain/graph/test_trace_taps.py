"""The engine's open forward pass (``trace``): module outputs recorded as taps, several
backward passes from one forward, and ``lrp()`` unchanged on top of it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from viewer.explain.lrp import lrp
from viewer.explain.lrp.engine import trace


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
    ).double().eval()


def _x() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 1, 12, 12, dtype=torch.float64)


def test_taps_hold_module_outputs_in_forward_order():
    model, x = _net(), _x()
    traced = trace(model, x, taps=["4", "1", "7"])
    assert traced.tap_order == ["1", "4", "7"]
    assert traced.tap_calls == {"1": 1, "4": 1, "7": 1}
    with torch.no_grad():
        a1 = model[1](model[0](x))
    torch.testing.assert_close(traced.taps["1"].detach(), a1)
    assert traced.taps["7"] is traced.output


def test_relevance_split_at_a_tap_adds_up_to_the_plain_explanation():
    """Upper pass to the tap, then from the tap to the input, equals one lrp() call; a
    masked second half (one channel) gives part of it, all channels give all of it."""
    model, x = _net(), _x()
    ref = lrp(model, x, target=2, preset="epsilon-plus")
    traced = trace(model, x, preset="epsilon-plus", taps=["4"])
    out, tap = traced.output, traced.taps["4"]
    seed = torch.zeros_like(out)
    seed[0, 2] = out[0, 2].detach()
    (r_tap,) = torch.autograd.grad(out, tap, seed, retain_graph=True)
    parts = []
    for c in range(tap.shape[1]):
        mask = torch.zeros_like(r_tap)
        mask[:, c] = 1
        traced.book.reset(batch=1)
        (part,) = torch.autograd.grad(tap, traced.input, r_tap * mask, retain_graph=True)
        parts.append(part)
    torch.testing.assert_close(sum(parts), ref.relevance, rtol=1e-10, atol=1e-12)
    assert float((parts[0] - ref.relevance).abs().max()) > 1e-3  # one channel is not the whole map


def test_unknown_tap_is_refused():
    with pytest.raises(ValueError, match="no module named 'nope'"):
        trace(_net(), _x(), taps=["nope"])
