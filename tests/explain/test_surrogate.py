"""KernelSHAP and LIME over regions: exact cases, determinism, regions."""

import itertools
from math import factorial

import numpy as np
import pytest
import torch

from viewer.explain.regions import grid_regions, make_regions, supervoxels
from viewer.explain.surrogate import kernel_shap, lime


class Linear(torch.nn.Module):
    """f(x) = Σ w·x (one output): additive over any regions."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1, keepdim=True)


class Product(torch.nn.Module):
    """A non-additive game: f = relu(m0 + m1 - 1) * (1 + m2), m_i the mean of quadrant i."""

    def forward(self, x):
        q = [x[..., :4, :4].mean((-2, -1)), x[..., :4, 4:].mean((-2, -1)), x[..., 4:, :4].mean((-2, -1))]
        return (torch.relu(q[0] + q[1] - 1) * (1 + q[2])).reshape(-1, 1)


def region_sums(values: torch.Tensor, labels: np.ndarray) -> np.ndarray:
    return np.bincount(labels.ravel(), weights=values.detach().double().numpy().ravel())


@pytest.mark.parametrize("samples", [254, 64])  # 254 = all coalitions of 8 regions; 64 = sampled
def test_kernel_shap_of_an_additive_model_is_exact(samples):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1, 1, 8, 16, generator=g, dtype=torch.float64)
    x = torch.rand(1, 1, 8, 16, generator=g, dtype=torch.float64) + 0.5
    r = kernel_shap(Linear(w), x, target=0, samples=samples, regions="grid", region_size=4, batch_size=10)
    labels = r.meta["labels"]
    assert labels.max() + 1 == 8
    np.testing.assert_allclose(r.meta["region_scores"], region_sums(w * x, labels), rtol=1e-8)
    assert r.input_sum == pytest.approx(float((w * x).sum()), rel=1e-8)
    # Each region's score is spread evenly over its voxels.
    assert torch.allclose(r.relevance[0, 0, :4, :4], torch.full((4, 4), r.meta["region_scores"][0] / 16, dtype=x.dtype))


def test_kernel_shap_enumeration_gives_exact_shapley_values_of_a_nonlinear_game():
    x = torch.ones(1, 1, 8, 8, dtype=torch.float64) * 0.8
    model = Product()
    r = kernel_shap(model, x, target=0, samples=100, regions="grid", region_size=4)
    labels = r.meta["labels"]  # quadrants 0, 1, 2, 3 in row-major order (3 is a dummy player)

    def value(coalition):
        keep = torch.as_tensor(np.isin(labels, list(coalition)), dtype=x.dtype)
        return float(model(x * keep))

    n = 4
    exact = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            for s in itertools.combinations(others, size):
                weight = factorial(size) * factorial(n - size - 1) / factorial(n)
                exact[i] += weight * (value(s + (i,)) - value(s))
    np.testing.assert_allclose(r.meta["region_scores"], exact, atol=1e-10)
    assert exact[3] == 0 and exact[0] > 0


def test_lime_recovers_a_linear_model():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(1, 1, 16, 16, generator=g, dtype=torch.float64)
    x = torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64)
    r = lime(Linear(w), x, target=0, samples=200, region_size=8, ridge=1e-6, seed=2)
    np.testing.assert_allclose(r.meta["region_scores"], region_sums(w * x, r.meta["labels"]), rtol=1e-4, atol=1e-6)
    assert r.method == "lime" and r.params["kernel_width"] == 1.0


def test_surrogates_are_seeded_and_use_the_reference():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 1, 16, 16, generator=g) + 0.5
    model = Product()
    a = lime(model, x, target=0, samples=40, region_size=4, seed=5)
    b = lime(model, x, target=0, samples=40, region_size=4, seed=5, batch_size=3)
    c = lime(model, x, target=0, samples=40, region_size=4, seed=6)
    assert torch.allclose(a.relevance, b.relevance, atol=1e-6)
    assert not torch.allclose(a.relevance, c.relevance)
    lo = kernel_shap(model, x, target=0, samples=30, region_size=8, baseline="min")
    assert lo.input_sum == pytest.approx(
        float(model(x)[0, 0] - model(torch.full_like(x, float(x.min())))[0, 0]), abs=1e-5
    )


def test_grid_regions_number_boxes_in_order():
    labels = grid_regions((5, 4), 2)
    assert labels.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3], [4, 4, 5, 5]]
    assert grid_regions((4, 4, 4), (2, 4, 4)).max() == 1


@pytest.mark.parametrize("shape", [(40, 40), (20, 20, 20)])
def test_supervoxels_follow_an_intensity_edge(shape):
    img = np.zeros(shape)
    inner = tuple(slice(s // 4, s // 4 + s // 2) for s in shape)
    img[inner] = 1.0
    rng = np.random.default_rng(0)
    img += 0.02 * rng.standard_normal(shape)
    labels = supervoxels(img, n_regions=27, compactness=0.3)
    assert labels.shape == shape and labels.min() == 0
    assert 8 <= labels.max() + 1 <= 40
    inside = np.zeros(shape, bool)
    inside[inner] = True
    purity = [max(inside[labels == k].mean(), 1 - inside[labels == k].mean()) for k in range(labels.max() + 1)]
    assert min(purity) >= 0.9
    assert make_regions(img[None], "supervoxels", n_regions=27, compactness=0.3).max() == labels.max()
    with pytest.raises(ValueError, match="grid"):
        make_regions(img[None], "voronoi")


def test_kernel_shap_over_supervoxels_runs_in_3d():
    x = torch.zeros(1, 1, 12, 12, 12)
    x[..., 3:9, 3:9, 3:9] = 1.0
    w = torch.zeros_like(x)
    w[..., 3:9, 3:9, 3:9] = 1.0
    r = kernel_shap(Linear(w), x, target=0, samples=64, regions="supervoxels", n_regions=27)
    assert r.relevance.shape == x.shape
    assert r.input_sum == pytest.approx(216.0, rel=1e-5)
    assert float(r.relevance[0, 0, 3:9, 3:9, 3:9].sum()) == pytest.approx(216.0, rel=1e-5)
