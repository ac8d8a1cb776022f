"""Agreement with lxt (AttnLRP's reference implementation) on a small ViT, float64.

lxt is a test oracle only and runs in its own process (parts of it patch torch). It is
installed without its declared dependencies (``pip install --no-deps lxt==2.1``): its
explicit rules need only torch, while ``pip install lxt`` pulls transformers,
bitsandbytes, open_clip and timm."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.explain.lxt_vit import TinyViT
from viewer.explain.lrp import lrp

pytestmark = pytest.mark.skipif(importlib.util.find_spec("lxt") is None, reason="lxt is not installed")


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


def _oracle(model: TinyViT, x: torch.Tensor, target: int, tmp_path: Path) -> torch.Tensor:
    torch.save(model.state_dict(), tmp_path / "state.pt")
    torch.save(x, tmp_path / "x.pt")
    script = Path(__file__).with_name("lxt_vit.py")
    subprocess.run([sys.executable, str(script), str(tmp_path / "state.pt"), str(tmp_path / "x.pt"), str(target),
                    str(tmp_path / "rel.pt")], check=True, capture_output=True, timeout=300)
    return torch.load(tmp_path / "rel.pt", weights_only=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_attn_lrp_agrees_with_lxt_on_a_vit(seed, tmp_path):
    torch.manual_seed(seed)
    model = TinyViT().double().eval()
    x = torch.randn(1, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        target = int(model(x).argmax())
    ref = _oracle(model, x, target, tmp_path)
    ours = lrp(model, x, target=target, preset="attn-lrp", epsilon=1e-12, stabilizer=1e-12)
    assert "unhandled_ops" not in ours.meta
    assert _pearson(ours.relevance, ref) >= 0.99
    torch.testing.assert_close(ours.relevance, ref, rtol=1e-6, atol=1e-9 * float(ref.abs().max()))
    # the comparison can fail: gradient × input (other rules for LayerNorm, GELU and
    # the products) correlates 0.95 / 0.91 with the oracle on these two networks
    xx = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xx)[0, target], xx)
    assert _pearson(g * x, ref) < 0.99
