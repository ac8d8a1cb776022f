"""Requests are the cache keys: equal settings must give equal, hashable requests."""

import numpy as np
import pytest

from viewer.explain.target import Target
from viewer.session.requests import ExplainRequest, normalise_target


def make(**kw):
    base = dict(scan_token="scan-1", model_token="model-2", method="lrp", params={"preset": "epsilon-plus"})
    return ExplainRequest.make(**{**base, **kw})


def test_equal_settings_give_equal_hashable_requests() -> None:
    a = make(params={"preset": "epsilon-gamma-box", "gamma": 0.25, "epsilon": 1e-6})
    b = make(params={"epsilon": 1e-6, "gamma": 0.25, "preset": "epsilon-gamma-box"})
    assert a == b and hash(a) == hash(b)
    assert a.params_dict == {"epsilon": 1e-6, "gamma": 0.25, "preset": "epsilon-gamma-box"}
    assert a.preset == "epsilon-gamma-box"
    assert len({a, b, make(), make(target=1), make(device="cpu", precision="bfloat16")}) == 4
    assert make(params={"patch": [8, 8, 4]}) == make(params={"patch": (8, 8, 4)})  # lists are frozen
    assert make(params={"x": np.float64(2.0)}).params_dict["x"] == 2.0


def test_targets_are_normalised() -> None:
    assert normalise_target(None) is None
    assert normalise_target(np.int64(2)) == 2
    assert normalise_target([1, 0]) == (1, 0)
    assert normalise_target({"kind": "contrast", "index": 1, "other": 2}) == (1, 2)
    assert normalise_target({"kind": "region", "index": 1}) == ("region", 1)
    t = Target.region(1, np.ones((2, 2, 2), bool))
    assert normalise_target(t) is t
    for bad in [(1, 1), (1, 2, 3), True, {"kind": "pixel", "index": 0}]:
        with pytest.raises(ValueError):
            normalise_target(bad)


def test_mask_token_only_matters_for_region_targets() -> None:
    assert make(target=1, mask_token="mask-3") == make(target=1)
    assert make(target=("region", 1), mask_token="mask-3") != make(target=("region", 1), mask_token="mask-4")
    with pytest.raises(ValueError):
        make(device="tpu")
    with pytest.raises(ValueError):
        make(precision="int8")
