"""summary.csv: provenance of every row, prepared-input warnings, spreadsheet-safe text, exact resumes."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import pytest

from viewer import __version__
from viewer.cli.batch import main

HOSTILE = ['=HYPERLINK("http://x","y")', "@SUM(A1)", "+1"]


def _summary(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return {row["case"]: row for row in csv.DictReader(fh)}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rows_record_version_model_hashes_device_and_precision(tmp_path: Path, tiny_card: Path, write_case) -> None:
    for i in range(2):
        write_case(tmp_path / "in" / f"c{i}.nii.gz", seed=i)
    (tmp_path / "in" / "broken.nii").write_bytes(b"not a scan")
    out = tmp_path / "out"
    assert main(["--model", str(tiny_card), "--precision", "bfloat16", "--method", "saliency", str(tmp_path / "in"),
                 "--out", str(out), "--quiet"]) == 1
    rows = _summary(out)
    weights = tiny_card.parent / "tiny.safetensors"
    for case in ("c0", "c1", "broken"):  # failed cases are traceable too
        row = rows[case]
        assert row["lrp_viewer_version"] == __version__
        assert row["model_sha256"] == _sha256(weights) and row["card_sha256"] == _sha256(tiny_card)
        assert (row["device"], row["precision"], row["grid"]) == ("cpu", "bfloat16", "input")
    with open(out / "summary.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header[-9:] == ["seconds", "input_warnings", "note", "grid", "device", "precision", "lrp_viewer_version",
                           "model_sha256", "card_sha256"]


def test_other_model_weights_make_done_cases_pending(tmp_path: Path, tiny_card: Path, write_case) -> None:
    card = tmp_path / "model" / "tiny.toml"
    shutil.copytree(tiny_card.parent, card.parent)
    path = write_case(tmp_path / "in" / "w.nii.gz")
    out = tmp_path / "out"
    args = ["--model", str(card), "--method", "saliency", str(path), "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert main(args) == 0 and _summary(out)["w"]["status"] == "skipped"
    from safetensors.torch import load_file, save_file

    state = load_file(card.parent / "tiny.safetensors")
    first = next(iter(state))
    state[first] = state[first] * 0.5
    save_file(state, card.parent / "tiny.safetensors")
    assert main(args) == 0
    row = _summary(out)["w"]
    assert row["status"] == "ok" and row["model_sha256"] == _sha256(card.parent / "tiny.safetensors")


def test_prepared_input_warnings_are_recorded_per_case(tmp_path: Path, tiny_card: Path, write_case,
                                                       monkeypatch) -> None:
    from viewer.models.loaded import LoadedModel

    for name in ("plain", "odd"):
        write_case(tmp_path / "in" / f"{name}.nii.gz")
    real_prepare = LoadedModel.prepare

    def prepare(self, scan):
        x, to_scan = real_prepare(self, scan)
        warnings = ("31 % of voxels clipped to the input range", "=constant image") if "odd" in scan.path else ()
        object.__setattr__(to_scan, "warnings", warnings)  # the field ToScan gains for out-of-distribution input
        return x, to_scan

    monkeypatch.setattr(LoadedModel, "prepare", prepare)
    out = tmp_path / "out"
    assert main(["--model", str(tiny_card), "--method", "saliency", str(tmp_path / "in"), "--out", str(out),
                 "--quiet"]) == 0
    rows = _summary(out)
    assert rows["plain"]["input_warnings"] == ""
    assert rows["odd"]["input_warnings"] == "31 % of voxels clipped to the input range; =constant image"


def test_hostile_labels_and_ids_are_text_in_spreadsheets_and_resume_exactly(tmp_path: Path, tiny_card: Path,
                                                                            write_case) -> None:
    card = tmp_path / "model" / "tiny.toml"
    shutil.copytree(tiny_card.parent, card.parent)
    text = card.read_text().replace('labels = ["no lesion", "lesion left", "lesion right"]',
                                    "labels = [" + ", ".join(f"'{x}'" for x in HOSTILE) + "]")
    assert text != card.read_text()
    card.write_text(text)
    write_case(tmp_path / "in" / "-cmd.nii.gz")
    write_case(tmp_path / "in" / "@sum.nii.gz", seed=1)
    out = tmp_path / "out"
    args = ["--model", str(card), "--method", "lrp", str(tmp_path / "in"), "--out", str(out), "--quiet"]
    assert main(args) == 0
    with open(out / "summary.csv", newline="") as fh:
        table = list(csv.reader(fh))
    header = table[0]
    assert [h for h in header if h.startswith("p.")] == [f"p.{x}" for x in HOSTILE]
    cells = [cell for row in table[1:] for cell in row]
    assert not any(c.startswith(("=", "+", "@", "\t", "\r")) for c in cells + header)
    rows = {r[0]: dict(zip(header, r)) for r in table[1:]}
    assert set(rows) == {"'-cmd", "sum"}  # safe_id drops the '@'; the '-' stays and is escaped
    for row in rows.values():
        assert row["prediction"] in {f"'{x}" for x in HOSTILE}
        assert float(row[f"p.{HOSTILE[0]}"]) >= 0.0
        # numbers stay numbers, negative ones too
        assert float(row["lrp-epsilon-plus.conservation_error"]) == pytest.approx(
            float(row["lrp-epsilon-plus.explained"]) - float(row["lrp-epsilon-plus.input_sum"])
            - float(row["lrp-epsilon-plus.absorbed"]), abs=1e-6)

    before = (out / "summary.csv").read_text()
    assert main(args) == 0  # resumed: the escaped id is read back as '-cmd' and matched
    after = (out / "summary.csv").read_text()
    assert after == before.replace(",ok,", ",skipped,")


def test_summary_reads_its_own_cells_back_exactly(tmp_path: Path) -> None:
    from viewer.cli.batch_summary import Summary

    path = tmp_path / "summary.csv"
    first = Summary(path)
    first.record({"case": "-5", "status": "ok", "error": "", "input": "/data/-5.nii.gz", "prediction": "+1",
                  "p.+1": -0.0, "p.=x": 1.0, "lrp.absorbed": -0.125, "lrp.pointing_game": 1, "lrp.delta": -3,
                  "lrp.exp": -1.5e-07, "note": "-resampled", "seconds": 0.5})
    first.write()
    written = path.read_bytes()
    assert b"'-5,ok,,/data/-5.nii.gz,,'+1,-0.0,1.0,-0.125,1,-3,-1.5e-07,0.5,,'-resampled" in written
    again = Summary(path)
    row = again.rows["-5"]
    assert (row["case"], row["prediction"], row["note"]) == ("-5", "+1", "-resampled")  # text, unescaped
    assert (row["lrp.absorbed"], row["lrp.delta"], row["lrp.exp"]) == (-0.125, -3, -1.5e-07)  # numbers
    again.write()
    assert path.read_bytes() == written  # a resumed run never changes a row it keeps
