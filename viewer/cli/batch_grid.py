"""Which voxel grid the batch writes its maps on: the input file's own (default) or RAS.

Every reader turns a scan into RAS+ voxel order (:class:`viewer.io.Scan`), and the
engine's maps come back on that grid. Written as they are, maps of an LPS NIfTI are
aligned in world space but their arrays are flipped against the input's array, which
surprises anyone who compares the two with numpy. ``--grid input`` (the default) undoes
the reorientation — axis permutations and flips only, never resampling — so the map has
the input file's shape, voxel order and affine:

* NIfTI / Analyze / MGH: the file's own grid and affine, read again from its header;
* DICOM with patient geometry: the DICOM's own order — column i, row j, slices in
  the reader's order along the slice normal (as ITK and SimpleITK lay out a series) —
  with the matching voxel→RAS affine;
* pictures and DICOM without geometry: the scan's grid (they have no other).

When the input's grid cannot be worked out (a DICOM whose orientation cannot be
found again), the map is written on the RAS grid and the row's note says so.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viewer.io.orientation import LPS_TO_RAS, canonical_plan, spacing_of
from viewer.io.scan import Scan

GRIDS = ("input", "ras")
MAX_DICOM_HEADERS = 2000  # files of a folder read to find the loaded series' orientation again
_ALIGNED = 0.999  # |cos| between a DICOM direction and the scan axis it became


@dataclass(frozen=True)
class InputGrid:
    """The input's grid relative to the scan's RAS grid: source axis ``a`` is scan axis ``axes[a]``,
    reversed when ``flips[a]``; ``affine`` is the input grid's voxel→RAS affine."""

    axes: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    affine: np.ndarray
    codes: str

    def apply(self, on_scan: np.ndarray) -> np.ndarray:
        """A map on the scan's grid, laid out on the input's grid (a view; no resampling)."""
        source = np.asarray(on_scan).transpose(self.axes)
        return source[tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)]

    def like(self, scan: Scan, on_input: np.ndarray) -> Scan:
        """A scan describing the input grid, for writers that take the grid from a scan."""
        return Scan(data=np.asarray(on_input, dtype=np.float32), affine=self.affine, spacing=spacing_of(self.affine),
                    modality=scan.modality, meta=scan.meta, source=scan.source, planar=scan.planar, path=scan.path)


def input_grid(scan: Scan) -> tuple[InputGrid | None, str | None]:
    """How to put maps of ``scan`` on its input file's grid: (None, None) when that is the scan's own grid,
    (None, note) when it cannot be worked out."""
    if scan.planar or not scan.path:
        return None, None
    if scan.meta.get("original_orientation") == "RAS":
        return None, None  # the reader kept the file's grid as it was
    try:
        if "SOPClassUID" in scan.meta or "Modality" in scan.meta:  # DICOM attributes
            grid = _dicom_grid(scan)
        elif "original_orientation" in scan.meta:  # read by nibabel: NIfTI, Analyze, MGH
            grid = _nibabel_grid(scan)
        else:
            return None, None
    except Exception as exc:  # noqa: BLE001 - the map is still written, on the RAS grid
        grid = None
        reason = f" ({type(exc).__name__})"
    else:
        reason = ""
    if grid is None:
        return None, f"the input's own voxel grid could not be worked out{reason}; map written in RAS voxel order"
    if grid.axes == (0, 1, 2) and not any(grid.flips) and np.allclose(grid.affine, scan.affine, atol=1e-6):
        return None, None
    return grid, None


def _nibabel_grid(scan: Scan) -> InputGrid | None:
    import nibabel as nib

    img = nib.load(str(scan.path))  # the header only; the data stay on disk
    shape = tuple(int(s) for s in img.shape)
    grid = (shape + (1,))[:3] if len(shape) == 2 else shape[:3]
    plan = canonical_plan(img.affine, grid)  # the reader's own plan, so this is its exact inverse
    if plan.shape != scan.shape or not np.allclose(plan.affine, scan.affine, atol=1e-4):
        return None  # the file changed since it was read, or a reader we do not know
    return InputGrid(plan.axes, plan.flips, np.asarray(img.affine, dtype=np.float64), plan.source_codes)


