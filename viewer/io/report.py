"""Metrics reports: one row per (case, method) as CSV for spreadsheets or JSON for scripts.

Rows are plain mappings (prediction, probabilities, conservation numbers, metrics
against a mask, ...). CSV needs flat columns, so nested mappings become dotted column
names (``probabilities.tumour``); JSON keeps the nesting. The format follows the file's
suffix so the UI's save dialog and the batch command need no extra option.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from viewer.io.atomic import atomic_write
from viewer.io.errors import ExportError

FORMATS = {".csv": "csv", ".json": "json"}


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
    with atomic_write(path, "w", overwrite=overwrite) as fh:
        fh.write(text)
    return path


def metrics_json(rows: list[Mapping[str, Any]]) -> str:
    """JSON text of the rows; non-finite numbers become null (JSON has no NaN)."""
    return json.dumps([_jsonable(r) for r in rows], indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def metrics_csv(rows: list[Mapping[str, Any]], columns: list[str] | None = None) -> str:
    """CSV text; columns in first-seen order unless given; missing cells are empty."""
    flat = [flatten(r) for r in rows]
    if columns is None:
        columns = []
        for r in flat:
            columns.extend(k for k in r if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in flat:
        writer.writerow({k: _cell(v) for k, v in r.items()})
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
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return json.dumps([_jsonable(v) for v in value])
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _cell(value.item())
    return value


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
