"""load_model on cards, weight formats, TorchScript, pickles and the allow-list."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from viewer.models import LoadedModel, ModelLoadError, load_model
from viewer.models.errors import UntrustedModelError

from tiny_models import card_toml, make_scan, tiny_net


def _same_output(loaded: LoadedModel, net: torch.nn.Module, dims: int = 3) -> None:
    x = torch.rand((2, 1) + (16,) * dims)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net(x), atol=1e-6)


def test_toml_card_with_safetensors(tiny_card: Path) -> None:
    m = load_model(tiny_card)
    assert isinstance(m, LoadedModel)
    assert m.labels == ["none", "left", "right"]
    assert (m.task, m.spatial_dims, m.input_range) == ("classification", 3, (0.0, 1.0))
    assert (m.gradcam_layer, m.preset, m.structured, m.name, m.kind) == (
        "features.3.conv", "epsilon-plus", True, "tiny", "card")
    assert m.unavailable_reason is None and m.warnings == []
    assert not m.module.training
    _same_output(m, tiny_net())
    assert "tiny" in m.describe() and "16×16×16" in m.describe()


def test_json_card_with_pt_state_dict(tmp_path: Path) -> None:
    net = tiny_net(seed=1)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    raw = tomllib.loads(card_toml("w.pt"))
    raw["comment"] = "unknown field"
    (tmp_path / "card.json").write_text(json.dumps(raw))
    m = load_model(tmp_path / "card.json")
    _same_output(m, net)
    assert m.warnings == ["card.json: unknown field 'comment' ignored"]


def test_checkpoint_wrapper_and_dataparallel_prefix(tmp_path: Path) -> None:
    net = tiny_net(seed=2)
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "ckpt.pth")
    (tmp_path / "c.toml").write_text(card_toml("ckpt.pth"))
    _same_output(load_model(tmp_path / "c.toml"), net)


def test_mismatched_weights_name_keys_and_shapes(tmp_path: Path) -> None:
    state = tiny_net().state_dict()
    state.pop("classifier.bias")
    state["extra.weight"] = torch.zeros(2)
    state["features.0.conv.weight"] = torch.zeros(3, 1, 3, 3, 3)
    save_file(state, str(tmp_path / "bad.safetensors"))
    (tmp_path / "c.toml").write_text(card_toml("bad.safetensors"))
    with pytest.raises(ModelLoadError) as err:
        load_model(tmp_path / "c.toml")
    msg = str(err.value)
    assert "missing in the file (1): classifier.bias" in msg
    assert "not in the model (1): extra.weight" in msg
    assert "features.0.conv.weight: file (3, 1, 3, 3, 3) vs model (2, 1, 3, 3, 3)" in msg


def test_mismatch_lists_at_most_five_keys(tmp_path: Path) -> None:
    save_file({f"k{i}": torch.zeros(1) for i in range(8)}, str(tmp_path / "w.safetensors"))
    (tmp_path / "c.toml").write_text(card_toml("w.safetensors"))
    with pytest.raises(ModelLoadError, match=r"not in the model \(8\): k0, k1, k2, k3, k4, … \(3 more\)"):
        load_model(tmp_path / "c.toml")


def test_missing_weights_file(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(card_toml("nowhere.safetensors"))
    with pytest.raises(ModelLoadError, match=r"Weights file .*nowhere.safetensors named by c.toml does not exist"):
        load_model(tmp_path / "c.toml")


def test_unknown_architecture_names_import_path(tmp_path: Path) -> None:
    save_file(tiny_net().state_dict(), str(tmp_path / "w.safetensors"))
    text = card_toml("w.safetensors").replace(
        "viewer.models.architectures.LesionSideNet", "monai.networks.nets.NoSuchNet")
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ModelLoadError, match=r"'monai.networks.nets' has no 'NoSuchNet'"):
        load_model(tmp_path / "c.toml")
    (tmp_path / "c.toml").write_text(text.replace("monai.networks.nets.NoSuchNet", "torch.nosuchpkg.Net"))
    with pytest.raises(ModelLoadError, match=r"cannot import 'torch.nosuchpkg'.*install the package"):
        load_model(tmp_path / "c.toml")


def test_wrong_architecture_args(tmp_path: Path) -> None:
    save_file(tiny_net().state_dict(), str(tmp_path / "w.safetensors"))
    (tmp_path / "c.toml").write_text(card_toml("w.safetensors", args={"depth": 3}))
    with pytest.raises(ModelLoadError, match=r"Cannot build architecture 'viewer.models.architectures.LesionSideNet'.*depth"):
        load_model(tmp_path / "c.toml")


def test_architecture_outside_allow_list_needs_trust(tmp_path: Path, user_package: str) -> None:
    torch.manual_seed(0)
    import usernets

    net = usernets.UserNet(width=4)
    save_file(net.state_dict(), str(tmp_path / "u.safetensors"))
    text = card_toml("u.safetensors").replace("viewer.models.architectures.LesionSideNet", "usernets.UserNet")
    text = text.split("[architecture_args]")[0] + "[architecture_args]\nwidth = 4\n\n[input]\nspatial_dims = 3\n"
    text = text.replace('gradcam_layer = "features.3.conv"', 'gradcam_layer = "conv"')
    (tmp_path / "u.toml").write_text(text)
    with pytest.raises(UntrustedModelError) as err:
        load_model(tmp_path / "u.toml")
    assert "would run code from the package 'usernets'" in str(err.value)
    assert "trust=True" in str(err.value) and "--trust" in str(err.value)
    m = load_model(tmp_path / "u.toml", trust=True)
    x = torch.rand(1, 1, 8, 8, 8)
    assert torch.allclose(m.module(x), net(x))


def test_non_module_architecture_refused(tmp_path: Path) -> None:
    save_file(tiny_net().state_dict(), str(tmp_path / "w.safetensors"))
    text = card_toml("w.safetensors").replace("viewer.models.architectures.LesionSideNet", "collections.OrderedDict")
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(UntrustedModelError, match="package 'collections'"):
        load_model(tmp_path / "c.toml")
    with pytest.raises(ModelLoadError, match="built a OrderedDict, not a torch.nn.Module"):
        load_model(tmp_path / "c.toml", trust=True)


def test_pickled_full_module_refused_then_trusted(tmp_path: Path, user_package: str) -> None:
    import usernets

    torch.manual_seed(0)
    net = usernets.UserNet(width=3).eval()
    torch.save(net, tmp_path / "full.pt")
    with pytest.raises(UntrustedModelError) as err:
        load_model(tmp_path / "full.pt")
    assert "would run code from the file full.pt" in str(err.value)
    assert "usernets.UserNet" in str(err.value)
    m = load_model(tmp_path / "full.pt", trust=True)
    assert m.kind == "pickle" and m.structured
    assert m.spatial_dims == 3 and m.labels == ["class 0", "class 1"]
    assert m.gradcam_layer == "conv"
    assert any("pickled full module" in w for w in m.warnings)
    x = torch.rand(1, 1, 6, 6, 6)
    assert torch.allclose(m.module(x), net(x))


def test_plain_weights_without_card_refused(tmp_path: Path) -> None:
    save_file(tiny_net().state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(tiny_net().state_dict(), tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        with pytest.raises(ModelLoadError, match="write a model card"):
            load_model(tmp_path / name)


def test_torchscript_card_and_bare_file(tmp_path: Path) -> None:
    net = tiny_net(seed=3)
    traced = torch.jit.trace(net, torch.rand(1, 1, 16, 16, 16))
    traced.save(str(tmp_path / "net.ts.pt"))
    with pytest.raises(UntrustedModelError, match="TorchScript files contain compiled code"):
        load_model(tmp_path / "net.ts.pt")
    bare = load_model(tmp_path / "net.ts.pt", trust=True)
    assert bare.kind == "torchscript" and bare.structured is False
    assert "LRP and Grad-CAM need the Python module structure" in bare.unavailable_reason
    assert bare.gradcam_layer is None
    assert bare.labels == ["class 0", "class 1", "class 2"] and bare.spatial_dims == 3
    assert any("has no model card" in w for w in bare.warnings)

    text = card_toml("net.ts.pt").replace('architecture = "viewer.models.architectures.LesionSideNet"\n', "")
    text = text.split("[architecture_args]")[0] + "[input]" + text.split("[input]")[1]
    (tmp_path / "ts.toml").write_text(text)
    with pytest.raises(UntrustedModelError, match="TorchScript model net.ts.pt"):
        load_model(tmp_path / "ts.toml")
    m = load_model(tmp_path / "ts.toml", trust=True)
    assert m.structured is False and m.labels == ["none", "left", "right"] and m.warnings == []

    scan = make_scan((16, 16, 16))
    x, _ = m.prepare(scan)
    x.requires_grad_(True)
    m.module(x)[0, 1].backward()  # gradient methods work on TorchScript
    ref = x.detach().clone().requires_grad_(True)
    net(ref)[0, 1].backward()
    assert x.grad is not None and torch.allclose(x.grad, ref.grad, atol=1e-6)
    assert float(x.grad.abs().sum()) > 0


def test_gradcam_layer_must_exist(tmp_path: Path) -> None:
    save_file(tiny_net().state_dict(), str(tmp_path / "w.safetensors"))
    text = card_toml("w.safetensors").replace('"features.3.conv"', '"features.9"')
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ModelLoadError, match=r"gradcam_layer 'features.9' is not a layer.*features.3.conv"):
        load_model(tmp_path / "c.toml")


def test_missing_path_and_bad_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nothing.toml")
    with pytest.raises(ModelLoadError, match="not a MONAI bundle"):
        load_model(tmp_path)


def test_predict_softmax_batched(tiny_card: Path) -> None:
    m = load_model(tiny_card)
    x = torch.rand(40, 1, 16, 16, 16)
    p = m.predict(x)
    assert p.shape == (40, 3)
    assert torch.allclose(p.sum(1), torch.ones(40), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(p[35], torch.softmax(m.module(x[35:36]), 1)[0], atol=1e-5)
