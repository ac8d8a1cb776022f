"""``summary.csv`` of a batch run: one row per case, rewritten atomically after each case.

Because the file is complete after every case, an interrupted run leaves a valid
summary, and the next run reads it to skip the cases already done (status ok or
skipped, every method file present, same input path, and the same model files and
output grid: a row must describe the files next to it).

Each row says what produced it (lrp-viewer version, SHA-256 of the model's weights and
card, device and precision), so a result can be traced after the fact. Text cells are
written spreadsheet-safe (:func:`viewer.io.report.spreadsheet_safe`) and read back to
their original text, so resuming never changes a row.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from viewer.io.atomic import atomic_write
from viewer.io.report import from_spreadsheet_safe, metrics_csv

BASE_COLUMNS = ["case", "status", "error", "input", "mask", "prediction"]
TAIL_COLUMNS = ["seconds", "input_warnings", "note"]
PROVENANCE_COLUMNS = ["grid", "device", "precision", "lrp_viewer_version", "model_sha256", "card_sha256"]
# a finished row counts as done only when these match the current run
MUST_MATCH = ("grid", "model_sha256", "card_sha256")
TEXT_COLUMNS = frozenset(BASE_COLUMNS + TAIL_COLUMNS + PROVENANCE_COLUMNS)
DONE = ("ok", "skipped")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")


class Summary:
    """Rows by case id, with columns kept in a stable order.

    Rows are written in ``order`` (the run's cases, as the inputs list them), then any
    other rows in first-seen order, so the file does not depend on which case finished
    first (several workers finish in any order).
    """

    def __init__(self, path: Path, order: Iterable[str] = ()) -> None:
        self.path = path
        self.order = list(order)
        self.rows: dict[str, dict[str, Any]] = {}
        if path.exists():
            self.rows = {row["case"]: row for row in _read(path) if row.get("case")}

    def is_done(self, case_id: str, input_path: Path, files: Iterable[Path],
                provenance: Mapping[str, Any] | None = None) -> bool:
        row = self.rows.get(case_id)
        expected = {k: str(v) for k, v in (provenance or {}).items() if k in MUST_MATCH}
        return (
            row is not None
            and row.get("status") in DONE
            and row.get("input") == str(input_path)
            and all(str(row.get(k) or "") == v for k, v in expected.items())
            and all(f.exists() for f in files)
        )

    def mark_skipped(self, case_id: str) -> None:
        self.rows[case_id]["status"] = "skipped"

    def record(self, row: dict[str, Any]) -> None:
        self.rows[row["case"]] = row

    def write(self) -> None:
        """Rewrite the file atomically; raises OSError / ExportError when it cannot be written."""
        text = metrics_csv(self.ordered(), self.columns())
        with atomic_write(self.path, "wb", overwrite=True) as fh:
            fh.write(text.encode("utf-8"))

    def ordered(self) -> list[dict[str, Any]]:
        first = [self.rows[c] for c in dict.fromkeys(self.order) if c in self.rows]
        listed = set(self.order)
        return first + [row for case, row in self.rows.items() if case not in listed]

    def columns(self) -> list[str]:
        seen: list[str] = list(BASE_COLUMNS)
        for row in self.ordered():
            seen.extend(k for k in row if k not in seen)
        probabilities = [c for c in seen if c.startswith("p.")]
        methods = [c for c in seen if c not in TEXT_COLUMNS and c not in probabilities]
        return BASE_COLUMNS + probabilities + methods + TAIL_COLUMNS + PROVENANCE_COLUMNS


def sha256_of(path: Path | None) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks; "" when there is no such file."""
    if path is None or not Path(path).is_file():
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [{k: _restore(k, v) for k, v in row.items() if isinstance(k, str)} for row in csv.DictReader(fh)]
    except (OSError, UnicodeDecodeError, csv.Error, ValueError):
        return []  # an unreadable summary means nothing is known to be done: recompute


def _restore(column: str, text: Any) -> Any:
    """A cell as it was before writing: escaped text unescaped, numbers in number columns as numbers.

    Without this, a negative number read back as text would be escaped on the next write.
    """
    if not isinstance(text, str):
        return ""
    original = from_spreadsheet_safe(text)
    if original != text or column in TEXT_COLUMNS or not _NUMBER.fullmatch(text):
        return original
    return int(text) if _INTEGER.fullmatch(text) else float(text)
