"""Gradient methods against captum, IG completeness, SmoothGrad determinism, cancellation."""

import threading

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, Saliency

from method_nets import RegionModel, densenet, example
from viewer.explain import Cancelled, Progress
from viewer.explain.gradients import (
    input_x_gradient,
    integrated_gradients,
    path_points,
    saliency,
    smoothgrad,
)
from viewer.explain.reference import gaussian_blur


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module", params=[2, 3], ids=["2d", "3d"])
def net_and_input(request):
    d = request.param
    return densenet(d), example(d, size=32 if d == 2 else 16)


def test_saliency_matches_captum(net_and_input):
    model, x = net_and_input
    ours = saliency(model, x, target=1)
    theirs = Saliency(model).attribute(x.clone(), target=1, abs=False)
    assert ours.relevance.shape == x.shape
    assert rel_err(ours.relevance, theirs) < 1e-5
    assert ours.method == "saliency" and ours.absorbed is None
    assert ours.explained == pytest.approx(float(model(x).detach()[0, 1]), rel=1e-9)
    assert ours.input_sum == pytest.approx(float(ours.relevance.sum()), rel=1e-9)
    absolute = saliency(model, x, target=1, abs=True)
    assert torch.allclose(absolute.relevance, theirs.abs(), rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_match_captum(net_and_input, rule):
    model, x = net_and_input
    ours = integrated_gradients(model, x, target=2, steps=12, batch_size=5, rule=rule)
    theirs = IntegratedGradients(model).attribute(
        x.clone(), baselines=0.0, target=2, n_steps=12, method=rule, internal_batch_size=5
    )
    # captum's trapezoid gives every step width 1/n, so its weights sum to (n-1)/n; ours
    # are the textbook trapezoid (widths 1/(n-1)), which keeps completeness.
    scale = 11 / 12 if rule == "riemann_trapezoid" else 1.0
    assert rel_err(ours.relevance * scale, theirs) < 1e-5


def test_input_x_gradient_is_input_times_saliency(net_and_input):
    model, x = net_and_input
    grad = saliency(model, x, target=0).relevance
    assert torch.allclose(input_x_gradient(model, x, target=0).relevance, grad * x, rtol=1e-12, atol=0)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("baseline", ["zeros", "blurred"])
def test_integrated_gradients_completeness_within_one_percent(d, baseline):
    model = densenet(d, torch.float32)
    x = example(d, size=32 if d == 2 else 16, dtype=torch.float32)
    r = integrated_gradients(model, x, target=0, steps=64, batch_size=32, baseline=baseline, sigma=2.0)
    base = gaussian_blur(x, 2.0) if baseline == "blurred" else torch.zeros_like(x)
    with torch.no_grad():
        diff = float(model(x)[0, 0] - model(base)[0, 0])
    assert abs(r.input_sum - diff) <= 0.01 * abs(diff)
    assert abs(r.meta["completeness_error"]) <= 0.01


def test_integrated_gradients_baselines():
    model = RegionModel(2)
    x = model.example()
    lo = integrated_gradients(model, x, target=0, steps=64, baseline="min")
    assert lo.meta["baseline_value"] == pytest.approx(
        float(model(torch.full_like(x, float(x.min()))).detach()[0, 0]), rel=1e-5
    )
    with pytest.raises(ValueError, match="zeros"):
        integrated_gradients(model, x, baseline="median")


def test_path_points_integrate_polynomials():
    for rule in ("gausslegendre", "riemann_trapezoid", "riemann_middle"):
        a, w = path_points(64, rule)
        assert w.sum() == pytest.approx(1.0)
        assert (w * a).sum() == pytest.approx(0.5, abs=1e-6)
    a, w = path_points(3, "gausslegendre")
    assert (w * a**5).sum() == pytest.approx(1 / 6, abs=1e-12)


def test_smoothgrad_is_seeded_and_averages_gradients():
    model = densenet(2)
    x = example(2)
    a = smoothgrad(model, x, target=0, samples=6, noise=0.2, batch_size=4, seed=3)
    b = smoothgrad(model, x, target=0, samples=6, noise=0.2, batch_size=2, seed=3)
    c = smoothgrad(model, x, target=0, samples=6, noise=0.2, batch_size=4, seed=4)
    assert torch.allclose(a.relevance, b.relevance, rtol=1e-10, atol=1e-14)
    assert not torch.allclose(a.relevance, c.relevance)
    assert a.meta["sigma"] == pytest.approx(0.2 * float(x.max() - x.min()))
    # With no noise every sample is the input itself: SmoothGrad is the saliency map.
    zero = smoothgrad(model, x, target=0, samples=3, noise=0.0, batch_size=2)
    assert rel_err(zero.relevance, saliency(model, x, target=0).relevance) < 1e-10


def test_gradient_methods_leave_model_untouched():
    model = densenet(2)
    model.features.conv0.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    x = example(2)
    integrated_gradients(model, x, steps=4)
    smoothgrad(model, x, samples=2)
    saliency(model, x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    assert not model._forward_hooks and not model._backward_hooks
    assert not x.requires_grad


def test_integrated_gradients_cancelled_from_another_thread():
    model = densenet(3, torch.float32)
    x = example(3, size=16, dtype=torch.float32)
    seen = []
    started = threading.Event()
    cancel = threading.Event()

    def report(fraction):
        seen.append(fraction)
        started.set()
        cancel.wait(30)  # the worker carries on only once the other thread has cancelled

    thread = threading.Thread(target=lambda: (started.wait(30), cancel.set()))
    thread.start()
    with pytest.raises(Cancelled):
        integrated_gradients(model, x, steps=200, batch_size=1, progress=Progress(report, cancel))
    thread.join()
    # Cancelled at the first check after the request: no further batch ran.
    assert seen == [0.0]


def test_progress_is_monotone_and_complete():
    model = RegionModel(2)
    seen = []
    integrated_gradients(model, model.example(), steps=10, batch_size=3, progress=Progress(seen.append))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 5
    assert np.all(np.diff(seen) >= 0)
