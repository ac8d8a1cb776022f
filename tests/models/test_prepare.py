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


# -- does the input fit the model? (viewer.models.input_fit) ---------------------------------

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"


def _window_spec(dims=2, spacing=None, size=(16, 16)):
    # the demo cards' normalisation: window centre 0.75, width 1.5 → [0, 1], clipped
    return InputSpec(dims, 1, None if spacing else size, spacing, "RAS",
                     Normalization("window", center=0.75, width=1.5, clip=True), (0.0, 1.0))


def test_a_0_255_png_on_the_2d_demo_model_warns_about_clipping(tmp_path: Path) -> None:
    from PIL import Image

    from viewer.io import load_scan

    pixels = np.zeros((40, 50), np.uint8)
    pixels[:, 18:] = 200  # 32 of 50 columns bright: 64 % of the image above 1.5 → clipped to 1
    pixels[:, :18] = 1  # the rest inside the window (1 / 1.5)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    model = load_model(DEMO / "demo2d.toml")
    x, to_scan = model.prepare(load_scan(tmp_path / "photo.png"))
    assert to_scan.fit.above == pytest.approx(0.64) and to_scan.fit.below == 0.0
    assert len(to_scan.warnings) == 1
    assert to_scan.warnings[0].startswith("64 % of the model input is above the top of its range [0, 1] (clipped to 1)")
    assert to_scan.fit.value_range == pytest.approx((float(x.min()), float(x.max())))


def test_the_demo_cases_fit_the_demo_models() -> None:
    from viewer.io import load_scan

    m3, m2 = load_model(DEMO / "demo3d.toml"), load_model(DEMO / "demo2d.toml")
    for path in sorted(DEMO.glob("case*.nii.gz")):
        if "mask" in path.name:
            continue
        scan = load_scan(path)
        for model in (m2,) if scan.is_2d else (m3, m2):
            _, to_scan = model.prepare(scan)
            assert to_scan.warnings == (), (path.name, to_scan.warnings)
            assert 0.25 < to_scan.fit.below < 0.40 and to_scan.fit.above == 0.0  # background noise below 0


def test_an_all_nan_scan_is_a_clear_error_not_a_prediction() -> None:
    scan = make_scan((10, 12, 8))
    scan.data[...] = np.nan
    with pytest.raises(ModelLoadError, match=r"no finite values: all 960 voxels are NaN or infinite"):
        prepare_scan(scan, _spec())


def test_some_nans_are_a_warning_with_their_count() -> None:
    scan = make_scan((10, 12, 8))
    scan.data[0, 0, :4] = np.nan
    scan.data[1, 1, 0] = np.inf
    x, to_scan = prepare_scan(scan, _spec())
    assert torch.isfinite(x).all()
    assert to_scan.fit.nonfinite == 5
    assert to_scan.warnings == ("5 voxels (0.52 %) are NaN or infinite; the model sees 0 there.",)
    big = make_scan((40, 40, 20))  # 2 of 32000 voxels (0.0063 %): said, but as a note, not a warning
    big.data[3, 3, 3] = big.data[4, 4, 4] = np.nan
    _, few = prepare_scan(big, _spec())
    assert few.warnings == () and few.fit.nonfinite == 2
    assert "2 voxels (0.0063 %) are NaN or infinite; the model sees 0 there." in few.notes


def test_a_constant_image_is_a_warning() -> None:
    scan = make_scan((10, 12, 8))
    scan.data[...] = 3.0
    _, to_scan = prepare_scan(scan, _spec())  # min–max of a constant image: all zeros
    assert to_scan.warnings == ("The model input is constant (every value is 0): the prediction says nothing "
                                "about this image.",)


