"""Turning the batch command's INPUTS into cases: files, folders and CSV lists.

* a scan file is one case;
* a folder is searched recursively (:mod:`viewer.cli.batch_folders`): every NIfTI or
  picture file in it is one case, and every folder whose files are DICOM is one case
  (a series);
* a ``.csv`` file lists cases, one per row: column ``path`` (file or DICOM folder,
  relative to the CSV's folder), optional ``mask`` and ``id``.

Masks are found next to each input by ``--mask-pattern`` (``{stem}_mask.nii.gz``), and
files that are some other case's mask are not cases themselves: quietly so for files
found in folders, with a note for files named on the command line, and as an error for
CSV rows (a row the user wrote is never dropped). The same real file reached twice is
one case. Case ids come from the file or folder name, made unique and safe as folder
names, because each case gets its own output folder.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from viewer.cli.batch_folders import (
    DICOM_SUFFIXES,
    NIFTI_SUFFIXES,
    PICTURE_SUFFIXES,
    FolderError,
    FolderSearch,
)

MASK_HINTS = ("_mask", "_seg", "_label", "_labels", "_marker")  # _marker: the shortcut demo's annotations
PLACEHOLDERS = ("stem", "name", "suffix")
COMMAND_LINE = "the command line"
MAX_LIST_BYTES = 64 << 20


class InputError(ValueError):
    """The INPUTS cannot be turned into cases (missing path, bad CSV); a usage error."""


@dataclass(frozen=True)
class Case:
    """One scan to explain: ``path`` (file or DICOM folder), optional ``mask``, its ``id``."""

    id: str
    path: Path
    mask: Path | None = None
    mask_missing: Path | None = None  # where --mask-pattern pointed, when nothing was there


@dataclass(frozen=True)
class _Entry:
    """An input before it becomes a case; ``where`` is "list.csv, line 3", COMMAND_LINE, or None (a folder)."""

    id: str | None
    path: Path
    mask: Path | None
    where: str | None


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
    :class:`InputError` for a path that does not exist or is neither a file nor a
    folder (a FIFO, a device), a malformed CSV list, a CSV row that is another case's
    mask, an invalid ``mask_pattern``, or a folder too large or deep to be a cohort.
    """
    if mask_pattern is not None:
        check_mask_pattern(mask_pattern)
    search = FolderSearch([Path(p).resolve() for p in exclude])
    entries: list[_Entry] = []
    for raw in inputs:
        path = Path(raw).absolute()  # the summary records absolute paths, so resuming works from any folder
        kind = file_type(path)
        if kind is None:
            raise InputError(f"Input {path} does not exist.")
        if kind == "folder":
            try:
                entries.extend(_Entry(None, p, None, None) for p in search.search(path))
            except FolderError as exc:
                raise InputError(str(exc)) from None
        elif kind != "file":
            raise InputError(f"Input {path} is {kind}, not a scan, folder or CSV list; reading it could wait "
                             "forever. Give scan files, their folders or a CSV list.")
        elif path.suffix.lower() == ".csv":
            entries.extend(_read_list(path))
        else:
            entries.append(_Entry(None, path, None, COMMAND_LINE))
    notes = search.notes()
    entries, repeats = _distinct(entries)
    if repeats:
        notes.append(f"{repeats} input(s) name the same scan as another input and are processed once.")

    masks = {e.path: resolve_mask(e.path, mask_pattern) for e in entries if mask_pattern and e.mask is None}
    owners: dict[Path, _Entry] = {}  # real mask file -> the entry whose mask it is
    for e in entries:
        m = e.mask if e.mask is not None else masks.get(e.path)
        if m is not None and _exists(m):
            owners.setdefault(m.resolve(), e)

    cases: list[Case] = []
    used: set[str] = set()
    hinted = paired = 0
    for e in entries:
        owner = owners.get(e.path.resolve())
        if owner is not None and owner is not e:
            if e.where is None:
                paired += 1
            elif e.where == COMMAND_LINE:
                notes.append(f"{e.path.name} is the mask of {owner.path.name}; it is used as a mask, not a case.")
            else:
                raise InputError(f"{e.where}: {e.path.name} is listed as a case but is also the mask of "
                                 f"{owner.path.name}" + (f" ({owner.where})" if owner.where else "") +
                                 ". A file is either a case or a mask: remove one of the two.")
            continue
        if not mask_pattern and e.id is None and e.where is None and _looks_like_mask(e.path, entries):
            hinted += 1
            continue
        case_id = _unique(safe_id(e.id or stem(e.path)), used)
        mask, missing = e.mask, None
        if e.mask is not None and not _exists(e.mask):
            mask, missing = None, e.mask
        if e.mask is None and mask_pattern:
            candidate = masks[e.path]
            if file_type(candidate) not in (None, "file", "folder"):
                raise InputError(f"--mask-pattern names {candidate} as the mask of {e.path.name}, but it is "
                                 f"{file_type(candidate)}; reading it could wait forever.")
            mask, missing = (candidate, None) if _exists(candidate) else (None, candidate)
        cases.append(Case(case_id, e.path, mask, missing))
    if paired:
        notes.append(f"{paired} file(s) in the input folders are masks of other cases (--mask-pattern) and are "
                     "used as masks, not as cases.")
    if hinted:
        notes.append(f"{hinted} file(s) look like masks of other inputs (…_mask) and were not treated as cases; "
                     "pass --mask-pattern '{stem}_mask.nii.gz' to use them for metrics.")
    return cases, notes


