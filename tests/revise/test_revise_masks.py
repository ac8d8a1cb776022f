"""Targeted updates change exactly what they say: frozen slices stay bitwise equal.

Models: the shipped shortcut demo (LesionSideNet 2D), torchvision's ResNet-18 (norms
written ``self.bn1(self.conv1(x))`` inside ``forward``) and MONAI's UNet (transposed
convolutions, whose output channels are the weight's second dimension).
"""

from __future__ import annotations

import copy

import pytest
import torch

from viewer.models import load_model
from viewer.models.demo import DEMO
from viewer.revise.channels import channel_map
from viewer.revise.errors import ReviseError
from viewer.revise.masked import full_plan, masked_plan
from viewer.revise.selection import ChannelMask, check_fraction, random_fraction, random_like, top_fraction
from viewer.revise.train import TrainConfig, fine_tune


@pytest.fixture(scope="module")
def shortcut():
    return load_model(DEMO / "demo2d_shortcut.toml").module


def _data(n: int = 24, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 48, 56, generator=gen)
    return x, torch.randint(0, 3, (n,), generator=gen)


def test_channel_map_of_the_demo_model(shortcut) -> None:
    cmap = channel_map(shortcut, torch.zeros(1, 1, 48, 56))
    assert cmap.names == ["features.0.conv", "features.1.conv", "features.2.conv", "features.3.conv"]
    assert cmap.output_layer == "classifier" and cmap.total_channels == 8 + 16 + 32 + 32
    first = cmap["features.0.conv"]
    assert first.norm == "features.0.norm" and first.consumer == "features.1.conv"
    assert dict(first.params) == {"features.0.conv.weight": 0, "features.0.norm.weight": 0, "features.0.norm.bias": 0}
    assert first.macs == 48 * 56 * 8 * 9  # full resolution, 1 input channel, 3×3 kernel
    assert cmap["features.3.conv"].consumer == "classifier"  # 32 channels × 2 side bins flattened
    assert cmap.macs["classifier"] == 64 * 3
    with pytest.raises(ReviseError, match="valid layers: features.0.conv, features.1.conv"):
        channel_map(shortcut, torch.zeros(1, 1, 48, 56), ["features.0.norm"])


def test_norms_found_from_the_data_flow_and_transposed_channels() -> None:
    tv = pytest.importorskip("torchvision.models")
    resnet = tv.resnet18(num_classes=4).eval()
    cmap = channel_map(resnet, torch.zeros(1, 3, 32, 32))
    assert cmap["conv1"].norm == "bn1" and cmap["layer1.0.conv2"].norm == "layer1.0.bn2"
    assert cmap["layer2.0.downsample.0"].norm == "layer2.0.downsample.1"
    assert cmap.output_layer == "fc" and "fc" not in cmap.names
    nets = pytest.importorskip("monai.networks.nets")
    unet = nets.UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8, 16), strides=(2, 2),
                     num_res_units=0).eval()
    cmap = channel_map(unet, torch.zeros(1, 1, 16, 16))
    transposed = [layer for layer in cmap.layers if isinstance(unet.get_submodule(layer.name),
                                                                torch.nn.ConvTranspose2d)]
    assert transposed and all(dict(t.params)[f"{t.name}.weight"] == 1 for t in transposed)


