"""Grad-CAM / Grad-CAM++ against captum's LayerGradCam and MONAI's GradCAM."""

import copy

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam

from method_nets import RegionModel, densenet, example
from viewer.explain.gradcam import cam_weights, default_layer, gradcam, gradcampp, spatial_layers

LAYERS = ["features.transition1.conv", "class_layers.relu"]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module", params=[2, 3], ids=["2d", "3d"])
def net_and_input(request):
    d = request.param
    return densenet(d), example(d, size=32 if d == 2 else 16)


def test_default_layer_is_last_spatial_module(net_and_input):
    model, x = net_and_input
    assert default_layer(model, x) == "class_layers.relu"
    names = [n for n, _ in spatial_layers(model, x)]
    assert names.index("features.transition1.conv") < names.index("class_layers.relu")
    # The global pool's output keeps its spatial dims but has one voxel: no map there.
    assert names[-1] == "class_layers.pool"
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("layer", LAYERS)
def test_gradcam_matches_captum_before_and_after_upsampling(net_and_input, layer):
    model, x = net_and_input
    ours = gradcam(model, x, target=1, layer=layer)
    module = dict(model.named_modules())[layer]
    raw = LayerGradCam(model, module).attribute(x.clone(), target=1, relu_attributions=False)
    assert ours.meta["cam"].shape == raw.shape
    assert rel_err(ours.meta["cam"], raw) < 1e-5
    mode = "bilinear" if x.ndim == 4 else "trilinear"
    up = LayerAttribution.interpolate(raw, tuple(x.shape[2:]), interpolate_mode=mode)
    assert ours.relevance.shape == x.shape
    assert rel_err(ours.relevance, up) < 1e-5
    assert ours.params == {"layer": layer, "relu": False}
    assert ours.input_sum == pytest.approx(float(up.sum()), rel=1e-6)


def test_gradcam_relu_option_clips_the_raw_map(net_and_input):
    model, x = net_and_input
    signed = gradcam(model, x, target=0, layer=LAYERS[0])
    clipped = gradcam(model, x, target=0, layer=LAYERS[0], relu=True)
    assert (signed.meta["cam"] < 0).any()
    assert torch.equal(clipped.meta["cam"], F.relu(signed.meta["cam"]))


def test_gradcam_matches_monai_3d():
    from monai.visualize import GradCAM

    model = densenet(3)
    x = example(3, size=16)
    layer = "features.transition1.conv"
    ours = gradcam(model, x, target=2, layer=layer, relu=True)
    theirs = GradCAM(nn_module=copy.deepcopy(model), target_layers=layer, postprocessing=lambda m: m)(x, class_idx=2)
    assert theirs.shape == x.shape
    assert rel_err(ours.relevance, theirs.detach()) < 1e-5


def test_gradcam_splits_channels_so_their_sum_is_the_map():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(4, 2)).eval()
    x = torch.rand(1, 3, 8, 8)
    r = gradcam(model, x, target=0)
    assert r.params["layer"] == "1"
    assert r.relevance.shape == x.shape
    assert torch.allclose(r.relevance.sum(1, keepdim=True), r.meta["cam"], atol=1e-7)
    assert torch.equal(r.relevance[:, 0], r.relevance[:, 2])


def test_gradcampp_weights_follow_the_formula():
    g = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]]]])
    a = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    alpha = g**2 / torch.where(2 * g**2 + 10 * g**3 != 0, 2 * g**2 + 10 * g**3, torch.ones_like(g))
    expected = (alpha * F.relu(g)).sum()
    assert float(cam_weights(a, g, plus=True).squeeze()) == pytest.approx(float(expected))
    assert float(cam_weights(a, g, plus=False).squeeze()) == pytest.approx(float(g.mean()))


def test_gradcampp_runs_on_3d_and_differs_from_gradcam(net_and_input):
    model, x = net_and_input
    plus = gradcampp(model, x, target=0, layer=LAYERS[0])
    plain = gradcam(model, x, target=0, layer=LAYERS[0])
    assert plus.method == "gradcampp" and plus.relevance.shape == x.shape
    assert not torch.allclose(plus.relevance, plain.relevance)


def test_gradcam_leaves_model_untouched_and_backward_stops_at_layer():
    model = RegionModel(2)
    model.conv1.weight.requires_grad_(True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = model.example()
    r = gradcam(model, x, target=0, layer="act2")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())
    assert r.explained == pytest.approx(float(model(x).detach()[0, 0]), rel=1e-6)


def test_gradcam_errors_name_the_problem():
    model = RegionModel(2)
    x = model.example()
    with pytest.raises(ValueError, match="Unknown layer 'nope'.*conv1"):
        gradcam(model, x, layer="nope")
    with pytest.raises(ValueError, match="spatial"):
        gradcam(model, x, layer="head")
