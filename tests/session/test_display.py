"""Overlay limits, window presets, view conventions."""

import dataclasses

import numpy as np
import pytest

from viewer.io.scan import Scan
from viewer.session.display import (
    WINDOW_PRESETS,
    OverlaySettings,
    ViewSettings,
    WindowLevel,
    window_for_preset,
    window_presets,
)


def make_scan(modality: str = "CT", window=None) -> Scan:
    data = np.linspace(-1000, 1000, 10 * 10 * 10, dtype=np.float32).reshape(10, 10, 10)
    return Scan(data, np.eye(4), (1, 1, 1), modality=modality, window=window)


def test_overlay_defaults_and_percentile_limit() -> None:
    o = OverlaySettings()
    assert (o.colormap, o.percentile, o.limit_mode, o.sign, o.visible) == ("bwr", 99.5, "percentile", "both", True)
    values = np.concatenate([np.linspace(-2, 1, 1000), [0.0] * 50, [500.0]]).astype(np.float32)
    nonzero = np.abs(values[values != 0])
    assert o.limit_for(values) == pytest.approx(np.percentile(nonzero, 99.5))
    assert o.with_(percentile=50).limit_for(values) == pytest.approx(np.percentile(nonzero, 50))
    assert o.with_(limit_mode="fixed", fixed_limit=3.0).limit_for(values) == 3.0
    assert o.limit_for(np.zeros(5)) == 1.0  # empty map: a neutral limit, not 0


@pytest.mark.parametrize("change", [
    {"colormap": "jet"}, {"limit_mode": "auto"}, {"percentile": 0}, {"percentile": 101}, {"fixed_limit": 0},
    {"opacity": 1.5}, {"threshold": 1.0}, {"sign": "abs"},
])
def test_overlay_rejects_bad_values(change) -> None:
    with pytest.raises(ValueError):
        OverlaySettings().with_(**change)


def test_overlay_dict_round_trip_ignores_unknown_keys() -> None:
    o = OverlaySettings(colormap="coldnhot", opacity=0.3, threshold=0.2, sign="positive", visible=False)
    assert OverlaySettings.from_dict({**o.to_dict(), "future": 1}) == o
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.opacity = 1.0  # type: ignore[misc]


def test_window_presets_by_modality() -> None:
    assert window_presets("CT") == ["CT brain", "CT lung", "CT bone", "CT soft tissue", "CT abdomen", "Default"]
    assert window_presets("MR") == ["MR auto", "Default"]
    assert window_presets("unknown") == ["Default"]
    ct = make_scan("CT", window=(40.0, 400.0))
    assert window_for_preset("CT lung", ct) == WindowLevel(-600, 1500)
    assert WINDOW_PRESETS["CT bone"] == (400.0, 1800.0)
    assert window_for_preset("Default", ct) == WindowLevel(40, 400)  # the file's window
    mr = make_scan("MR")
    lo, hi = np.percentile(mr.data, [1, 99])
    auto = window_for_preset("MR auto", mr)
    assert (auto.low, auto.high) == pytest.approx((lo, hi))
    robust = window_for_preset("Default", mr)  # no file window: robust 0.5-99.5 %
    assert (robust.low, robust.high) == pytest.approx(tuple(np.percentile(mr.data, [0.5, 99.5])))
    with pytest.raises(ValueError, match="Unknown window preset"):
        window_for_preset("CT liver", ct)


def test_window_level_bounds_and_validation() -> None:
    w = WindowLevel(40, 80)
    assert (w.low, w.high) == (0.0, 80.0)
    with pytest.raises(ValueError):
        WindowLevel(0, 0)
    with pytest.raises(ValueError):
        WindowLevel(float("nan"), 10)


def test_view_settings() -> None:
    v = ViewSettings()
    assert v.radiological is True and v.layout == "grid"
    assert v.with_(layout="one-large").layout == "one-large"
    with pytest.raises(ValueError):
        v.with_(layout="mosaic")
