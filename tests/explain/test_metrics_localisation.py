"""Mask metrics: same numbers as Quantus in 2D, hand-checked cases in 3D."""

import numpy as np
import pytest
import quantus
import torch

from viewer.explain.metrics import pointing_game, relevance_mass_accuracy, relevance_rank_accuracy, top_k_iou


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    n = 6
    x = rng.random((n, 1, 16, 16)).astype(np.float32)
    a = rng.standard_normal((n, 1, 16, 16)).astype(np.float32)
    s = np.zeros((n, 1, 16, 16), dtype=np.float32)
    for i in range(n):
        r, c = rng.integers(0, 10, size=2)
        s[i, 0, r:r + 6, c:c + 5] = 1
    a[0, 0, 3, 3] = 10.0  # make a few maxima fall inside / outside the masks
    s[0, 0, 2:5, 2:5] = 1
    return x, a, s


def quantus_scores(metric, x, a, s):
    return np.asarray(metric(model=None, x_batch=x, y_batch=np.zeros(len(x), int), a_batch=a, s_batch=s))


def test_relevance_mass_accuracy_matches_quantus(batch):
    x, a, s = batch
    metric = quantus.RelevanceMassAccuracy(abs=False, normalise=False, disable_warnings=True)
    # Ours counts positive relevance only; Quantus sums what it is given, so give it the positive part.
    expected = quantus_scores(metric, x, np.clip(a, 0, None), s)
    ours = [relevance_mass_accuracy(a[i], s[i, 0]) for i in range(len(a))]
    np.testing.assert_allclose(ours, expected, rtol=1e-6)
    # A signed map (with channels, as torch) gives the same answer.
    assert relevance_mass_accuracy(torch.from_numpy(a[1:2]), s[1, 0]) == pytest.approx(expected[1], rel=1e-6)


def test_relevance_rank_accuracy_matches_quantus(batch):
    x, a, s = batch
    metric = quantus.RelevanceRankAccuracy(abs=False, normalise=False, disable_warnings=True)
    expected = quantus_scores(metric, x, a, s)
    ours = [relevance_rank_accuracy(a[i], s[i, 0]) for i in range(len(a))]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_pointing_game_matches_quantus(batch):
    x, a, s = batch
    metric = quantus.PointingGame(abs=False, normalise=False, disable_warnings=True)
    expected = quantus_scores(metric, x, a, s).astype(bool)
    ours = [pointing_game(a[i], s[i, 0]) for i in range(len(a))]
    assert ours == expected.tolist()
    assert True in ours and False in ours


def test_3d_cases_known_by_hand():
    r = np.zeros((1, 2, 8, 8, 8))
    mask = np.zeros((8, 8, 8), bool)
    mask[2:4, 2:4, 2:4] = True  # 8 voxels
    r[0, 0, 2:4, 2:4, 2:4] = 1.0  # 8 mass inside (channel 0)
    r[0, 1, 2, 2, 2] = 2.0  # channels are summed: 3 at one inside voxel
    r[0, 0, 6, 6, 6] = 4.0  # outside, and the maximum
    r[0, 1, 7, 7, 7] = -5.0  # negative: ignored by mass accuracy
    assert relevance_mass_accuracy(r, mask) == pytest.approx(10 / 14)
    # Top 8 voxels: the outside 4, then 7 of the 8 inside voxels (the ones at 1) and the one at 3.
    assert relevance_rank_accuracy(r, mask) == pytest.approx(7 / 8)
    assert pointing_game(r, mask) is False
    assert pointing_game(r, mask, tolerance=np.sqrt(3) * 3) is True  # (6,6,6) is 3 steps diagonal from (3,3,3)
    assert pointing_game(r, mask, tolerance=np.sqrt(3) * 3 - 0.01) is False
    # Top-2 voxels: (6,6,6) and (2,2,2): intersection 1, union 2 + 8 - 1 = 9.
    assert top_k_iou(r, mask, k=2) == pytest.approx(1 / 9)
    assert top_k_iou(r, mask) == pytest.approx(7 / 9)
    assert top_k_iou(r, mask, k=8 / 512) == pytest.approx(7 / 9)


def test_mask_metrics_refuse_mismatched_or_empty_masks():
    r = np.ones((1, 1, 4, 4, 4))
    with pytest.raises(ValueError, match="does not match"):
        relevance_mass_accuracy(r, np.ones((4, 4, 5)))
    with pytest.raises(ValueError, match="empty"):
        pointing_game(r, np.zeros((4, 4, 4)))
    assert relevance_mass_accuracy(-r, np.ones((4, 4, 4))) == 0.0
