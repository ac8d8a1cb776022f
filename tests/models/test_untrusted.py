"""Hostile model files: nothing a file names runs without trust.

Every payload is built here, in the test, and would leave a marker file behind if it
ran. Each case asserts the documented error, that no marker exists, and — where a
payload can be proven live — that it does run once the user gives trust, so the
refusal is what stops it. Positive controls (the demo cards, a MONAI bundle of a
``monai.networks.nets`` class, torchvision cards) still load without trust.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from viewer.models import ModelLoadError, load_model
from viewer.models.errors import UntrustedModelError

from tiny_models import card_toml, tiny_net

REPO = Path(__file__).resolve().parents[2]


class _Payload:
    """Unpickling this object creates ``marker`` (an ``open(marker, "w")`` call)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _card(tmp_path: Path, architecture: str, args: dict, weights: str = "w.safetensors") -> Path:
    save_file(tiny_net().state_dict(), str(tmp_path / "w.safetensors"))
    text = card_toml(weights).replace("viewer.models.architectures.LesionSideNet", architecture)
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in args.items())
    text = text.split("[architecture_args]")[0] + "[architecture_args]\n" + lines + "\n\n[input]" + text.split("[input]")[1]
    path = tmp_path / "hostile.toml"
    path.write_text(text)
    return path


def _hubconf(tmp_path: Path, marker: Path) -> Path:
    repo = tmp_path / "hubrepo"
    repo.mkdir()
    (repo / "hubconf.py").write_text(textwrap.dedent(f"""\
        open({str(marker)!r}, "w").close()
        import torch

        def net(**kwargs):
            return torch.nn.Linear(2, 2)
        """))
    return repo


def _pickle_payload(tmp_path: Path, marker: Path) -> Path:
    path = tmp_path / "payload.pt"
    torch.save({"x": _Payload(marker)}, path)
    return path


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "MARKER_code_ran"


# -- card architectures that are functions -------------------------------------------------

def _function_cases(tmp_path: Path, marker: Path) -> list[tuple[str, dict]]:
    return [
        ("torch.hub.load", {"repo_or_dir": str(_hubconf(tmp_path, marker)), "source": "local",
                            "trust_repo": True, "model": "net"}),
        ("torch.load", {"f": str(_pickle_payload(tmp_path, marker)), "weights_only": False}),
        ("torch.jit.load", {"f": str(tmp_path / "x.ts")}),
        ("torch.utils.cpp_extension.load_inline", {"name": "x", "cpp_sources": "int f() { return 0; }"}),
        ("monai.bundle.scripts.run", {"config_file": str(tmp_path / "x.json")}),
        ("monai.utils.module.instantiate", {"__path": "subprocess.Popen", "args": ["touch", str(marker)]}),
        ("monai.networks.nets.get_efficientnet_image_size", {"model_name": "efficientnet-b0"}),
        ("torchvision.models.get_model", {"name": "resnet18"}),
        ("torch.nn.functional.relu", {}),
        ("subprocess.Popen", {"args": ["touch", str(marker)]}),
        ("os.system", {"command": f"touch {marker}"}),
    ]


def test_card_functions_refused_without_trust(tmp_path: Path, marker: Path) -> None:
    for architecture, args in _function_cases(tmp_path, marker):
        with pytest.raises(UntrustedModelError) as err:
            load_model(_card(tmp_path, architecture, args))
        msg = str(err.value)
        assert architecture in msg and "trust" in msg, architecture
        assert not marker.exists(), f"{architecture} ran code"


def test_hub_payload_is_live_with_trust(tmp_path: Path, marker: Path) -> None:
    """The same torch.hub card runs its hubconf once trusted: the refusal is what stops it."""
    architecture, args = _function_cases(tmp_path, marker)[0]
    path = _card(tmp_path, architecture, args)
    with pytest.raises(UntrustedModelError, match="it is a function"):
        load_model(path)
    assert not marker.exists()
    with pytest.raises(ModelLoadError):  # builds a Linear that the LesionSideNet weights do not fit
        load_model(path, trust=True)
    assert marker.exists()


@pytest.mark.parametrize("architecture, why", [
    ("torch.jit.ScriptModule", "defined in"),            # an nn.Module, but from torch.jit
    ("torch.ao.nn.quantized.Linear", "defined in"),      # an nn.Module outside torch.nn
    ("monai.bundle.ConfigParser", "not a torch.nn.Module"),
    ("torch.nn.parameter.Parameter", "not a torch.nn.Module"),
    ("collections.OrderedDict", "package 'collections'"),
])
def test_classes_outside_allowed_namespaces_refused(tmp_path: Path, architecture: str, why: str) -> None:
    with pytest.raises(UntrustedModelError, match=why):
        load_model(_card(tmp_path, architecture, {}))


