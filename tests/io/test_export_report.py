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
