"""Model card parsing and validation: every user mistake gets a message that names the field."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from viewer.models import ModelLoadError
from viewer.models.card import Normalization, parse_card, read_card

from tiny_models import card_toml


def _raw(**changes) -> dict:
    raw = tomllib.loads(card_toml("w.safetensors"))
    for key, value in changes.items():
        node = raw
        *parents, last = key.split("__")
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return raw


def test_toml_and_json_give_the_same_card(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(card_toml("w.safetensors"))
    (tmp_path / "c.json").write_text(json.dumps(tomllib.loads(card_toml("w.safetensors"))))
    a, b = read_card(tmp_path / "c.toml"), read_card(tmp_path / "c.json")
    assert a.weights == b.weights == tmp_path / "w.safetensors"
    assert a.input == b.input
    assert a.input.size == (16, 16, 16) and a.input.normalize == Normalization("minmax", percentiles=(0.0, 100.0))
    assert a.labels == ("none", "left", "right") and a.architecture_args["channels"] == [2, 4, 4, 4]
    assert a.input_range == (0.0, 1.0) and a.warnings == ()


def test_missing_fields_are_named() -> None:
    with pytest.raises(ModelLoadError, match="required field\\(s\\) missing: task, weights"):
        parse_card(_raw(task=None, weights=None), Path("m.toml"))
    with pytest.raises(ModelLoadError, match="input.spatial_dims"):
        parse_card(_raw(input__spatial_dims=None), Path("m.toml"))
    with pytest.raises(ModelLoadError, match="'window' needs 'width'"):
        parse_card(_raw(input__normalize={"method": "window", "center": 40}), Path("m.toml"))


def test_unknown_fields_warn_with_their_path() -> None:
    card = parse_card(_raw(colour="red", input__flip=True, input__normalize__gain=2), Path("m.toml"))
    assert card.warnings == (
        "m.toml: unknown field 'colour' ignored",
        "m.toml: unknown field 'input.flip' ignored",
        "m.toml: unknown field 'input.normalize.gain' ignored",
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "detection"}, "task must be one of classification, segmentation, got 'detection'"),
        ({"architecture": "DenseNet121"}, "architecture must be an import path"),
        ({"labels": "a,b"}, "labels must be a list of strings"),
        ({"input__spatial_dims": 4}, "input.spatial_dims must be 2 or 3, got 4"),
        ({"input__channels": 0}, "input.channels must be a positive integer"),
        ({"input__size": [16, 16]}, "input.size must be a list of 3 numbers"),
        ({"input__size": [16, 16, 0]}, "input.size must hold positive integers"),
        ({"input__spacing": [1.0, 1.0, 1.0]}, "give input.size or input.spacing, not both"),
        ({"input__orientation": "LPS"}, "orientation 'LPS' is not supported"),
        ({"input__input_range": [1.0, 0.0]}, "low < high"),
        ({"input__normalize": {"method": "histogram"}}, "method must be one of none, window, zscore, minmax"),
        ({"input__normalize": {"method": "minmax", "percentiles": [99, 1]}}, "0 <= low < high <= 100"),
        ({"input__normalize": {"method": "zscore", "mean": 3.0}}, "needs both mean and std"),
        ({"gradcam_layer": 3}, "field 'gradcam_layer' must be a non-empty string"),
    ],
)
def test_invalid_values(changes: dict, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message.replace("(", "\\(").replace(")", "\\)")):
        parse_card(_raw(**changes), Path("m.toml"))


def test_input_range_defaults_and_warning() -> None:
    window = parse_card(_raw(input__input_range=None,
                             input__normalize={"method": "window", "center": 40, "width": 400}), Path("m.toml"))
    assert window.input_range == (0.0, 1.0) and window.warnings == ()
    z = parse_card(_raw(input__input_range=None, input__normalize="zscore"), Path("m.toml"))
    assert z.input_range is None
    assert z.warnings == ("m.toml: no input.input_range; LRP's ZBox rule will fall back to the input's own min/max",)
    neg = parse_card(_raw(input__input_range=[-3, 3], input__normalize="zscore"), Path("m.toml"))
    assert neg.input_range == (-3.0, 3.0)


def test_syntax_errors_and_wrong_suffix(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("task = \n")
    with pytest.raises(ModelLoadError, match="bad.toml is not valid TOML"):
        read_card(tmp_path / "bad.toml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ModelLoadError, match="bad.json is not valid JSON"):
        read_card(tmp_path / "bad.json")
    (tmp_path / "c.yaml").write_text("task: x")
    with pytest.raises(ModelLoadError, match="must be a .toml or .json file"):
        read_card(tmp_path / "c.yaml")
