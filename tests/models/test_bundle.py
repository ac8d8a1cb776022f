"""MONAI bundles built in the test: network from network_def, labels/input spec from metadata."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from viewer.models import ModelLoadError, load_model
from viewer.models.errors import UntrustedModelError

pytest.importorskip("monai")
from monai.networks.nets import Classifier  # noqa: E402

NET_ARGS = {"in_shape": [1, 16, 16, 16], "classes": 3, "channels": [4, 8], "strides": [2, 2], "num_res_units": 1}
HAS_YAML = importlib.util.find_spec("yaml") is not None


def _metadata() -> dict:
    return {
        "name": "Tiny MONAI classifier",
        "version": "0.1.0",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "num_channels": 1, "spatial_shape": [16, 16, 16]}},
            "outputs": {"pred": {"type": "probabilities", "format": "classes", "num_channels": 3,
                                 "channel_def": {"0": "benign", "1": "malignant", "2": "unclear"}}},
        },
    }


def _inference(classes: object = "@num_classes") -> dict:
    return {
        "num_classes": 3,
        "input_shape": [1, 16, 16, 16],
        "network_def": {"_target_": "Classifier", "in_shape": "@input_shape", "classes": classes,
                        "channels": [4, 8], "strides": [2, 2], "num_res_units": 1},
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image"},
            {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -100, "a_max": 300,
             "b_min": 0.0, "b_max": 1.0, "clip": True},
        ]},
    }


def _bundle(root: Path, inference: dict | None = None, yaml_text: str | None = None) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    net = Classifier(**NET_ARGS).eval()
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "configs" / "metadata.json").write_text(json.dumps(_metadata()))
    if yaml_text is not None:
        (root / "configs" / "inference.yaml").write_text(yaml_text)
    else:
        (root / "configs" / "inference.json").write_text(json.dumps(inference or _inference()))
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return root, net


def test_bundle_with_refs_loads_and_reads_metadata(tmp_path: Path) -> None:
    folder, net = _bundle(tmp_path / "tiny_bundle")
    m = load_model(folder)
    assert m.kind == "bundle" and m.structured
    assert m.name == "Tiny MONAI classifier"
    assert m.labels == ["benign", "malignant", "unclear"] and m.task == "classification"
    assert m.spatial_dims == 3 and m.card.input.size == (16, 16, 16)
    norm = m.card.input.normalize
    assert (norm.method, norm.center, norm.width, norm.clip) == ("window", 100.0, 400.0, True)
    assert m.input_range == (0.0, 1.0)
    assert m.gradcam_layer is not None  # chosen automatically: the last convolution
    x = torch.rand(2, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.allclose(m.module(x), net(x), atol=1e-6)


def test_expressions_need_trust(tmp_path: Path) -> None:
    folder, net = _bundle(tmp_path / "b", _inference(classes="$1 + 2"))
    with pytest.raises(UntrustedModelError, match=r"would run code from the bundle's config \(its network_def uses \$ expressions"):
        load_model(folder)
    m = load_model(folder, trust=True)
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.allclose(m.module(x), net(x), atol=1e-6)


def test_bundle_mismatched_weights_and_missing_parts(tmp_path: Path) -> None:
    inference = _inference()
    inference["network_def"]["channels"] = [4, 16]
    folder, _ = _bundle(tmp_path / "b", inference)
    with pytest.raises(ModelLoadError, match=r"do not fit the architecture .*shape mismatches"):
        load_model(folder)
    (folder / "models" / "model.pt").unlink()
    with pytest.raises(ModelLoadError, match="has no models/model.pt"):
        load_model(folder)


def test_bundle_bad_reference(tmp_path: Path) -> None:
    inference = _inference()
    inference["network_def"]["in_shape"] = "@no_such_key"
    folder, _ = _bundle(tmp_path / "b", inference)
    with pytest.raises(ModelLoadError, match="refers to '@no_such_key', which it does not define"):
        load_model(folder)


def test_bundle_target_outside_allow_list(tmp_path: Path) -> None:
    inference = _inference()
    inference["network_def"]["_target_"] = "collections.OrderedDict"
    folder, _ = _bundle(tmp_path / "b", inference)
    with pytest.raises(UntrustedModelError, match="package 'collections'"):
        load_model(folder)


@pytest.mark.skipif(HAS_YAML, reason="checks the message shown when pyyaml is absent")
def test_yaml_bundle_without_pyyaml_says_what_to_install(tmp_path: Path) -> None:
    folder, _ = _bundle(tmp_path / "b", yaml_text="network_def:\n  _target_: Classifier\n")
    with pytest.raises(ModelLoadError, match=r"install pyyaml \(pip install pyyaml\)"):
        load_model(folder)


@pytest.mark.skipif(not HAS_YAML, reason="pyyaml not installed")
def test_yaml_bundle_loads(tmp_path: Path) -> None:
    import yaml

    folder, net = _bundle(tmp_path / "b", yaml_text=yaml.safe_dump(_inference()))
    m = load_model(folder)
    assert m.labels == ["benign", "malignant", "unclear"]
