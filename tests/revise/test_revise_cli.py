"""``lrp-viewer revise`` end to end on the shipped shortcut demo (a subset, few epochs).

The report must be checkable: its numbers recompute from the saved model; the revised
card loads and explains; bad inputs are clear errors; an interrupted run continues.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
import torch

from viewer.cli.main import main as cli_main
from viewer.cli.revise import main
from viewer.cli.revise_data import read_cases
from viewer.cli.revise_report import evaluate
from viewer.explain import lrp
from viewer.io import load_scan
from viewer.models import load_model
from viewer.models.demo import DEMO
from viewer.revise.measures import parameters_changed
from viewer.revise.revise import RevisePlan

CASES = DEMO / "shortcut2d"
CARD = DEMO / "demo2d_shortcut.toml"
PATTERN = "{stem}_marker.nii.gz"


def _subset(tmp: Path, name: str, source: str, n: int, label: bool = True) -> Path:
    """A CSV listing the first ``n`` shipped cases of a set by absolute path."""
    with open(CASES / source, newline="") as fh:
        rows = list(csv.DictReader(fh))[:n]
    path = tmp / f"{name}.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"] if label else ["path"])
        for r in rows:
            w.writerow([str(CASES / r["path"]), r["label"]] if label else [str(CASES / r["path"])])
    return path


@pytest.fixture(scope="module")
def lists(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("lists")
    return {"data": _subset(tmp, "data", "reference.csv", 16), "test": _subset(tmp, "test", "decorrelated.csv", 12)}


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def _run(lists, out: Path, *extra: str) -> int:
    return main(["--model", str(CARD), "--data", str(lists["data"]), "--test", f"decorrelated={lists['test']}",
                 "--region-pattern", PATTERN, "--epochs", "2", "--out", str(out), "--quiet", *extra])


def test_correct_writes_a_card_that_loads_explains_and_recomputes(lists, tmp_path) -> None:
    inputs = _digest(CASES)
    out = tmp_path / "corrected.toml"
    assert _run(lists, out, "--mode", "correct", "--fraction", "0.1") == 0
    assert _digest(CASES) == inputs  # input files are never written
    report = json.loads((tmp_path / "revise_report.json").read_text())
    revised = load_model(out)
    original = load_model(CARD)
    assert revised.card.weights == tmp_path / "corrected.safetensors"
    assert report["revised"] == {"card": "corrected.toml", "weights": "corrected.safetensors",
                                 "weights_sha256": hashlib.sha256(revised.card.weights.read_bytes()).hexdigest()}
    # it explains like any model: conservation holds, the map has the input's shape
    x = revised.prepare(load_scan(CASES / "shortcut2d_dec_00.nii.gz"))[0]
    r = lrp(revised.module, x, preset=revised.preset, low=0.0, high=1.0)
    assert r.relevance.shape == x.shape and abs(r.conservation_error) < 1e-4 * max(1.0, abs(r.explained))
    # the numbers recompute from the saved model
    assert {"mode", "fraction", "parameters_updated", "epochs", "wall_time_s", "optimizer_state_bytes", "before",
            "after", "seeds"} <= set(report)
    assert report["mode"] == "correct" and report["fraction"] == 0.1 and report["epochs"] == 2
    sets = {"data": read_cases("data", lists["data"], revised, PATTERN)[0],
            "decorrelated": read_cases("decorrelated", lists["test"], revised, PATTERN)[0]}
    plan = RevisePlan(preset=revised.preset, lrp={"low": 0.0, "high": 1.0})
    assert evaluate(revised.module, sets, plan) == report["after"]
    assert evaluate(original.module, sets, plan) == report["before"]
    changed = parameters_changed(original.module.state_dict(), revised.module.state_dict())
    assert changed == report["parameters_changed"] and 0 < changed <= report["parameters_updated"]
    # only the selected channels changed; the output layer and every other channel are bitwise equal
    selected = report["channels"]["per_layer"]
    assert report["channels"]["selected"] == sum(map(len, selected.values())) == 9  # 10 % of 88, per layer
    before, after = original.module.state_dict(), revised.module.state_dict()
    for layer, chans in selected.items():
        w = f"{layer}.weight"
        others = [c for c in range(before[w].shape[0]) if c not in chans]
        assert torch.equal(before[w][others], after[w][others])
    assert torch.equal(before["classifier.weight"], after["classifier.weight"])
    # Adam's two float32 moments for each updated value, a step count per tensor
    assert report["optimizer_state_bytes"] >= 8 * report["parameters_updated"]
    assert report["optimizer_state_bytes"] < 8 * report["parameters_updated"] + 4 * 20


def test_prune_zeroes_channels_and_counts_macs(lists, tmp_path) -> None:
    out = tmp_path / "pruned.json"
    assert _run(lists, out, "--mode", "prune", "--fraction", "0.25", "--selection", "magnitude") == 0
    report = json.loads((tmp_path / "revise_report.json").read_text())
    pruned = load_model(out).module.state_dict()
    for layer, chans in report["channels"]["per_layer"].items():
        norm = layer.replace(".conv", ".norm")
        assert float(pruned[f"{layer}.weight"][chans].abs().sum()) == 0.0
        assert float(pruned[f"{norm}.weight"][chans].abs().sum()) == 0.0 == float(pruned[f"{norm}.bias"][chans].abs().sum())
    assert report["epochs"] == 0 and report["optimizer_state_bytes"] == 0
    assert report["macs"]["after"] < 0.75 * report["macs"]["before"]
    assert report["parameters_changed"] <= report["parameters_updated"]


def test_an_interrupted_run_continues_to_the_same_model(lists, tmp_path, monkeypatch) -> None:
    import viewer.cli.revise as cli
    from viewer.cli import revise_output

    args = ("--mode", "correct", "--selection", "taylor", "--fraction", "0.25", "--epochs", "3")
    whole = tmp_path / "whole" / "m.toml"
    whole.parent.mkdir()
    assert _run(lists, whole, *args) == 0
    cut = tmp_path / "cut" / "m.toml"
    cut.parent.mkdir()
    real = revise_output.save_checkpoint
    calls = []

    def save_then_stop(*a, **k):
        real(*a, **k)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(revise_output, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        _run(lists, cut, *args)
    assert (cut.parent / ".m.toml.revise-checkpoint.pt").exists() and not cut.exists()
    monkeypatch.setattr(revise_output, "save_checkpoint", real)
    # other arguments: the checkpoint is not theirs
    assert _run(lists, cut, *args[:-1], "4") == cli.EXIT_USAGE
    assert _run(lists, cut, *args) == 0
    report = json.loads((cut.parent / "revise_report.json").read_text())
    assert report["resumed"] is True and not (cut.parent / ".m.toml.revise-checkpoint.pt").exists()
    a, b = load_model(whole).module.state_dict(), load_model(cut).module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_inputs_are_clear_errors(lists, tmp_path, capsys) -> None:
    out = str(tmp_path / "m.toml")

    def error(*extra: str, data: Path | None = None) -> str:
        args = ["--model", str(CARD), "--data", str(data or lists["data"]), "--out", out, "--quiet", *extra]
        assert main(args) == 2
        return capsys.readouterr().err

    for bad in ("0", "1.5", "-0.2"):
        assert "in (0, 1]" in error("--region-pattern", PATTERN, "--fraction", bad)
    assert "matches no file" in error("--region-pattern", "{stem}_ruler.nii.gz")
    assert "give --region-pattern" in error("--mode", "correct")
    assert "--reference" in error("--mode", "preserve")
    # reference cases whose regions are all empty: nothing to rank channels on
    no_marker = tmp_path / "no_marker.csv"
    with open(CASES / "reference.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh)
                if not load_scan(CASES / r["path"].replace(".nii.gz", "_marker.nii.gz")).data.any()][:4]
    no_marker.write_text("path,label\n" + "".join(f"{CASES / r['path']},{r['label']}\n" for r in rows))
    assert "non-empty region" in error("--region-pattern", PATTERN, data=no_marker)
    empty = tmp_path / "empty.csv"
    empty.write_text("path,label\n")
    assert "no scans found" in error("--region-pattern", PATTERN, data=empty)
    unlabelled = _subset(tmp_path, "unlabelled", "reference.csv", 4, label=False)
    assert "has a label" in error("--region-pattern", PATTERN, data=unlabelled)
    wrong_label = tmp_path / "wrong.csv"
    wrong_label.write_text(f"path,label\n{CASES / 'shortcut2d_ref_00.nii.gz'},lesion up\n")
    assert "'lesion right'" in error("--region-pattern", PATTERN, data=wrong_label)
    assert main(["--model", str(CARD), "--data", str(lists["data"]), "--out", str(CARD),
                 "--region-pattern", PATTERN]) == 2
    assert "input model" in capsys.readouterr().err
    assert "valid layers" in error("--region-pattern", PATTERN, "--layers", "features.0.norm")
    assert not Path(out).exists() and not (tmp_path / "revise_report.json").exists()


def test_listed_in_the_main_help(capsys) -> None:
    assert cli_main(["revise", "--help"]) == 0
    assert "--region-pattern" in capsys.readouterr().out
    from viewer.cli.main import commands_help

    assert "revise" in commands_help()
