"""The demo architecture: shapes, and that its two pooling bins really are the two hemispheres."""

from __future__ import annotations

import pytest
import torch

from viewer.models.architectures import LesionSideNet


@pytest.mark.parametrize(("dims", "pooling", "stride"), [(3, "max", 2), (3, "avg", 1), (2, "avg", 1), (2, "max", 2)])
def test_output_shape(dims: int, pooling: str, stride: int) -> None:
    net = LesionSideNet(dims, channels=(2, 4, 4, 4), pooling=pooling, stem_stride=stride).eval()
    x = torch.rand((3, 1) + (32,) * dims)
    assert net(x).shape == (3, 3)
    assert isinstance(net.features[0].conv, torch.nn.Conv3d if dims == 3 else torch.nn.Conv2d)
    assert hasattr(net.features[0], "pool") == (stride == 1)


def test_bins_split_axis_zero() -> None:
    """Features from the half with small axis-0 indices (patient left in RAS) land in bin 0."""
    net = LesionSideNet(2, channels=(2, 2, 2, 2), pooling="max").eval()
    captured = {}
    net.pool.register_forward_hook(lambda m, i, o: captured.setdefault("out", o))
    feats = torch.zeros(1, 2, 6, 7)
    feats[0, :, 1, 3] = 5.0  # left half of axis 0
    net.pool(feats)
    out = captured["out"]
    assert out.shape == (1, 2, 2, 1)
    assert float(out[0, 0, 0, 0]) == 5.0 and float(out[0, 0, 1, 0]) == 0.0


@pytest.mark.parametrize("dims", [2, 3])
def test_fewer_downsamplings_keep_a_finer_grid(dims: int) -> None:
    """Two of four blocks halve the grid: the last feature map is 1/4 of the input per axis."""
    net = LesionSideNet(dims, channels=(2, 2, 2, 2), downsamplings=2).eval()
    x = torch.rand((1, 1) + (32,) * dims)
    assert net.features(x).shape == (1, 2) + (8,) * dims
    assert [hasattr(b, "pool") for b in net.features] == [True, True, False, False]
    assert LesionSideNet(dims, channels=(2, 2, 2, 2)).features(x).shape == (1, 2) + (4,) * dims  # default: 3


def test_norm_none_is_bias_free_and_positively_homogeneous() -> None:
    """Without BatchNorm the blocks hold no bias, so the features scale with the input."""
    torch.manual_seed(0)
    net = LesionSideNet(3, channels=(2, 3, 3, 4), downsamplings=2, norm="none", pooling="max").eval()
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules())
    assert all(m.bias is None for m in net.features.modules() if isinstance(m, torch.nn.Conv3d))
    x = torch.rand(2, 1, 16, 16, 16)
    torch.testing.assert_close(net.features(3.0 * x), 3.0 * net.features(x))


@pytest.mark.parametrize("dims", [2, 3])
def test_last_kernel_one_mixes_channels_per_location(dims: int) -> None:
    """With last_kernel=1 the last block sees one location of the previous features: a
    change far from a feature's location leaves it untouched, unlike with a 3-kernel."""
    torch.manual_seed(0)
    net1 = LesionSideNet(dims, channels=(4, 4, 4, 4), downsamplings=0, last_kernel=1).eval()
    net3 = LesionSideNet(dims, channels=(4, 4, 4, 4), downsamplings=0).eval()
    assert net1.features[3].conv.kernel_size == (1,) * dims and net3.features[3].conv.kernel_size == (3,) * dims
    x = torch.rand((1, 1) + (12,) * dims)
    y = x.clone()
    y[:, :, 0] += 5.0  # the first plane: 3 blocks of 3-kernels reach 3 voxels away, 4 reach 4
    probe = (slice(None), slice(None), 4)
    assert torch.equal(net1.features(x)[probe], net1.features(y)[probe])
    assert not torch.equal(net3.features(x)[probe], net3.features(y)[probe])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="spatial_dims must be 2 or 3"):
        LesionSideNet(1)
    with pytest.raises(ValueError, match="pooling must be 'avg' or 'max'"):
        LesionSideNet(3, pooling="median")
    with pytest.raises(ValueError, match="norm must be 'batch' or 'none'"):
        LesionSideNet(3, norm="layer")
    with pytest.raises(ValueError, match="downsamplings must be between 0 and 3"):
        LesionSideNet(3, downsamplings=4)
    with pytest.raises(ValueError, match="last_kernel must be a positive odd number"):
        LesionSideNet(3, last_kernel=2)