def test_download_and_file_arguments_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"pretrained=True would fetch weights"):
        load_model(_card(tmp_path, "monai.networks.nets.DenseNet121",
                         {"spatial_dims": 3, "in_channels": 1, "out_channels": 3, "pretrained": True}))
    with pytest.raises(UntrustedModelError, match="names a file or URL"):
        load_model(_card(tmp_path, "monai.networks.nets.DenseNet121",
                         {"spatial_dims": 3, "in_channels": 1, "out_channels": 3, "act": "https://example.org/x"}))
    with pytest.raises(UntrustedModelError, match="names a file or URL"):
        load_model(_card(tmp_path, "monai.networks.nets.DenseNet121",
                         {"spatial_dims": 3, "in_channels": 1, "out_channels": 3, "norm": ["../../evil.py"]}))


# -- bundles ------------------------------------------------------------------------------

def _bundle(root: Path, network_def: dict, extra: dict | None = None, yaml_text: str | None = None) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    meta = {"name": "b", "network_data_format": {
        "inputs": {"image": {"num_channels": 1, "spatial_shape": [16, 16, 16]}},
        "outputs": {"pred": {"num_channels": 3, "channel_def": {"0": "a", "1": "b", "2": "c"}}}}}
    (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    if yaml_text is not None:
        (root / "configs" / "inference.yaml").write_text(yaml_text)
    else:
        (root / "configs" / "inference.json").write_text(json.dumps({"network_def": network_def, **(extra or {})}))
    torch.save(tiny_net().state_dict(), root / "models" / "model.pt")
    return root


def test_bundle_targets_refused_top_level_and_nested(tmp_path: Path, marker: Path) -> None:
    hub = {"_target_": "torch.hub.load", "repo_or_dir": str(_hubconf(tmp_path, marker)), "source": "local",
           "trust_repo": True, "model": "net"}
    popen = {"_target_": "monai.utils.module.instantiate", "__path": "subprocess.Popen",
             "args": ["touch", str(marker)]}
    cases = {
        "top": hub,
        "popen": popen,
        "nested": {"_target_": "monai.networks.nets.Classifier", "in_shape": [1, 16, 16, 16], "classes": 3,
                   "channels": [4, 8], "strides": [2, 2], "act": popen},
        "by-ref": {"_target_": "monai.networks.nets.Classifier", "in_shape": [1, 16, 16, 16], "classes": 3,
                   "channels": [4, 8], "strides": [2, 2], "act": "@evil"},
    }
    for name, network_def in cases.items():
        folder = _bundle(tmp_path / name, network_def, {"evil": popen})
        with pytest.raises(UntrustedModelError, match="_target_"):
            load_model(folder)
        assert not marker.exists(), name


def test_bundle_macros_expressions_and_yaml_tags(tmp_path: Path, marker: Path) -> None:
    macro = _bundle(tmp_path / "macro", {"_target_": "monai.networks.nets.Classifier",
                                         "in_shape": "%configs/other.json#shape", "classes": 3,
                                         "channels": [4, 8], "strides": [2, 2]})
    with pytest.raises(UntrustedModelError, match="% macros"):
        load_model(macro)
    expr = _bundle(tmp_path / "expr", {"_target_": "monai.networks.nets.Classifier",
                                       "in_shape": f"$__import__('os').system('touch {marker}')", "classes": 3,
                                       "channels": [4, 8], "strides": [2, 2]})
    with pytest.raises(UntrustedModelError, match=r"\$ expressions"):
        load_model(expr)
    tagged = _bundle(tmp_path / "yaml", {}, yaml_text=(
        f"network_def: !!python/object/apply:os.system ['touch {marker}']\n"))
    with pytest.raises(ModelLoadError, match="Cannot read configs/inference.yaml"):
        load_model(tagged)
    assert not marker.exists()


def test_bundle_torchscript_needs_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _bundle(tmp_path / "ts", {"_target_": "monai.networks.nets.Classifier"})
    (folder / "models" / "model.pt").unlink()
    torch.jit.trace(tiny_net(), torch.rand(1, 1, 16, 16, 16)).save(str(folder / "models" / "model.ts"))
    calls = []
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: calls.append(a))
    with pytest.raises(UntrustedModelError, match="TorchScript files contain compiled code"):
        load_model(folder)
    assert calls == []  # refused before the archive is opened by torch


# -- TorchScript, pickles, broken and misplaced weights ------------------------------------

def test_torchscript_never_opened_without_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.jit.trace(tiny_net(), torch.rand(1, 1, 16, 16, 16)).save(str(tmp_path / "net.pt"))
    calls = []
    real = torch.jit.load
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: calls.append(a) or real(*a, **k))
    with pytest.raises(UntrustedModelError, match="can read and write files"):
        load_model(tmp_path / "net.pt")
    assert calls == []
    assert load_model(tmp_path / "net.pt", trust=True).kind == "torchscript"
    assert len(calls) == 1