def test_mostly_below_the_range_and_little_inside_are_warnings() -> None:
    spec = _window_spec(dims=3, size=None, spacing=None)  # window [0, 1.5] → [0, 1]
    scan = make_scan((10, 10, 10))
    scan.data[...] = -1.0  # below the window
    scan.data[:2] = 0.75  # 20 % inside, 80 % below
    _, to_scan = prepare_scan(scan, spec)
    assert to_scan.fit.below == pytest.approx(0.8)
    assert to_scan.warnings == ("80 % of the model input is below the bottom of its range [0, 1] (clipped to 0): "
                                "the model sees an almost empty image.",)
    scan.data[:1] = 9.0  # 10 % above, 10 % inside, 80 % below: still the bottom rule only
    assert len(prepare_scan(scan, spec)[1].warnings) == 1
    scan.data[...] = -1.0
    scan.data[:1] = 9.0
    scan.data[1, :5] = 9.0  # 15 % above (under the top rule) ...
    scan.data[2, :5] = 0.75
    scan.data[3] = 0.75  # ... 15 % inside, 70 % below (under the bottom rule)
    _, little = prepare_scan(scan, spec)
    assert (little.fit.above, little.fit.below) == pytest.approx((0.15, 0.7))
    assert little.warnings == ("Only 15 % of the model input lies inside its range [0, 1] (15 % above, 70 % below): "
                               "the intensities do not match the model's.",)
    scan.data[4:6] = 0.75  # 35 % inside: fits
    assert prepare_scan(scan, spec)[1].warnings == ()


def test_coarse_spacing_against_the_card_is_a_warning() -> None:
    spec = _window_spec(dims=3, spacing=(1.0, 1.0, 1.0))
    fine = make_scan((12, 12, 12), spacing=(1.5, 1.5, 2.0))
    fine.data[...] = np.linspace(0, 1.4, fine.data.size).reshape(fine.shape)
    assert prepare_scan(fine, spec)[1].warnings == ()
    coarse = make_scan((12, 12, 6), spacing=(1.0, 1.0, 5.0))
    coarse.data[...] = np.linspace(0, 1.4, coarse.data.size).reshape(coarse.shape)
    assert prepare_scan(coarse, spec)[1].warnings == (
        "The scan's voxels (1 × 1 × 5 mm) are up to 5.0× coarser than the model's (1 × 1 × 1 mm): the model sees "
        "interpolated detail it was not trained on.",)


def test_an_oblique_scan_is_a_warning_and_a_picture_has_no_geometry_checks() -> None:
    from viewer.models.input_fit import obliquity_degrees

    def rotated(deg: float) -> np.ndarray:
        a = np.radians(deg)
        aff = np.eye(4)
        aff[:3, :3] = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]) * 2.0
        return aff

    assert obliquity_degrees(rotated(30)) == pytest.approx(30.0)
    assert obliquity_degrees(rotated(-10)) == pytest.approx(10.0)
    scan = make_scan((12, 12, 12))
    scan.data[...] = np.linspace(0, 1.4, scan.data.size).reshape(scan.shape)
    spec = _window_spec(dims=3, size=(12, 12, 12))
    scan.affine = rotated(10)
    assert prepare_scan(scan, spec)[1].warnings == ()
    scan.affine = rotated(30)
    assert prepare_scan(scan, spec)[1].warnings == (
        "The scan is oblique: its voxel axes are up to 30° from the patient axes, and the model (orientation RAS) "
        "sees the anatomy tilted by that much.",)
    scan.planar = True  # a picture: its affine says nothing about the patient
    assert prepare_scan(scan, spec)[1].warnings == ()


def test_normalize_is_unchanged_by_the_clip_split() -> None:
    """prepare_scan measures before clipping; the model input must equal normalize()'s."""
    scan = make_scan((14, 12, 10))
    for norm in (Normalization("window", center=100.0, width=30.0), Normalization("minmax", percentiles=(5.0, 95.0)),
                 Normalization("zscore"), Normalization("none")):
        spec = InputSpec(3, 1, None, None, "RAS", norm, None)
        x, _ = prepare_scan(scan, spec)
        assert np.array_equal(x[0, 0].numpy(), normalize(scan.data, norm)), norm.method
    before = scan.data.copy()
    prepare_scan(scan, InputSpec(3, 1, None, None, "RAS", Normalization("window", center=100.0, width=30.0), None))
    assert np.array_equal(scan.data, before)  # the scan is never clipped in place
