"""Turning the batch command's INPUTS into cases: files, folders and CSV lists.

* a scan file is one case;
* a folder is searched recursively: every NIfTI or picture file in it is one case,
  and every folder whose files are DICOM is one case (a series);
* a ``.csv`` file lists cases, one per row: column ``path`` (file or DICOM folder,
  relative to the CSV's folder), optional ``mask`` and ``id``.

Masks are found next to each input by ``--mask-pattern`` (``{stem}_mask.nii.gz``), and
files that are some other case's mask are not cases themselves. Case ids come from the
file or folder name, made unique and safe as folder names, because each case gets its
own output folder.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

NIFTI_SUFFIXES = (".nii.gz", ".nii", ".hdr", ".hdr.gz", ".mgz", ".mgh")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
# never cases: sidecars, notes, tables, Analyze data halves (their .hdr is the case)
IGNORED_SUFFIXES = (".json", ".txt", ".md", ".csv", ".tsv", ".xml", ".toml", ".yaml", ".yml", ".py", ".img",
                    ".img.gz", ".safetensors", ".pt", ".pth", ".zip", ".log", ".lrpsession")
MASK_HINTS = ("_mask", "_seg", "_label", "_labels")


class InputError(ValueError):
    """The INPUTS cannot be turned into cases (missing path, bad CSV); a usage error."""


@dataclass(frozen=True)
class Case:
    """One scan to explain: ``path`` (file or DICOM folder), optional ``mask``, its ``id``."""

    id: str
    path: Path
    mask: Path | None = None
    mask_missing: Path | None = None  # where --mask-pattern pointed, when nothing was there


def stem(path: Path) -> str:
    """File name without its image suffix (``case_1.nii.gz`` -> ``case_1``); folders keep their name."""
    name = path.name
    for suffix in NIFTI_SUFFIXES + PICTURE_SUFFIXES + DICOM_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def safe_id(text: str) -> str:
    """A folder-name-safe case id (letters, digits, ``._-``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned or "case"


def find_cases(inputs: Iterable[str | Path], mask_pattern: str | None = None,
               exclude: Iterable[Path] = ()) -> tuple[list[Case], list[str]]:
    """Cases from the command's INPUTS, plus notes worth telling the user (skipped files).

    ``exclude`` lists folders never searched (the output folder). Raises
    :class:`InputError` for a path that does not exist or a malformed CSV list.
    """
    excluded = [Path(p).resolve() for p in exclude]
    entries: list[tuple[str | None, Path, Path | None]] = []  # (id, path, explicit mask)
    notes: list[str] = []
    for raw in inputs:
        path = Path(raw).absolute()  # the summary records absolute paths, so resuming works from any folder
        if not path.exists():
            raise InputError(f"Input {path} does not exist.")
        if path.is_file() and path.suffix.lower() == ".csv":
            entries.extend(_read_list(path))
        elif path.is_dir():
            found, skipped = _walk(path, excluded)
            entries.extend((None, p, None) for p in found)
            if skipped:
                notes.append(f"{len(skipped)} file(s) in {path} are not scans and were ignored "
                             f"(e.g. {skipped[0].name}).")
        else:
            entries.append((None, path, None))

    masks = {}
    if mask_pattern:
        for _, path, explicit in entries:
            if explicit is None:
                masks[path] = resolve_mask(path, mask_pattern)
    mask_files = {m.resolve() for m in masks.values() if m.exists()}
    mask_files |= {e[2].resolve() for e in entries if e[2] is not None}

    cases: list[Case] = []
    used: set[str] = set()
    hinted = 0
    for given_id, path, explicit in entries:
        if path.resolve() in mask_files:
            continue
        if not mask_pattern and given_id is None and _looks_like_mask(path, entries):
            hinted += 1
            continue
        case_id = _unique(safe_id(given_id or stem(path)), used)
        mask, missing = explicit, None
        if explicit is not None and not explicit.exists():
            mask, missing = None, explicit
        if explicit is None and mask_pattern:
            candidate = masks[path]
            mask, missing = (candidate, None) if candidate.exists() else (None, candidate)
        cases.append(Case(case_id, path, mask, missing))
    if hinted:
        notes.append(f"{hinted} file(s) look like masks of other inputs (…_mask) and were not treated as cases; "
                     "pass --mask-pattern '{stem}_mask.nii.gz' to use them for metrics.")
    return cases, notes


def resolve_mask(path: Path, pattern: str) -> Path:
    """The mask file ``pattern`` names for ``path``, in the same folder.

    Placeholders: ``{stem}`` (name without image suffix), ``{name}`` (full name),
    ``{suffix}`` (the image suffix, e.g. ``.nii.gz``).
    """
    name = path.name
    s = stem(path)
    try:
        mask_name = pattern.format(stem=s, name=name, suffix=name[len(s):])
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(f"--mask-pattern {pattern!r} is not valid: use {{stem}}, {{name}} or {{suffix}} ({exc}).")
    return path.parent / mask_name


def _unique(case_id: str, used: set[str]) -> str:
    candidate, n = case_id, 2
    while candidate.lower() in used:
        candidate = f"{case_id}-{n}"
        n += 1
    used.add(candidate.lower())
    return candidate


def _looks_like_mask(path: Path, entries: list[tuple[str | None, Path, Path | None]]) -> bool:
    """``x_mask.nii.gz`` beside ``x.nii.gz``: a mask, not a case, even without a pattern."""
    s = stem(path)
    for hint in MASK_HINTS:
        if s.endswith(hint):
            base = s[: -len(hint)]
            return any(p.parent == path.parent and stem(p) == base for _, p, _ in entries if p != path)
    return False


def _kind(path: Path) -> str | None:
    """"scan" (a file that is a case by itself), "dicom", or None (not an image)."""
    name = path.name.lower()
    if name.startswith(".") or name == "dicomdir":
        return None
    if name.endswith(NIFTI_SUFFIXES + PICTURE_SUFFIXES):
        return "scan"
    if name.endswith(DICOM_SUFFIXES):
        return "dicom"
    if name.endswith(IGNORED_SUFFIXES):
        return None
    try:  # DICOM files often have no suffix at all: look at the bytes
        from viewer.io.load import looks_like_headerless_dicom

        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return None
    if head[128:132] == b"DICM" or looks_like_headerless_dicom(head):
        return "dicom"
    return None


def _walk(root: Path, excluded: list[Path]) -> tuple[list[Path], list[Path]]:
    """Scan files and DICOM folders below ``root`` (sorted, so ids are stable), and skipped files."""
    found: list[Path] = []
    skipped: list[Path] = []
    if any(root.resolve() == e or root.resolve().is_relative_to(e) for e in excluded):
        return found, skipped
    files = sorted(p for p in root.iterdir() if p.is_file())
    kinds = {p: _kind(p) for p in files}
    found.extend(p for p in files if kinds[p] == "scan")
    if any(k == "dicom" for k in kinds.values()):
        found.append(root)
    skipped.extend(p for p in files if kinds[p] is None and not p.name.startswith("."))
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        more, more_skipped = _walk(sub, excluded)
        found.extend(more)
        skipped.extend(more_skipped)
    return found, skipped


def _read_list(path: Path) -> list[tuple[str | None, Path, Path | None]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip().lower() for c in (reader.fieldnames or [])]
            if "path" not in columns:
                raise InputError(f"{path.name} needs a 'path' column (optional: 'mask', 'id'); found {columns}.")
            rows = []
            for row in reader:  # extra cells (key None) are ignored; line numbers count blank lines too
                cells = {k.strip().lower(): (v or "").strip() for k, v in row.items() if isinstance(k, str)}
                rows.append((reader.line_num, cells))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path.name} cannot be read as a CSV list ({exc}).") from exc
    entries = []
    for n, row in rows:
        if not row.get("path"):
            raise InputError(f"{path.name}, line {n}: the 'path' cell is empty.")
        # a listed file that is missing fails as its own case (recorded in the summary)
        scan = _relative_to(path.parent, row["path"])
        mask = _relative_to(path.parent, row["mask"]) if row.get("mask") else None
        entries.append((row.get("id") or None, scan, mask))
    return entries


def _relative_to(folder: Path, text: str) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else folder / p