def test_pickle_payload_refused_and_live_with_trust(tmp_path: Path, marker: Path) -> None:
    path = _pickle_payload(tmp_path, marker)
    with pytest.raises(UntrustedModelError, match=r"pickled object naming .*open"):
        load_model(path)
    assert not marker.exists()
    with pytest.raises(ModelLoadError, match="plain weights"):
        load_model(path, trust=True)  # unpickling ran the payload; the result is no module
    assert marker.exists()


@pytest.mark.parametrize("content", [b"garbage" * 100, b"\x80\x02garbage", b"PK\x03\x04broken zip", b""])
def test_broken_weight_files_are_not_called_pickles(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "broken.pt").write_bytes(content)
    with pytest.raises(ModelLoadError) as err:
        load_model(tmp_path / "broken.pt")
    assert not isinstance(err.value, UntrustedModelError)
    assert "not a PyTorch weights file, or it is damaged" in str(err.value)
    assert "trust" not in str(err.value)
    (tmp_path / "c.toml").write_text(card_toml("broken.pt"))
    with pytest.raises(ModelLoadError, match="not a PyTorch weights file") as err:
        load_model(tmp_path / "c.toml")
    assert not isinstance(err.value, UntrustedModelError)


def test_weights_outside_the_card_folder(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    save_file(tiny_net().state_dict(), str(store / "shared.safetensors"))
    cards = tmp_path / "a" / "b"
    cards.mkdir(parents=True)
    (cards / "ok.toml").write_text(card_toml("../../store/shared.safetensors"))
    assert load_model(cards / "ok.toml").kind == "card"  # shared model stores are normal
    for weights in ("/etc/passwd", "../../store", "/dev/null"):
        (cards / "bad.toml").write_text(card_toml(weights))
        with pytest.raises(ModelLoadError) as err:
            load_model(cards / "bad.toml")
        assert not isinstance(err.value, UntrustedModelError), weights
        assert "weights" in str(err.value).lower() or "state dict" in str(err.value)


def test_non_finite_weights_name_the_tensor(tmp_path: Path) -> None:
    state = tiny_net().state_dict()
    state["features.2.conv.weight"][0, 0, 0, 0, 0] = float("nan")
    state["classifier.bias"][1] = float("inf")
    save_file(state, str(tmp_path / "w.safetensors"))
    (tmp_path / "c.toml").write_text(card_toml("w.safetensors"))
    with pytest.raises(ModelLoadError, match=r"'features.2.conv.weight' holds 1 NaN/infinite value\(s\) of 432"):
        load_model(tmp_path / "c.toml")


@pytest.mark.parametrize("metadata", [
    {"network_data_format": {"inputs": {"image": 5}}},
    {"network_data_format": {"inputs": {"image": {"spatial_shape": [16, 16, 16], "num_channels": "x"}}}},
    {"network_data_format": {"inputs": {"image": {"spatial_shape": [16, 16, 16]}},
                             "outputs": {"pred": {"num_channels": [], "channel_def": 3}}}},
])
def test_malformed_bundles_raise_model_load_error(tmp_path: Path, metadata: dict) -> None:
    folder = _bundle(tmp_path / "b", {"_target_": "monai.networks.nets.Classifier", "in_shape": [1, 16, 16, 16],
                                      "classes": 3, "channels": [4, 8], "strides": [2, 2]})
    (folder / "configs" / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelLoadError):
        load_model(folder)


def test_fifo_model_path_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "model.pt")
    with pytest.raises(ModelLoadError, match="not a regular file"):
        load_model(tmp_path / "model.pt")
    (tmp_path / "c.toml").write_text(card_toml("model.pt"))
    with pytest.raises(ModelLoadError, match="not a regular file"):
        load_model(tmp_path / "c.toml")


# -- packages from the working directory ---------------------------------------------------

def _shadow_package(root: Path, name: str, marker: Path) -> None:
    pkg = root / name
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (pkg / "models" / "__init__.py").write_text("import torch\nclass Net(torch.nn.Linear):\n    pass\n")


def test_uninstalled_allow_listed_name_from_cwd_refused(tmp_path: Path, marker: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _shadow_package(tmp_path, "timm", marker)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "timm", raising=False)
    with pytest.raises(ModelLoadError, match="'timm' is not installed|not from its installed copy"):
        load_model(_card(tmp_path, "timm.models.Net", {"in_features": 2, "out_features": 2}))
    assert not marker.exists()
    assert "timm" not in sys.modules or "site-packages" in str(getattr(sys.modules["timm"], "__file__", ""))


