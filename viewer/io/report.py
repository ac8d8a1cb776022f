"""Metrics reports: one row per (case, method) as CSV for spreadsheets or JSON for scripts.

Rows are plain mappings (prediction, probabilities, conservation numbers, metrics
against a mask, ...). CSV needs flat columns, so nested mappings become dotted column
names (``probabilities.tumour``); JSON keeps the nesting. The format follows the file's
suffix so the UI's save dialog and the batch command need no extra option.

Every CSV cell and header that is text goes through :func:`spreadsheet_safe`: model
labels, case ids and error messages come from files other people wrote, and a cell
such as ``=HYPERLINK(...)`` would run as a formula when the CSV is opened in a
spreadsheet (CSV injection). Numbers are never touched, so ``-0.5`` stays a number.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from viewer.io.atomic import atomic_write
from viewer.io.errors import ExportError

FORMATS = {".csv": "csv", ".json": "json"}

# What makes a spreadsheet read a cell as a formula (OWASP's list: = + - @ tab CR), plus
# line feed and the full-width forms that East Asian spreadsheet locales also accept.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` as a CSV cell a spreadsheet shows as text: a string that would start a formula gets a leading
    single quote (``'=SUM(A1)``); numbers and other non-strings are returned unchanged.

    Idempotent: an escaped cell starts with the quote and is left alone.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def from_spreadsheet_safe(text: str) -> str:
    """The original string of a cell :func:`spreadsheet_safe` escaped (for reading our own CSV files back)."""
    if text.startswith("'") and text[1:].startswith(FORMULA_STARTS):
        return text[1:]
    return text


def write_metrics(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``rows`` to ``path`` (``.csv`` or ``.json``) atomically; returns the path.

    Raises :class:`ExportError` for another suffix, or when ``path`` exists and
    ``overwrite`` is False.
    """
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ExportError(f"Metrics are written as .csv or .json; {path.name} has neither suffix.")
    rows = [dict(r) for r in rows]
    text = metrics_csv(rows) if kind == "csv" else metrics_json(rows)
    with atomic_write(path, "wb", overwrite=overwrite) as fh:  # bytes: line ends exactly as written, on any OS
        fh.write(text.encode("utf-8"))
    return path


def metrics_json(rows: list[Mapping[str, Any]]) -> str:
    """JSON text of the rows; non-finite numbers become null (JSON has no NaN)."""
    return json.dumps([_jsonable(r) for r in rows], indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def metrics_csv(rows: list[Mapping[str, Any]], columns: list[str] | None = None) -> str:
    """CSV text (RFC 4180); columns in first-seen order unless given; missing cells are empty.

    Text in headers and cells is made spreadsheet-safe (:func:`spreadsheet_safe`).
    """
    flat = [flatten(r) for r in rows]
    if columns is None:
        columns = []
        for r in flat:
            columns.extend(k for k in r if k not in columns)
    buffer = io.StringIO()
    # RFC 4180 line ends: with "\n" alone, Python's writer leaves a lone "\r" inside a cell
    # unquoted and the file no longer parses
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([spreadsheet_safe(str(c)) for c in columns])
    for r in flat:
        writer.writerow([_cell(r.get(c)) for c in columns])
    return buffer.getvalue()


def flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"probabilities": {"a": 0.1}}`` -> ``{"probabilities.a": 0.1}``."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _cell(value: Any) -> Any:
    """One CSV cell: numbers as numbers (non-finite ones empty), everything else as spreadsheet-safe text."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalars
        return _cell(value.item())
    if isinstance(value, numbers.Number):  # int, bool, Decimal, ...: a number, never a formula
        return value
    if isinstance(value, (list, tuple)):
        return spreadsheet_safe(json.dumps([_jsonable(v) for v in value]))
    return spreadsheet_safe(value if isinstance(value, str) else str(value))  # paths, enums: their text


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _jsonable(value.item())
    return str(value)
