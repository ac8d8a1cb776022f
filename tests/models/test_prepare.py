"""Scan → model input and back: shapes, normalisation, resampling, per-slice 2D models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from viewer.io.scan import Scan
from viewer.models import ModelLoadError, load_model
from viewer.models.card import InputSpec, Normalization
from viewer.models.prepare import normalize, prepare_scan

from tiny_models import card_toml, make_scan, tiny_net


def _spec(dims=3, size=None, spacing=None, norm=None) -> InputSpec:
    return InputSpec(dims, 1, size, spacing, "RAS", norm or Normalization("minmax", percentiles=(0.0, 100.0)), (0, 1))


def test_normalisations() -> None:
    data = np.arange(101, dtype=np.float32).reshape(101, 1, 1)
    mm = normalize(data, Normalization("minmax", percentiles=(10.0, 90.0), clip=True))
    assert mm[10, 0, 0] == 0.0 and mm[90, 0, 0] == 1.0 and mm[50, 0, 0] == pytest.approx(0.5)
    assert mm.min() == 0.0 and mm.max() == 1.0
    unclipped = normalize(data, Normalization("minmax", percentiles=(10.0, 90.0), clip=False))
    assert unclipped[100, 0, 0] == pytest.approx(1.125)
    win = normalize(data, Normalization("window", center=40.0, width=20.0))
    assert win[30, 0, 0] == 0.0 and win[45, 0, 0] == pytest.approx(0.75) and win[60, 0, 0] == 1.0
    z = normalize(data, Normalization("zscore"))
    assert z.mean() == pytest.approx(0.0, abs=1e-6) and z.std() == pytest.approx(1.0, abs=1e-5)
    fixed = normalize(data, Normalization("zscore", mean=50.0, std=10.0))
    assert fixed[70, 0, 0] == pytest.approx(2.0)
    assert normalize(np.full((3, 3, 3), 7.0, np.float32), Normalization("minmax")).max() == 0.0


def test_same_grid_is_exact_both_ways() -> None:
    scan = make_scan((20, 24, 18))
    x, to_scan = prepare_scan(scan, _spec())
    assert x.shape == (1, 1, 20, 24, 18) and x.dtype == torch.float32
    expected = normalize(scan.data, Normalization("minmax", percentiles=(0.0, 100.0)))
    assert np.array_equal(x[0, 0].numpy(), expected)
    assert np.array_equal(to_scan(x), expected)
    assert to_scan.notes == []


def test_resized_round_trip() -> None:
    scan = make_scan((20, 24, 18))
    x, to_scan = prepare_scan(scan, _spec(size=(16, 16, 16)))
    assert x.shape == (1, 1, 16, 16, 16)
    ones = to_scan(torch.ones_like(x))
    assert ones.shape == scan.shape and ones.dtype == np.float32
    np.testing.assert_allclose(ones, 1.0, atol=1e-6)
    # a smooth scan survives the trip down and back up closely
    i, j, k = np.meshgrid(*[np.linspace(0, 1, n) for n in scan.shape], indexing="ij")
    smooth = Scan((100 + 50 * np.sin(2 * i) * np.cos(j + k)).astype(np.float32), scan.affine, scan.spacing)
    xs, back = prepare_scan(smooth, _spec(size=(16, 16, 16)))
    target = normalize(smooth.data, Normalization("minmax", percentiles=(0.0, 100.0)))
    assert np.abs(back(xs) - target).mean() < 0.01
    assert any("interpolated back" in n for n in back.notes)
    # channels are summed on the way back
    two = torch.cat([xs, 2 * xs], dim=1)
    np.testing.assert_allclose(back(two), 3 * back(xs), rtol=1e-5, atol=1e-6)


def test_spacing_resamples_to_millimetres() -> None:
    scan = make_scan((20, 24, 18), spacing=(2.0, 2.0, 2.0))
    x, to_scan = prepare_scan(scan, _spec(spacing=(4.0, 3.0, 2.0)))
    assert x.shape == (1, 1, 10, 16, 18)
    assert to_scan(torch.zeros_like(x)).shape == (20, 24, 18)


def test_2d_model_on_3d_scan_runs_per_axial_slice() -> None:
    scan = make_scan((20, 24, 6))
    x, to_scan = prepare_scan(scan, _spec(dims=2, size=(10, 12)))
    assert x.shape == (6, 1, 10, 12)
    assert to_scan.slice_axis == 2
    assert any("each of the 6 axial slices (axis 2" in n for n in to_scan.notes)
    # slice k of the input is the k-th axial slice of the normalised scan
    flat, _ = prepare_scan(scan, _spec(dims=2))
    norm = normalize(scan.data, Normalization("minmax", percentiles=(0.0, 100.0)))
    assert np.array_equal(flat[4, 0].numpy(), norm[:, :, 4])
    marked = torch.zeros_like(x)
    marked[4] = 1.0
    back = to_scan(marked)
    assert back.shape == scan.shape
    np.testing.assert_allclose(back[:, :, 4], 1.0, atol=1e-6)
    assert np.abs(back[:, :, [0, 1, 2, 3, 5]]).max() == 0.0


def test_2d_model_on_2d_image() -> None:
    img = make_scan((20, 24, 1))
    x, to_scan = prepare_scan(img, _spec(dims=2, size=(16, 16)))
    assert x.shape == (1, 1, 16, 16) and to_scan.slice_axis is None
    assert to_scan(torch.ones_like(x)).shape == (20, 24, 1)


def test_3d_model_on_2d_image_is_a_clear_error() -> None:
    with pytest.raises(ModelLoadError, match=r"3D model but the image is 2D \(shape 20×24\)"):
        prepare_scan(make_scan((20, 24, 1)), _spec())


def test_multichannel_model_is_a_clear_error() -> None:
    spec = InputSpec(3, 3, None, None, "RAS", Normalization(), (0, 1))
    with pytest.raises(ModelLoadError, match="expects 3 input channels, but a scan has one"):
        prepare_scan(make_scan(), spec)


def test_to_scan_rejects_wrong_shapes() -> None:
    x, to_scan = prepare_scan(make_scan((20, 24, 6)), _spec(dims=2))
    with pytest.raises(ValueError, match="shaped like the model input"):
        to_scan(torch.zeros(2, 1, 20, 24))


def test_loaded_model_prepare_matches_card(tmp_path: Path) -> None:
    torch.save(tiny_net(dims=2).state_dict(), tmp_path / "w.pt")
    (tmp_path / "c.toml").write_text(card_toml("w.pt", dims=2, size=[16, 16]))
    m = load_model(tmp_path / "c.toml")
    scan = make_scan((20, 24, 5))
    x, to_scan = m.prepare(scan)
    assert x.shape == (5, 1, 16, 16) and m.predict(x).shape == (5, 3)
    assert to_scan(x).shape == scan.shape