def check_mask_pattern(pattern: str) -> None:
    """Refuse a ``--mask-pattern`` that is not plain text with ``{stem}``, ``{name}`` or ``{suffix}``.

    Formats and conversions are refused: ``{stem:999999999}`` would build a
    gigabyte-long name, ``{stem.__class__}`` reaches into Python objects.
    """
    def bad(why: str) -> InputError:
        return InputError(f"--mask-pattern {pattern!r} is not valid: {why}. Use text with {{stem}}, {{name}} or "
                          "{suffix}, e.g. '{stem}_mask.nii.gz'.")

    if "\x00" in pattern:
        raise bad("it contains a NUL character")
    try:
        parts = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise bad(str(exc)) from None
    fields = [(f, spec, conv) for _, f, spec, conv in parts if f is not None]
    for field, spec, conversion in fields:
        if field not in PLACEHOLDERS:
            raise bad(f"{{{field}}} is not one of the placeholders")
        if spec or conversion:
            raise bad(f"{{{field}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} has a "
                      "format; placeholders take none")
    if not fields:
        raise bad("it has no placeholder, so every case would get the same mask")


def resolve_mask(path: Path, pattern: str) -> Path:
    """The mask file ``pattern`` names for ``path``, in the same folder.

    Placeholders: ``{stem}`` (name without image suffix), ``{name}`` (full name),
    ``{suffix}`` (the image suffix, e.g. ``.nii.gz``).
    """
    check_mask_pattern(pattern)
    name = path.name
    s = stem(path)
    return path.parent / pattern.format(stem=s, name=name, suffix=name[len(s):])


def file_type(path: Path) -> str | None:
    """"file", "folder", None (nothing there), or what else it is ("a FIFO (named pipe)", ...)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _exists(path: Path) -> bool:
    return os.path.exists(path)  # False (not an exception) for names too long or with a NUL


def _distinct(entries: list[_Entry]) -> tuple[list[_Entry], int]:
    """The entries without repeats of the same real scan with the same mask (links, a path given twice)."""
    kept, seen = [], set()
    for e in entries:
        key = (e.path.resolve(), e.mask.resolve() if e.mask is not None else None)
        if key in seen:
            continue
        seen.add(key)
        kept.append(e)
    return kept, len(entries) - len(kept)


def _unique(case_id: str, used: set[str]) -> str:
    candidate, n = case_id, 2
    while candidate.lower() in used:
        candidate = f"{case_id}-{n}"
        n += 1
    used.add(candidate.lower())
    return candidate


def _looks_like_mask(path: Path, entries: list[_Entry]) -> bool:
    """``x_mask.nii.gz`` beside ``x.nii.gz``: a mask, not a case, even without a pattern."""
    s = stem(path)
    for hint in MASK_HINTS:
        if s.endswith(hint):
            base = s[: -len(hint)]
            return any(e.path.parent == path.parent and stem(e.path) == base for e in entries if e.path != path)
    return False


def _read_list(path: Path) -> list[_Entry]:
    """The rows of a CSV list; anything that is not a plain text table is an :class:`InputError`."""
    try:
        if path.stat().st_size > MAX_LIST_BYTES:
            raise InputError(f"{path.name} is larger than {MAX_LIST_BYTES >> 20} MB; that is not a CSV list of cases.")
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path.name} cannot be read ({exc.strerror or exc}).") from None
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise InputError(f"{path.name}, line {line}: a NUL byte, so this is not a text CSV file (saved as UTF-16 or "
                         "a spreadsheet?). Save it as 'CSV UTF-8' and run again.")
    try:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
        columns = [c.strip().lower() for c in (reader.fieldnames or [])]
        if "path" not in columns:
            raise InputError(f"{path.name} needs a 'path' column (optional: 'mask', 'id'); found {columns}.")
        rows = []
        for row in reader:  # extra cells (key None) are ignored; line numbers count blank lines too
            cells = {k.strip().lower(): (v or "").strip() for k, v in row.items() if isinstance(k, str)}
            rows.append((reader.line_num, cells))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path.name} cannot be read as a CSV list ({exc}).") from None
    entries = []
    for n, row in rows:
        where = f"{path.name}, line {n}"
        if not row.get("path"):
            raise InputError(f"{where}: the 'path' cell is empty.")
        # a listed file that is missing fails as its own case (recorded in the summary)
        scan = _relative_to(path.parent, row["path"])
        mask = _relative_to(path.parent, row["mask"]) if row.get("mask") else None
        for what, p in (("path", scan), ("mask", mask)):
            kind = file_type(p) if p is not None else None
            if kind not in (None, "file", "folder"):
                raise InputError(f"{where}: the {what} {p} is {kind}, not a scan file or folder; reading it could "
                                 "wait forever. List scan files or DICOM folders.")
        entries.append(_Entry(row.get("id") or None, scan, mask, where))
    return entries


def _relative_to(folder: Path, text: str) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else folder / p
