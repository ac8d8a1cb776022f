"""The revise command's cases: labelled scans with an optional region, as model inputs.

Cases are found as the batch command finds them (:mod:`viewer.cli.batch_inputs`), with
two additions a training needs:

* a **label** per case: the ``label`` column of a CSV list (a label of the model card
  or a class number), or, for a folder, the name of the class subfolder the scan lies
  in (``data/lesion right/case_7.nii.gz``); cases without one can still rank channels
  and be explained, but not be trained or scored on;
* a **region** per case (``--region-pattern``, e.g. ``{stem}_marker.nii.gz``): the
  unwanted part of the image, a mask on the scan's grid; files that are some case's
  region or lesion mask are not cases themselves.

Every case must give exactly one model input (a 2D image for a 2D model, a volume for
a 3D one): labels belong to cases, and a 2D model run on each slice of a volume would
give one label to many slices.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from viewer.cli.batch_inputs import MASK_HINTS, InputError, find_cases, resolve_mask, stem
from viewer.models.loaded import LoadedModel
from viewer.revise.errors import ReviseError
from viewer.revise.revise import CaseSet

UNLABELLED = -1


@dataclass(frozen=True)
class CaseSource:
    """Where a set of cases came from, for the report."""

    name: str
    source: str
    cases: int
    labelled: int
    with_region: int
    notes: tuple[str, ...] = ()


def label_index(text: str, labels: list[str], where: str) -> int:
    """A class index from a label name (case-insensitive) or a class number."""
    value = text.strip()
    lowered = [x.lower() for x in labels]
    if value.lower() in lowered:
        return lowered.index(value.lower())
    if value.isdigit() and (not labels or int(value) < len(labels)):
        return int(value)
    choices = ", ".join(f"'{x}'" for x in labels) if labels else "class numbers"
    raise ReviseError(f"{where}: label {value!r} is not a class of this model; use one of {choices} "
                      f"or a class number 0–{len(labels) - 1}.")


def read_cases(name: str, source: str | Path, model: LoadedModel, region_pattern: str | None) -> tuple[CaseSet, CaseSource]:
    """The cases of ``source`` (folder or CSV list) prepared for ``model``.

    Raises :class:`ReviseError` when the source has no cases, when a region pattern
    matches no file next to any case, or when a case cannot be read or prepared.
    """
    from viewer.io import load_scan

    root = Path(source).absolute()
    try:
        cases, notes = find_cases([root], region_pattern)
    except InputError as exc:
        raise ReviseError(f"--{name}: {exc}") from None
    if root.is_dir():
        cases = [c for c in cases if not _is_lesion_mask(c.path, cases)]
    if not cases:
        raise ReviseError(f"--{name} {source}: no scans found; give a folder of scans or a CSV list with "
                          "'path' and 'label' columns.")
    labels = _labels(root, cases, model.labels)
    regions = [resolve_mask(c.path, region_pattern) if region_pattern else None for c in cases]
    if region_pattern and not any(r.exists() for r in regions):
        raise ReviseError(f"--region-pattern {region_pattern!r} matches no file next to the {len(cases)} case(s) of "
                          f"{source} (e.g. it looked for {regions[0].name} beside {cases[0].path.name}).")
    xs, masks = [], []
    for case, region in zip(cases, regions):
        try:
            scan = load_scan(case.path)
            x, _ = model.prepare(scan)
            if x.shape[0] != 1:
                raise ReviseError(f"{case.path.name} gives {x.shape[0]} model inputs (a {model.spatial_dims}D model "
                                  f"on a {'3D' if not scan.is_2d else '2D'} scan); revise needs one input per case.")
            xs.append(x)
            masks.append(_region(load_scan(region).data, scan.shape, x) if region is not None and region.exists()
                         else torch.zeros((1, 1) + tuple(x.shape[2:]), dtype=torch.bool))
        except ReviseError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable case stops the run with its name
            raise ReviseError(f"--{name}: case {case.path.name} cannot be used: {exc}") from exc
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) > 1:
        raise ReviseError(f"--{name}: the cases give model inputs of different shapes {sorted(shapes)}; "
                          "the model card needs a fixed input size.")
    region = torch.cat(masks) if region_pattern else None
    y = torch.tensor(labels, dtype=torch.long)
    missing = sum(1 for r in regions if r is not None and not r.exists())
    if missing:
        notes.append(f"{missing} case(s) of {source} have no region file; their region is empty.")
    with_region = int(region.flatten(1).any(1).sum()) if region is not None else 0
    info = CaseSource(name, str(source), len(cases), int((y >= 0).sum()), with_region, tuple(notes))
    return CaseSet(name, torch.cat(xs), y, region, tuple(c.id for c in cases)), info


def _is_lesion_mask(path: Path, cases) -> bool:
    s = stem(path)
    return any(s.endswith(h) and any(c.path.parent == path.parent and stem(c.path) == s[: -len(h)] for c in cases)
               for h in MASK_HINTS)


def _labels(root: Path, cases, labels: list[str]) -> list[int]:
    if root.is_dir():
        out = []
        for case in cases:
            parts = case.path.relative_to(root).parts
            out.append(label_index(parts[0], labels, f"folder {parts[0]!r}") if len(parts) > 1 else UNLABELLED)
        return out
    text = root.read_bytes().decode("utf-8-sig")  # find_cases has checked that this is a plain text CSV
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    by_path: dict[Path, str] = {}
    for n, row in enumerate(rows, start=2):
        cells = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if cells.get("label"):
            p = Path(cells["path"]).expanduser()
            by_path[(p if p.is_absolute() else root.parent / p).resolve()] = cells["label"]
    return [label_index(by_path[c.path.resolve()], labels, f"{root.name}, case {c.id}")
            if c.path.resolve() in by_path else UNLABELLED for c in cases]


def _region(data: np.ndarray, scan_shape: tuple[int, ...], x: torch.Tensor) -> torch.Tensor:
    """A region on the scan grid → a bool mask on the model input's grid (1, 1, *spatial)."""
    if tuple(data.shape) != tuple(scan_shape):
        raise ReviseError(f"the region mask has shape {tuple(data.shape)} but the scan {tuple(scan_shape)}; "
                          "a region must be on the scan's own grid.")
    m = torch.from_numpy(np.asarray(data) > 0)
    m = m[:, :, 0] if x.dim() == 4 else m
    m = m[None, None].float()
    if tuple(m.shape[2:]) != tuple(x.shape[2:]):
        m = F.interpolate(m, size=tuple(x.shape[2:]), mode="nearest")
    return m > 0.5
