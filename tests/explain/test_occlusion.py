"""Occlusion against captum's Occlusion; windows, baselines, batching, cancellation."""

import threading

import pytest
import torch
from captum.attr import Occlusion

from method_nets import densenet, example
from viewer.explain import Cancelled, Progress
from viewer.explain.occlusion import occlusion, window_starts


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize(
    "d,size,patch,stride,baseline",
    [(2, 32, 8, 4, 0.0), (2, 30, 7, 5, -0.5), (3, 16, 8, 4, 0.0), (3, 14, (4, 6, 5), (3, 4, 5), 0.25)],
)
def test_occlusion_matches_captum(d, size, patch, stride, baseline):
    model = densenet(d)
    x = example(d, size=size)
    ours = occlusion(model, x, target=1, patch=patch, stride=stride, baseline=baseline, batch_size=7)
    p = (patch,) * d if isinstance(patch, int) else patch
    s = (stride,) * d if isinstance(stride, int) else stride
    theirs = Occlusion(model).attribute(
        x.clone(), sliding_window_shapes=(1, *p), strides=(1, *s), baselines=baseline, target=1,
        perturbations_per_eval=5,
    )
    assert ours.relevance.shape == x.shape
    assert rel_err(ours.relevance, theirs) < 1e-5


def test_window_starts_reach_the_far_edge():
    assert window_starts(32, 8, 4) == [0, 4, 8, 12, 16, 20, 24]
    assert window_starts(30, 7, 5) == [0, 5, 10, 15, 20, 25]  # last one truncated at 30
    assert window_starts(4, 8, 4) == [0]


def test_occlusion_of_a_linear_model_is_exact():
    # f(x) = Σ w·x: dropping a window loses Σ_window w·x; with non-overlapping windows
    # each voxel gets its window's total.
    w = torch.arange(16.0).reshape(1, 1, 4, 4)

    class Linear(torch.nn.Module):
        def forward(self, x):
            return (x * w).flatten(1).sum(1, keepdim=True)

    x = torch.ones(1, 1, 4, 4)
    r = occlusion(Linear(), x, target=0, patch=2, stride=2)
    block = torch.tensor([[10.0, 18.0], [42.0, 50.0]])  # 0+1+4+5, 2+3+6+7, ...
    assert torch.equal(r.relevance[0, 0], block.repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert r.meta["windows"] == 4
    assert r.input_sum == pytest.approx(4 * float(w.sum()))


def test_occlusion_rejects_stride_larger_than_patch():
    model = densenet(2)
    with pytest.raises(ValueError, match="stride"):
        occlusion(model, example(2), patch=4, stride=5)


def test_occlusion_cancelled_from_another_thread_and_progress_monotone():
    model = densenet(3, torch.float32)
    x = example(3, size=16, dtype=torch.float32)
    seen = []
    occlusion(model, x, patch=8, stride=4, batch_size=4, progress=Progress(seen.append))
    assert seen == sorted(seen) and seen[0] == 0.0 and seen[-1] == 1.0

    cancel = threading.Event()
    started = threading.Event()
    calls = []

    def report(fraction):
        calls.append(fraction)
        started.set()
        cancel.wait(30)  # the worker carries on only once the other thread has cancelled

    thread = threading.Thread(target=lambda: (started.wait(30), cancel.set()))
    thread.start()
    with pytest.raises(Cancelled):
        occlusion(model, x, patch=2, stride=1, batch_size=2, progress=Progress(report, cancel))
    thread.join()
    assert calls == [0.0]  # stopped before the second of 1688 batches