@pytest.mark.parametrize("weight_decay", [0.0, 0.5])
def test_frozen_slices_are_bitwise_equal_after_adamw(shortcut, weight_decay) -> None:
    model = copy.deepcopy(shortcut)
    x, y = _data()
    cmap = channel_map(model, x)
    mask = random_fraction(cmap, 0.25, seed=3)
    plan = masked_plan(model, cmap, mask)
    allowed = plan.trainable_mask(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    outcome = fine_tune(model, x, y, plan, TrainConfig(epochs=3, lr=0.05, batch=8, weight_decay=weight_decay))
    after = model.state_dict()
    changed_total = 0
    for name, may_change in allowed.items():
        assert torch.equal(before[name][~may_change], after[name][~may_change]), name
        changed_total += int((before[name] != after[name]).sum())
    for name in before:  # running statistics are not parameters a revision may touch
        if "running" in name or "num_batches" in name:
            assert torch.equal(before[name], after[name]), name
    assert not any(allowed[n].any() for n in ("classifier.weight", "classifier.bias"))
    assert changed_total > 0.5 * outcome.parameters_updated  # (entries of channels that never fire keep their value)
    assert outcome.parameters_updated == sum(int(m.sum()) for m in allowed.values())
    # Adam keeps two moments per trained value (float32) and a step count per tensor
    n_tensors = len(plan.whole) + len(plan.slices)
    assert outcome.optimizer_state_bytes == 8 * outcome.parameters_updated + 4 * n_tensors
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in shortcut.named_parameters()]


def test_masking_gradients_alone_would_not_freeze(shortcut) -> None:
    """Why the frozen part is kept out of the optimiser: AdamW's decay moves it."""
    model = copy.deepcopy(shortcut)
    x, y = _data()
    cmap = channel_map(model, x)
    allowed = masked_plan(model, cmap, random_fraction(cmap, 0.25, seed=3)).trainable_mask(model)
    before = {k: v.clone() for k, v in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.5)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        for name, p in model.named_parameters():
            p.grad[~allowed[name]] = 0
        opt.step()
    moved = sum(int((before[n][~allowed[n]] != p[~allowed[n]]).sum()) for n, p in model.named_parameters())
    assert moved > 1000


def test_preserve_plan_freezes_the_selected_channels_and_trains_the_rest(shortcut) -> None:
    model = copy.deepcopy(shortcut)
    x, y = _data()
    cmap = channel_map(model, x)
    keep = random_fraction(cmap, 0.1, seed=1)
    plan = masked_plan(model, cmap, keep.complement(), train_others=True)
    allowed = plan.trainable_mask(model)
    assert allowed["classifier.weight"].all()
    w = "features.2.conv.weight"
    assert torch.equal(allowed[w].flatten(1).all(1), ~keep.selected["features.2.conv"])
    before = model.state_dict()[w].clone()
    fine_tune(model, x, y, plan, TrainConfig(epochs=1, lr=0.05, batch=8, weight_decay=0.5))
    frozen = keep.selected["features.2.conv"]
    assert torch.equal(model.state_dict()[w][frozen], before[frozen])
    assert not torch.equal(model.state_dict()[w][~frozen], before[~frozen])


def test_resuming_gives_the_same_model_as_one_run(shortcut) -> None:
    x, y = _data(20)
    cmap = channel_map(shortcut, x)
    mask = random_fraction(cmap, 0.25, seed=2)
    config = TrainConfig(epochs=3, lr=0.02, batch=8, seed=5)
    one = copy.deepcopy(shortcut)
    fine_tune(one, x, y, masked_plan(one, cmap, mask), config)
    saved = {}
    two = copy.deepcopy(shortcut)

    def stop_after_two(epoch, checkpoint):
        saved[epoch] = checkpoint
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fine_tune(two, x, y, masked_plan(two, cmap, mask), config, on_epoch=stop_after_two)
    three = copy.deepcopy(shortcut)
    fine_tune(three, x, y, masked_plan(three, cmap, mask), config, resume=saved[2])
    for (name, a), (_, b) in zip(one.state_dict().items(), three.state_dict().items()):
        assert torch.equal(a, b), name


def test_full_plan_trains_everything(shortcut) -> None:
    model = copy.deepcopy(shortcut)
    x, y = _data()
    plan = full_plan(model)
    out = fine_tune(model, x, y, plan, TrainConfig(epochs=1, lr=0.01, batch=8))
    assert out.parameters_updated == out.parameters_total == sum(p.numel() for p in model.parameters())


