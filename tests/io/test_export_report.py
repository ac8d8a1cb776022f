"""Metrics reports: CSV and JSON chosen by suffix, nested values flattened for CSV."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from viewer.io import ExportError
from viewer.io.report import write_metrics

ROWS = [
    {"case": "a", "method": "lrp", "prediction": "lesion left",
     "probabilities": {"no lesion": 0.1, "lesion left": 0.85, "lesion right": 0.05},
     "conservation_error": 1.5e-7, "mass_accuracy": np.float32(0.75), "pointing_game": True},
    {"case": "a", "method": "gradcam", "prediction": "lesion left",
     "probabilities": {"no lesion": 0.1, "lesion left": 0.85, "lesion right": 0.05},
     "conservation_error": None, "mass_accuracy": float("nan"), "extra": [1, 2]},
]


def test_csv_flattens_and_keeps_first_seen_columns(tmp_path: Path) -> None:
    path = write_metrics(ROWS, tmp_path / "metrics.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["case", "method", "prediction", "probabilities.no lesion", "probabilities.lesion left",
                             "probabilities.lesion right", "conservation_error", "mass_accuracy", "pointing_game",
                             "extra"]
    assert float(rows[0]["probabilities.lesion left"]) == 0.85
    assert float(rows[0]["mass_accuracy"]) == 0.75
    assert float(rows[0]["conservation_error"]) == 1.5e-7
    assert rows[0]["pointing_game"] == "True" and rows[0]["extra"] == ""
    assert rows[1]["conservation_error"] == "" and rows[1]["mass_accuracy"] == "" and rows[1]["extra"] == "[1, 2]"


def test_json_keeps_nesting_and_nulls_nan(tmp_path: Path) -> None:
    path = write_metrics(ROWS, tmp_path / "metrics.JSON")
    doc = json.loads(path.read_text())
    assert doc[0]["probabilities"]["lesion left"] == 0.85
    assert doc[0]["mass_accuracy"] == 0.75 and doc[0]["pointing_game"] is True
    assert doc[1]["mass_accuracy"] is None and doc[1]["extra"] == [1, 2]
    assert not any(isinstance(v, float) and math.isnan(v) for v in doc[1].values())


def test_suffix_and_overwrite_rules(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=".csv or .json"):
        write_metrics(ROWS, tmp_path / "metrics.xlsx")
    path = write_metrics(ROWS[:1], tmp_path / "m.csv")
    with pytest.raises(ExportError, match="already exists"):
        write_metrics(ROWS, path)
    assert len(path.read_text().splitlines()) == 2
    write_metrics(ROWS, path, overwrite=True)
    assert len(path.read_text().splitlines()) == 3


HOSTILE_LABELS = ['=HYPERLINK("http://x","y")', "@SUM(A1)", "+1", "-cmd", "\tx", "\rx", "\nx",
                  "\uff1dSUM(A1)", "\uff20SUM(A1)"]


def test_spreadsheet_safe_escapes_formula_starts_and_leaves_numbers() -> None:
    from viewer.io.report import from_spreadsheet_safe, spreadsheet_safe

    for label in HOSTILE_LABELS:
        assert spreadsheet_safe(label) == "'" + label
        assert spreadsheet_safe(spreadsheet_safe(label)) == "'" + label  # idempotent
        assert from_spreadsheet_safe(spreadsheet_safe(label)) == label
    for plain in ("lesion left", "a=b", "x-1", "'already quoted", ""):
        assert spreadsheet_safe(plain) == plain and from_spreadsheet_safe(plain) == plain
    for number in (-0.5, -3, np.float32(-2.0), True):
        assert spreadsheet_safe(number) is number


def test_csv_cells_and_headers_from_labels_are_text_in_spreadsheets(tmp_path: Path) -> None:
    rows = [{"case": label, "probabilities": {label: -0.25}, "delta": -1.5, "count": -3, "f32": np.float32(-0.5),
             "note": ["-x"]}
            for label in HOSTILE_LABELS]
    rows.append({"case": "-cmd", "probabilities": {"=x": 0.5}, "path": Path("-p")})
    path = write_metrics(rows, tmp_path / "m.csv")
    with open(path, newline="") as fh:
        table = list(csv.reader(fh))
    header, body = table[0], table[1:]
    assert header[:1] == ["case"]
    assert [h for h in header if h.startswith("probabilities.")] == [f"probabilities.{x}" for x in HOSTILE_LABELS] + \
        ["probabilities.=x"]  # do not start with a formula character: left as they are
    assert [r[0] for r in body] == ["'" + x for x in HOSTILE_LABELS] + ["'-cmd"]
    first = dict(zip(header, body[0]))
    # numbers stay numbers, even negative ones; only text is escaped
    assert (first["delta"], first["count"], first["f32"]) == ("-1.5", "-3", "-0.5")
    assert first[f"probabilities.{HOSTILE_LABELS[0]}"] == "-0.25"
    assert first["note"] == '["-x"]'  # a list is written as JSON text, which starts with a bracket
    assert dict(zip(header, body[-1]))["path"] == "'-p"
    # a header that is itself a label (no prefix) is escaped too
    path = write_metrics([{"=cmd|' /C calc'!A0": 1.0, "@x": "ok"}], tmp_path / "h.csv")
    with open(path, newline="") as fh:
        assert next(csv.reader(fh)) == ["'=cmd|' /C calc'!A0", "'@x"]