def test_installed_package_shadowed_by_cwd_refused(tmp_path: Path, marker: Path) -> None:
    """A fresh interpreter whose first sys.path entry (the cwd) holds a fake 'monai'."""
    _shadow_package(tmp_path, "monai", marker)
    (tmp_path / "monai" / "networks").mkdir()
    (tmp_path / "monai" / "networks" / "__init__.py").write_text("")
    card = _card(tmp_path, "monai.networks.nets.DenseNet121", {"spatial_dims": 3, "in_channels": 1,
                                                               "out_channels": 3})
    code = ("import sys; from viewer.models import load_model\n"
            "from viewer.models.errors import UntrustedModelError\n"
            f"try:\n    load_model({str(card)!r})\nexcept UntrustedModelError as e:\n    print('REFUSED', e)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert "REFUSED" in out.stdout, out.stdout + out.stderr
    assert "not from its installed copy" in out.stdout
    assert not marker.exists()


# -- sessions -----------------------------------------------------------------------------

def test_session_naming_hostile_card_refused_without_trust(tmp_path: Path, marker: Path) -> None:
    from viewer.io.session_file import SessionState, save_session
    from viewer.session.session import Session

    architecture, args = _function_cases(tmp_path, marker)[0]
    card = _card(tmp_path, architecture, args)
    save_session(SessionState(model_path=str(card)), tmp_path / "s.lrpsession")
    session = Session()
    try:
        problems = session.open_session(tmp_path / "s.lrpsession")
        assert session.model is None
        assert any("trust" in p and "torch.hub.load" in p for p in problems)
        assert not marker.exists()
        asked = []
        session.trust_prompt = lambda path, reason: asked.append((path, reason)) or False
        session.open_session(tmp_path / "s.lrpsession")
        assert session.model is None and not marker.exists()
        assert asked and asked[0][0] == str(card.absolute()) and "torch.hub.load" in asked[0][1]
    finally:
        session.close()


# -- positive controls --------------------------------------------------------------------

def test_demo_cards_load_without_trust() -> None:
    for name in ("demo3d.toml", "demo2d.toml"):
        assert load_model(REPO / "resources" / "demo" / name).kind == "card"


def test_monai_bundle_of_a_network_class_loads_without_trust(tmp_path: Path) -> None:
    from monai.networks.nets import Classifier

    args = {"in_shape": [1, 16, 16, 16], "classes": 3, "channels": [4, 8], "strides": [2, 2]}
    folder = _bundle(tmp_path / "ok", {"_target_": "monai.networks.nets.Classifier", **args})
    torch.manual_seed(0)
    net = Classifier(**args).eval()
    torch.save(net.state_dict(), folder / "models" / "model.pt")
    m = load_model(folder)
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.allclose(m.module(x), net(x), atol=1e-6)


@pytest.mark.parametrize("architecture", ["torchvision.models.resnet18", "torchvision.models.SqueezeNet"])
def test_torchvision_cards_load_without_trust(tmp_path: Path, architecture: str) -> None:
    import torchvision

    builder = {"torchvision.models.resnet18": torchvision.models.resnet18,
               "torchvision.models.SqueezeNet": torchvision.models.SqueezeNet}[architecture]
    torch.manual_seed(0)
    net = builder(num_classes=3).eval()
    save_file(net.state_dict(), str(tmp_path / "tv.safetensors"))
    (tmp_path / "tv.toml").write_text(textwrap.dedent(f"""\
        task = "classification"
        architecture = "{architecture}"
        weights = "tv.safetensors"
        labels = ["a", "b", "c"]
        [architecture_args]
        num_classes = 3
        [input]
        spatial_dims = 2
        channels = 3
        """))
    m = load_model(tmp_path / "tv.toml")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(m.module(x), net(x), atol=1e-5)


def test_default_downloads_are_switched_off(tmp_path: Path) -> None:
    """EfficientNetBN downloads ImageNet weights by default; from a card it must not."""
    from monai.networks.nets import EfficientNetBN

    net = EfficientNetBN("efficientnet-b0", pretrained=False, spatial_dims=2, in_channels=1, num_classes=3).eval()
    save_file(net.state_dict(), str(tmp_path / "e.safetensors"))
    (tmp_path / "e.toml").write_text(textwrap.dedent("""\
        task = "classification"
        architecture = "monai.networks.nets.EfficientNetBN"
        weights = "e.safetensors"
        [architecture_args]
        model_name = "efficientnet-b0"
        spatial_dims = 2
        in_channels = 1
        num_classes = 3
        [input]
        spatial_dims = 2
        """))
    m = load_model(tmp_path / "e.toml")
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(m.module(x), net(x), atol=1e-5)
