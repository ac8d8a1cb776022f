"""The method registry: contents, parameter validation, TorchScript, model safety, preview."""

import threading

import pytest
import torch

from method_nets import RegionModel
from viewer.explain import METHODS, Cancelled, Progress, Relevance, explain
from viewer.explain.preview import preview_then_refine
from viewer.explain.registry import MethodUnavailableError, validate

NAMES = ["lrp", "gradcam", "gradcampp", "saliency", "input_x_gradient", "smoothgrad", "integrated_gradients",
         "occlusion", "kernel_shap", "lime"]
QUICK = {"smoothgrad": {"samples": 2}, "integrated_gradients": {"steps": 4}, "occlusion": {"patch": 8, "stride": 8},
         "kernel_shap": {"samples": 16}, "lime": {"samples": 16}}


def call(model, x, name, **params):
    try:
        return explain(model, x, name, target=0, **{**QUICK.get(name, {}), **params})
    except (ImportError, NotImplementedError) as exc:
        if name == "lrp":
            pytest.skip(f"LRP engine not yet present ({exc})")
        raise


def test_registry_lists_every_method_with_consistent_specs():
    assert list(METHODS) == NAMES
    for name, info in METHODS.items():
        assert info.name == name and info.label and info.description
        for spec in info.params:
            if spec.default is not None:
                assert validate(name, {spec.name: spec.default}) == {spec.name: spec.default}
    assert {n for n, m in METHODS.items() if m.needs_structure} == {"lrp", "gradcam", "gradcampp"}
    assert {n for n, m in METHODS.items() if m.multi_pass} == {
        "smoothgrad", "integrated_gradients", "occlusion", "kernel_shap", "lime"}
    assert METHODS["integrated_gradients"].param("baseline").choices == ("zeros", "min", "blurred")
    assert METHODS["lrp"].param("preset") is not None


def test_lrp_entry_exposes_the_presets():
    try:
        from viewer.explain.lrp import list_presets

        presets = [p.name for p in list_presets()]
    except (ImportError, NotImplementedError):
        pytest.skip("LRP engine not yet present")
    spec = METHODS["lrp"].param("preset")
    assert spec.choices == tuple(presets) and spec.default in presets


@pytest.mark.parametrize("name", NAMES)
def test_explain_returns_one_relevance_and_leaves_the_model_alone(name):
    model = RegionModel(2)
    model.conv2.weight.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = model.example()
    x_before = x.clone()
    r = call(model, x, name)
    assert isinstance(r, Relevance) and r.method == name
    assert r.relevance.shape == x.shape and r.relevance.dtype == x.dtype and not r.relevance.requires_grad
    assert r.input_sum == pytest.approx(float(r.relevance.sum()), rel=1e-5)
    assert r.explained == pytest.approx(float(model(x).detach()[0, 0]), rel=1e-5)
    assert r.target.index == 0
    assert torch.equal(x, x_before) and not x.requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in model.modules())
    if name != "lrp":
        assert r.absorbed is None and r.preset is None
        assert set(r.params) == {p.name for p in METHODS[name].params}


@pytest.mark.parametrize("name", NAMES)
def test_a_batch_of_slices_is_explained_slice_by_slice(name):
    model = RegionModel(2)
    x = torch.cat([model.example(seed) for seed in (1, 2, 3)])
    whole = call(model, x, name)
    assert whole.relevance.shape == x.shape
    parts = [call(model, x[i:i + 1], name) for i in range(3)]
    for i, part in enumerate(parts):
        assert torch.allclose(whole.relevance[i:i + 1], part.relevance, rtol=1e-4, atol=1e-4 * float(part.relevance.abs().max()))
    assert whole.explained == pytest.approx(sum(p.explained for p in parts), rel=1e-5)
    assert whole.input_sum == pytest.approx(sum(p.input_sum for p in parts), rel=1e-4)


def test_running_statistics_of_a_training_mode_model_survive():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(2, 2)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(1, 1, 8, 8)
    for name in ("gradcam", "saliency", "occlusion"):
        explain(model, x, name, target=0, **QUICK.get(name, {}))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training


def test_bad_method_or_parameter_names_the_valid_choices():
    model = RegionModel(2)
    x = model.example()
    with pytest.raises(ValueError, match="choose one of: lrp, gradcam"):
        explain(model, x, "deeplift")
    with pytest.raises(ValueError, match="valid parameters: steps, batch_size, rule, baseline, sigma"):
        explain(model, x, "integrated_gradients", n_steps=4)
    with pytest.raises(ValueError, match="must be one of zeros, min, blurred"):
        explain(model, x, "integrated_gradients", baseline="noise")
    with pytest.raises(ValueError, match="at least 1"):
        explain(model, x, "smoothgrad", samples=0)
    with pytest.raises(ValueError, match="of type int"):
        explain(model, x, "occlusion", patch="big")
    with pytest.raises(ValueError, match="True or False"):
        explain(model, x, "saliency", abs="yes")
    assert explain(model, x, "occlusion", patch=(8, 16), stride=(8, 16)).params["patch"] == (8, 16)


def test_torchscript_models_refuse_structural_methods_only():
    model = RegionModel(2)
    x = model.example()
    scripted = torch.jit.trace(model, x)
    for name in ("gradcam", "gradcampp", "lrp"):
        with pytest.raises(MethodUnavailableError, match="needs the model's layers; this TorchScript file hides them"):
            explain(scripted, x, name)
    r = explain(scripted, x, "saliency", target=0)
    assert torch.allclose(r.relevance, explain(model, x, "saliency", target=0).relevance)


def test_models_returning_tuples_are_explained_by_their_first_output():
    model = RegionModel(2)

    class Pair(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            return self.inner(x), x.mean()

    x = model.example()
    for name in ("gradcam", "saliency", "occlusion"):
        a = call(Pair(), x, name)
        b = call(model, x, name)
        assert torch.allclose(a.relevance, b.relevance) and a.explained == pytest.approx(b.explained)


def test_preview_then_refine_reports_gradcam_then_lrp():
    model = RegionModel(2)
    x = model.example()
    got, fractions = [], []
    try:
        coarse, fine = preview_then_refine(model, x, None, preset="epsilon-plus", on_result=got.append,
                                           progress=Progress(fractions.append))
    except (ImportError, NotImplementedError) as exc:
        pytest.skip(f"LRP engine not yet present ({exc})")
    assert [r.method for r in got] == ["gradcam", "lrp"] and got == [coarse, fine]
    assert fine.target == coarse.target and coarse.target.index == int(model(x).argmax())
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        preview_then_refine(model, x, 0, on_result=got.append, progress=Progress(None, cancel))