def test_selections() -> None:
    scores = {"a": torch.tensor([0.1, 5.0, 0.2, 0.0, 0.0, 0.0, 0.0, 3.0]),
              "b": torch.arange(16, dtype=torch.float64), "c": -torch.arange(32.0)}
    mask = top_fraction(scores, 0.25)  # 14 of 56: 2 + 4 + 8
    assert mask.counts() == {"a": 2, "b": 4, "c": 8} and mask.count == 14
    assert mask.indices()["a"] == [1, 7] and mask.indices()["b"] == [15, 14, 13, 12][::-1]
    assert mask.indices()["c"] == list(range(24, 32))  # |score| ranks, the sign does not
    tiny = top_fraction(scores, 0.01)
    assert tiny.count == 1 and tiny.counts()["c"] == 1  # the largest remainder: the largest layer
    control = random_like(mask, seed=7)
    assert control.counts() == mask.counts() and control.indices() != mask.indices()
    assert random_like(mask, seed=7).indices() == control.indices()
    assert top_fraction(scores, 1.0).count == 56
    assert ChannelMask(mask.selected).complement().count == 56 - 14


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), "a lot"])
def test_fraction_outside_0_1_is_an_error(bad) -> None:
    with pytest.raises(ReviseError, match=r"in \(0, 1\]"):
        check_fraction(bad)


def test_plan_checks_and_taylor_needs_labels(shortcut) -> None:
    from viewer.revise.revise import CaseSet, RevisePlan, select_channels

    with pytest.raises(ReviseError, match="ranking target"):
        RevisePlan(target="the marker").check()
    with pytest.raises(ReviseError, match="Unknown mode"):
        RevisePlan(mode="sharpen").check()
    x, y = _data(6)
    unlabelled = CaseSet("ref", x, torch.full((6,), -1))
    cmap = channel_map(shortcut, x)
    with pytest.raises(ReviseError, match="needs a label"):
        select_channels(shortcut, cmap, RevisePlan(selection="taylor"), unlabelled)
    labelled = CaseSet("ref", x, y)
    mask = select_channels(shortcut, cmap, RevisePlan(selection="taylor", fraction=0.1), labelled)
    assert mask.counts() == {"features.0.conv": 1, "features.1.conv": 2, "features.2.conv": 3, "features.3.conv": 3}


def test_pruned_channels_output_exactly_zero_and_macs_count_removal(shortcut) -> None:
    from viewer.revise.prune import macs, prune
    from viewer.revise.scores import magnitude_scores

    model = copy.deepcopy(shortcut)
    x, _ = _data(4)
    cmap = channel_map(model, x)
    mask = top_fraction(magnitude_scores(model, cmap), 0.25)
    zeroed = prune(model, cmap, mask)
    assert zeroed == sum((model.get_submodule(n).weight[0].numel() + 2) * c for n, c in mask.counts().items())
    seen = {}
    hooks = [model.get_submodule(f"features.{i}.act").register_forward_hook(
        lambda m, a, out, i=i: seen.__setitem__(i, out.detach())) for i in range(4)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    for i in range(4):
        chans = mask.selected[f"features.{i}.conv"]
        assert float(seen[i][:, chans].abs().sum()) == 0.0 and float(seen[i][:, ~chans].abs().sum()) > 0
    # MACs: each conv loses its pruned outputs and the inputs its producer lost
    keep = {n: 1 - float(m.double().mean()) for n, m in mask.selected.items()}
    names = ["features.0.conv", "features.1.conv", "features.2.conv", "features.3.conv"]
    expected = cmap.macs["features.0.conv"] * keep[names[0]]
    for prev, name in zip(names, names[1:]):
        expected += cmap.macs[name] * keep[name] * keep[prev]
    expected += cmap.macs["classifier"] * keep[names[3]]
    assert macs(cmap, mask) == int(round(expected)) and macs(cmap) == sum(cmap.macs.values())
