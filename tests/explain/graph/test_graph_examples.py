"""Reference examples of a feature: ranking by the channel's relevance, crops around its
strongest relevance, and the on-disk cache that makes the second look free."""

from __future__ import annotations

import pytest
import torch

from tests.explain.graph import nets
from viewer.explain.graph import GraphError, concept_relevance, feature_examples
from viewer.explain.graph import examples as examples_module


def _cases(n: int = 5) -> dict[str, torch.Tensor]:
    torch.manual_seed(4)
    out = {}
    for i in range(n):
        x = torch.rand(1, 1, 16, 16, dtype=torch.float64) * 0.2
        r, c = 3 + 2 * i, 12 - 2 * i
        x[..., r - 1:r + 2, c - 1:c + 2] += 1.0  # a bright spot, somewhere else in each case
        out[f"case{i}"] = x
    return out


def test_ranking_locations_and_crops(tmp_path):
    model, cases = nets.vgg_like(), _cases()
    found = feature_examples(model, "3", 2, cases, k=3, target=1, patch=6, cache_dir=tmp_path)
    scores = {cid: concept_relevance(model, x, "3", [2], target=1).relevance[0] for cid, x in cases.items()}
    best = sorted(scores, key=lambda c: -scores[c])[:3]
    assert [e.case for e in found] == best and [e.rank for e in found] == [0, 1, 2]
    for e in found:
        assert e.score == pytest.approx(scores[e.case], rel=1e-12)
        assert e.image.shape == (6, 6) and e.heatmap.shape == (6, 6)
        assert all(b - a == 6 and a <= c < b for (a, b), c in zip(e.box, e.center))
        x = cases[e.case]
        torch.testing.assert_close(torch.as_tensor(e.image), x[0, 0, e.box[0][0]:e.box[0][1], e.box[1][0]:e.box[1][1]])
        heat = concept_relevance(model, x, "3", [2], target=1).maps[0, 0, 0]
        crop = heat[e.box[0][0]:e.box[0][1], e.box[1][0]:e.box[1][1]]
        torch.testing.assert_close(torch.as_tensor(e.heatmap), crop)
        # the centre is where the channel's relevance at the layer is largest, on the input grid
        r = concept_relevance(model, x, "3", [2], target=1)
        assert e.center is not None and e.slice_index is None and e.row == 0
        assert float(r.maps[0].abs().sum()) > 0


def test_the_second_look_runs_no_pass(tmp_path, monkeypatch):
    model, cases = nets.vgg_like(), _cases()
    first = feature_examples(model, "3", 2, cases, k=2, target=1, cache_dir=tmp_path)

    def no_pass(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(examples_module, "ConditionalPass", no_pass)
    monkeypatch.setattr(examples_module, "concept_relevance", no_pass)
    again = feature_examples(model, "3", 2, cases, k=2, target=1, cache_dir=tmp_path)
    assert [(e.case, e.score, e.box) for e in again] == [(e.case, e.score, e.box) for e in first]
    assert all((a.heatmap == b.heatmap).all() for a, b in zip(again, first))
    # another channel of the same layer: ranked from the cached tables, no pass either
    other = feature_examples(model, "3", 5, cases, k=2, target=1, cache_dir=tmp_path, heatmaps=False)
    assert len(other) == 2 and other[0].heatmap is None
    # changed weights are a different model: the tables are not reused
    with torch.no_grad():
        model[0].weight.mul_(1.5)
    with pytest.raises(AssertionError, match="cache should have answered"):
        feature_examples(model, "3", 2, cases, k=2, target=1, cache_dir=tmp_path)


def test_rows_of_a_2d_model_on_a_volume_and_bad_requests(tmp_path):
    model = nets.vgg_like()
    torch.manual_seed(5)
    volume = torch.rand(4, 1, 16, 16, dtype=torch.float64) * 0.1  # four slices of one case
    volume[2, 0, 5:8, 5:8] += 1.0
    r = concept_relevance(model, volume, "6", range(10), target=1)
    channel = max(range(10), key=lambda c: r.relevance[c])
    found = feature_examples(model, "6", channel, [("vol", volume)], k=1, target=1, cache_dir=tmp_path)
    assert found[0].score == pytest.approx(r.relevance[channel], rel=1e-12) and found[0].score > 0
    assert found[0].row == found[0].slice_index == 2  # the slice with the bright spot
    with pytest.raises(GraphError, match="has 10 channels"):
        feature_examples(model, "6", 10, [("vol", volume)], cache_dir=tmp_path)
    with pytest.raises(GraphError, match="empty"):
        feature_examples(model, "6", 0, [], cache_dir=tmp_path)
    with pytest.raises(GraphError, match="unique"):
        feature_examples(model, "6", 0, [("a", volume), ("a", volume)], cache_dir=tmp_path)
