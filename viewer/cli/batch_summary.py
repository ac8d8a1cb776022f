"""``summary.csv`` of a batch run: one row per case, rewritten atomically after each case.

Because the file is complete after every case, an interrupted run leaves a valid
summary, and the next run reads it to skip the cases already done (status ok or
skipped, every method file present, same input path).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable

from viewer.io.atomic import atomic_write
from viewer.io.report import metrics_csv

BASE_COLUMNS = ["case", "status", "error", "input", "mask", "prediction"]
DONE = ("ok", "skipped")


class Summary:
    """Rows by case id, in first-seen order, with columns kept in a stable order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        if path.exists():
            self.rows = {row["case"]: row for row in _read(path) if row.get("case")}

    def is_done(self, case_id: str, input_path: Path, files: Iterable[Path]) -> bool:
        row = self.rows.get(case_id)
        return (
            row is not None
            and row.get("status") in DONE
            and row.get("input") == str(input_path)
            and all(f.exists() for f in files)
        )

    def mark_skipped(self, case_id: str) -> None:
        self.rows[case_id]["status"] = "skipped"

    def record(self, row: dict[str, Any]) -> None:
        self.rows[row["case"]] = row

    def write(self) -> None:
        with atomic_write(self.path, "w", overwrite=True) as fh:
            fh.write(metrics_csv(list(self.rows.values()), self.columns()))

    def columns(self) -> list[str]:
        seen: list[str] = list(BASE_COLUMNS)
        for row in self.rows.values():
            seen.extend(k for k in row if k not in seen)
        probabilities = [c for c in seen if c.startswith("p.")]
        methods = [c for c in seen if c not in BASE_COLUMNS and c not in probabilities and c not in ("seconds", "note")]
        return BASE_COLUMNS + probabilities + methods + ["seconds", "note"]


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []  # an unreadable summary means nothing is known to be done: recompute
