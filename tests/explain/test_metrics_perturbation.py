"""Region perturbation curves and AOPC on models whose answer is known by hand."""

import threading

import numpy as np
import pytest
import torch

from viewer.explain import Cancelled, Progress
from viewer.explain.metrics import aopc, perturbation_curve
from viewer.explain.regions import grid_regions


class RegionSum(torch.nn.Module):
    """f(x) = Σ x inside a fixed mask (one output)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.mask = mask

    def forward(self, x):
        return (x * self.mask).flatten(1).sum(1, keepdim=True)


@pytest.mark.parametrize("d", [2, 3])
def test_curves_of_a_region_sum_are_known(d):
    shape = (8,) * d
    mask = torch.zeros(shape)
    mask[(slice(0, 4),) * d] = 1.0  # 2^d patches of edge 2
    x = torch.ones(1, 1, *shape)
    model = RegionSum(mask)
    k = 4**d if d == 2 else 64
    curve = perturbation_curve(model, x, mask[None, None], target=0, patch=2, steps=k, seed=7, batch_size=5)
    inside = 2**d  # patches inside the region
    per_patch = 2**d  # voxels per patch
    expected_morf = np.array([max(0, inside - i) * per_patch for i in range(k + 1)], dtype=float)
    np.testing.assert_allclose(curve.morf, expected_morf)
    np.testing.assert_allclose(curve.fractions, np.arange(k + 1) / k)
    # Random order: replay the seeded permutation by hand.
    labels = grid_regions(shape, 2)
    in_region = np.bincount(labels.ravel(), weights=mask.numpy().ravel()) > 0
    order = np.random.default_rng(7).permutation(k)
    expected_random = np.array([(inside - in_region[order[:i]].sum()) * per_patch for i in range(k + 1)], float)
    np.testing.assert_allclose(curve.random, expected_random)
    assert curve.aopc_morf == pytest.approx(np.mean(expected_morf[0] - expected_morf))
    assert curve.aopc_morf > curve.aopc_random
    assert curve.patch == (2,) * d


def test_values_and_steps():
    mask = torch.ones(8, 8)
    x = torch.ones(1, 1, 8, 8)
    model = RegionSum(mask)
    rel = torch.rand(8, 8)
    flat = perturbation_curve(model, x, rel, target=0, patch=4, value=1.0)
    assert np.all(flat.morf == 64) and flat.aopc_morf == 0.0
    half = perturbation_curve(model, x, rel, target=0, patch=4, steps=2, value="zero")
    np.testing.assert_allclose(half.fractions, [0, 0.5, 1])
    np.testing.assert_allclose(half.morf, [64, 32, 0])
    blurred = perturbation_curve(model, x, rel, target=0, patch=4, steps=1, value="blur")
    np.testing.assert_allclose(blurred.morf, [64, 64], rtol=1e-5)  # a constant image blurs to itself
    mean = perturbation_curve(model, 2 * x, rel, target=0, patch=4, steps=1, value="mean")
    np.testing.assert_allclose(mean.morf, [128, 128], rtol=1e-6)
    with pytest.raises(ValueError, match="zeros"):
        perturbation_curve(model, x, rel, target=0, value="median")
    assert aopc([3.0, 2.0, 1.0]) == pytest.approx(1.0)


def test_perturbation_progress_and_cancel():
    model = RegionSum(torch.ones(16, 16, 16))
    x = torch.ones(1, 1, 16, 16, 16)
    rel = torch.rand(16, 16, 16)
    seen = []
    perturbation_curve(model, x, rel, target=0, patch=4, steps=8, batch_size=3, progress=Progress(seen.append))
    assert seen == sorted(seen) and seen[-1] == 1.0
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        perturbation_curve(model, x, rel, target=0, patch=4, progress=Progress(None, cancel))