def _dicom_grid(scan: Scan) -> InputGrid | None:
    """The DICOM's column/row/slice grid, from its ImageOrientationPatient and the scan's affine.

    Rows and columns of a stack map onto scan axes whose directions are exactly the
    DICOM's (reorientation only permutes and flips); slices run along the normal
    row × column, the order the reader sorts them in.
    """
    columns = scan.affine[:3, :3] / np.linalg.norm(scan.affine[:3, :3], axis=0)
    for iop in _orientations(Path(scan.path), scan.meta.get("SeriesInstanceUID")):
        ras = LPS_TO_RAS[:3, :3]
        row, col = ras @ iop[:3], ras @ iop[3:]
        normal = np.cross(row, col)
        i = int(np.argmax(np.abs(columns.T @ row)))
        j = int(np.argmax(np.abs(columns.T @ col)))
        k = 3 - i - j
        if i == j or min(abs(columns[:, i] @ row), abs(columns[:, j] @ col)) < _ALIGNED:
            continue
        if abs(columns[:, k] @ normal) < 0.5:  # another orientation of the same series (a localiser)
            continue
        axes = (i, j, k)
        flips = (bool(columns[:, i] @ row < 0), bool(columns[:, j] @ col < 0), bool(columns[:, k] @ normal < 0))
        return InputGrid(axes, flips, _source_affine(scan, axes, flips), _codes(scan.affine, axes, flips))
    return None


def _source_affine(scan: Scan, axes: tuple[int, int, int], flips: tuple[bool, bool, bool]) -> np.ndarray:
    """Voxel→RAS affine of the grid ``apply`` produces: the same world position for every voxel."""
    affine = np.eye(4)
    affine[:3, 3] = scan.affine[:3, 3]
    for a, (d, flip) in enumerate(zip(axes, flips)):
        column = scan.affine[:3, d]
        affine[:3, a] = -column if flip else column
        if flip:
            affine[:3, 3] += column * (scan.shape[d] - 1)
    return affine


def _codes(affine: np.ndarray, axes: tuple[int, int, int], flips: tuple[bool, bool, bool]) -> str:
    letters = ("LR", "PA", "IS")  # scan axes run towards R, A, S
    return "".join(letters[d][0 if f else 1] for d, f in zip(axes, flips))


def _orientations(path: Path, series_uid: str | None):
    """ImageOrientationPatient of the DICOM file, or of the files of ``series_uid`` in a folder."""
    files = [path] if path.is_file() else _files_below(path)
    for name in files[:MAX_DICOM_HEADERS]:
        ds = _header(name)
        if ds is None:
            continue
        if path.is_dir() and series_uid and str(ds.get("SeriesInstanceUID", "")) != str(series_uid):
            continue
        iop = _iop(ds)
        if iop is not None:
            yield iop


def _files_below(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, names in os.walk(folder):  # os.walk does not follow folder links: no cycles
        dirs.sort()
        found.extend(Path(root) / n for n in sorted(names))
        if len(found) >= MAX_DICOM_HEADERS:
            break
    return found


def _header(path: Path):
    import pydicom

    if not path.is_file():
        return None
    tags = ["SeriesInstanceUID", "ImageOrientationPatient", "SharedFunctionalGroupsSequence",
            "PerFrameFunctionalGroupsSequence"]
    try:
        with warnings.catch_warnings():  # pydicom's warnings may quote header values
            warnings.simplefilter("ignore")
            return pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=tags)
    except Exception:  # noqa: BLE001 - not DICOM, or damaged: look at the next file
        return None


def _iop(ds) -> np.ndarray | None:
    holders = [ds]
    for sequence in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(sequence)
        if groups:
            plane = groups[0].get("PlaneOrientationSequence")
            if plane:
                holders.append(plane[0])
    for holder in holders:
        value = holder.get("ImageOrientationPatient")
        try:
            iop = np.array([float(v) for v in value], dtype=np.float64) if value is not None else None
        except (TypeError, ValueError):
            continue
        if iop is not None and iop.shape == (6,) and np.all(np.isfinite(iop)):
            return iop
    return None
