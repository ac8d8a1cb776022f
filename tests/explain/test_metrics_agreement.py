"""Agreement between two maps; conservation summary."""

import numpy as np
import pytest
import torch
from scipy import stats

from viewer.explain import Relevance, Target
from viewer.explain.metrics import conservation, spearman, top_k_overlap


def test_spearman_matches_scipy_and_sums_channels():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1, 2, 6, 7, 5))
    b = a.sum(1, keepdims=True) + 0.5 * rng.standard_normal((1, 1, 6, 7, 5))
    expected = stats.spearmanr(a.sum(1).ravel(), b.ravel()).statistic
    assert spearman(a, b) == pytest.approx(expected)
    assert spearman(torch.from_numpy(a), np.exp(a.sum(1)), spatial_ndim=3) == pytest.approx(1.0)
    assert spearman(a[0, 0], -a[0, 0]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="differ"):
        spearman(np.zeros((4, 4)), np.zeros((4, 5)))


def test_top_k_overlap_by_hand():
    a = np.arange(16.0).reshape(4, 4)  # top 4: 12..15
    b = a.copy()
    b[3, 3] = -1  # 15 drops out of b's top 4, 11 comes in
    assert top_k_overlap(a, b, k=4) == pytest.approx(3 / 4)
    assert top_k_overlap(a, b, k=0.25) == pytest.approx(3 / 4)
    assert top_k_overlap(a, a, k=1) == 1.0


def test_conservation_summary():
    rel = torch.full((1, 1, 2, 2), 0.5)
    r = Relevance(rel, torch.tensor([[3.0]]), Target.cls(0), "lrp", explained=3.0, input_sum=2.0, absorbed=0.9)
    c = conservation(r)
    assert (c.explained, c.input_sum, c.absorbed) == (3.0, 2.0, 0.9)
    assert c.error == pytest.approx(0.1)
    assert c.relative_error == pytest.approx(0.1 / 3)
    plain = conservation(Relevance(rel, torch.tensor([[3.0]]), Target.cls(0), "saliency", explained=3.0))
    assert plain.input_sum == 2.0 and plain.absorbed == 0.0 and plain.error == pytest.approx(1.0)
