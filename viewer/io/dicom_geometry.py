"""Turning DICOM slice positions into one regular voxel grid.

Slices are ordered by ImagePositionPatient projected on the slice normal
(row direction × column direction) — never by InstanceNumber or file name, which
scanners and anonymisers number freely. Spacing comes from the positions, never from
SliceThickness (slices may overlap or have gaps).

Policy for irregular stacks (documented for users in ``load_scan``):

* duplicate positions, every position equally often (echoes, time points, two
  acquisitions at the same places): the first volume is taken — slices ordered within
  a position by temporal index / acquisition / echo / instance number — with a note;
* duplicate positions, unequal counts: :class:`InconsistentSeriesError`;
* gaps differing from the median by more than ``max(0.01 mm, 1 %)``: the stack is
  resampled linearly along the slice axis onto the median spacing, with a note in
  ``meta["notes"]`` (one missing slice is interpolated, never silently);
* a gap larger than 3 × the median (several slices missing, or two separate slabs):
  :class:`InconsistentSeriesError`, because most of such a volume would be invented.

The affine's slice column is ``(last position − first position) / (n − 1)``, so the
world position of every slice is exact even for gantry-tilted (sheared) stacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from viewer.io.errors import InconsistentSeriesError
from viewer.io.orientation import LPS_TO_RAS

DUPLICATE_TOL_MM = 0.01
UNIFORM_ABS_TOL_MM = 0.01
UNIFORM_REL_TOL = 0.01
MAX_GAP_FACTOR = 3.0


@dataclass
class StackPlan:
    """Where each decoded slice goes, and the grid's voxel→RAS affine.

    ``order`` lists input slice indices from first to last along the normal.
    ``positions`` are their distances along the normal (mm). If ``targets`` is not None
    the slices must be resampled linearly from ``positions`` onto ``targets``.
    ``affine`` maps (column, row, slice) of the *output* grid to RAS mm.
    """

    order: np.ndarray
    positions: np.ndarray
    affine: np.ndarray
    targets: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def n_out(self) -> int:
        return len(self.targets) if self.targets is not None else len(self.order)


def slice_normal(iop: np.ndarray) -> np.ndarray:
    """Unit normal (row direction × column direction) of ImageOrientationPatient."""
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:6], float)
    normal = np.cross(row, col)
    norm = np.linalg.norm(normal)
    if not np.isfinite(norm) or norm < 1e-6:
        raise InconsistentSeriesError(
            f"ImageOrientationPatient {list(np.round(iop, 4))} is degenerate (row and column directions "
            "are parallel or zero); the file's geometry is broken. Re-export the series from the scanner/PACS."
        )
    return normal / norm


def same_orientation(a: np.ndarray, b: np.ndarray, tol: float = 1e-3) -> bool:
    return bool(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float))) <= tol)


def grid_affine(
    iop: np.ndarray, spacing_rc: tuple[float, float], origin: np.ndarray, slice_vec: np.ndarray
) -> np.ndarray:
    """Voxel (column i, row j, slice k) → RAS affine from DICOM's LPS geometry."""
    row_dir, col_dir = np.asarray(iop[:3], float), np.asarray(iop[3:6], float)
    dr, dc = spacing_rc
    lps = np.eye(4)
    lps[:3, 0] = row_dir * dc  # moving along a row = next column
    lps[:3, 1] = col_dir * dr  # moving down a column = next row
    lps[:3, 2] = slice_vec
    lps[:3, 3] = origin
    return LPS_TO_RAS @ lps


def plan_stack(
    positions: np.ndarray,
    iop: np.ndarray,
    spacing_rc: tuple[float, float],
    tiebreak: list[tuple] | None = None,
    single_thickness: float = 1.0,
) -> StackPlan:
    """Sort slices, check their spacing and build the affine (see module docstring).

    ``positions`` is ``(n, 3)`` ImagePositionPatient (LPS mm); ``iop`` the common
    ImageOrientationPatient; ``spacing_rc`` PixelSpacing (between rows, between columns);
    ``tiebreak`` per slice sort keys used to pick the first volume when positions repeat;
    ``single_thickness`` the slice axis length for a one-slice stack.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    normal = slice_normal(iop)
    along = positions @ normal
    keys = tiebreak if tiebreak is not None else [(i,) for i in range(len(along))]
    order = np.array(sorted(range(len(along)), key=lambda i: (along[i], keys[i])), dtype=np.int64)
    notes: list[str] = []

    if len(order) > 1:
        order, notes = _drop_repeats(order, along, keys, notes)
    d = along[order]
    if len(order) == 1:
        affine = grid_affine(iop, spacing_rc, positions[order[0]], normal * single_thickness)
        return StackPlan(order, d, affine, None, notes)

    gaps = np.diff(d)
    median = float(np.median(gaps))
    slice_vec = (positions[order[-1]] - positions[order[0]]) / (len(order) - 1)
    off_normal = np.linalg.norm(slice_vec - normal * float(slice_vec @ normal))
    if off_normal > 1e-3 * max(median, 1e-6) and off_normal > 1e-4:
        angle = float(np.degrees(np.arctan2(off_normal, abs(float(slice_vec @ normal)))))
        notes.append(
            f"The slices were acquired tilted by {angle:.2f}° (gantry tilt). Each slice keeps its true position "
            "in the patient, so positions and distances are correct, but the volume is shown as acquired, "
            "not straightened."
        )
    tol = max(UNIFORM_ABS_TOL_MM, UNIFORM_REL_TOL * median)
    if np.all(np.abs(gaps - median) <= tol):
        affine = grid_affine(iop, spacing_rc, positions[order[0]], slice_vec)
        return StackPlan(order, d, affine, None, notes)

    worst = int(np.argmax(gaps))
    if gaps[worst] > MAX_GAP_FACTOR * median:
        raise InconsistentSeriesError(
            f"Slices are missing: a gap of {gaps[worst]:.2f} mm between slice positions {d[worst]:.2f} and "
            f"{d[worst + 1]:.2f} mm, where slices are otherwise {median:.2f} mm apart. The series is incomplete "
            "or holds separate slabs; copy the missing files into the folder, or split the slabs into "
            "separate folders and open each."
        )
    n_out = int(round((d[-1] - d[0]) / median)) + 1
    targets = d[0] + median * np.arange(n_out)
    targets[-1] = min(targets[-1], d[-1])
    # in-plane origin moves along the fitted slice line, so the affine stays exact at the ends
    step = (positions[order[-1]] - positions[order[0]]) / (d[-1] - d[0]) * median
    affine = grid_affine(iop, spacing_rc, positions[order[0]], step)
    notes.append(
        f"The slices are not evenly spaced (gaps of {gaps.min():.3f} to {gaps.max():.3f} mm, usually "
        f"{median:.3f} mm; a slice may be missing). The scan was resampled onto {n_out} evenly spaced slices "
        f"{median:.3f} mm apart: slices that fall between acquired ones are interpolated from their two "
        "neighbours, not measured."
    )
    return StackPlan(order, d, affine, targets, notes)


def _drop_repeats(order: np.ndarray, along: np.ndarray, keys: list[tuple], notes: list[str]):
    d = along[order]
    starts = np.concatenate([[True], np.diff(d) > DUPLICATE_TOL_MM])
    if starts.all():
        return order, notes
    group_starts = np.flatnonzero(starts)
    counts = np.diff(np.append(group_starts, len(order)))
    if counts.min() != counts.max():
        where = float(d[group_starts[int(np.argmax(counts))]])
        raise InconsistentSeriesError(
            f"Several images share slice positions, unevenly ({counts.min()} to {counts.max()} per position, "
            f"e.g. {counts.max()} at {where:.2f} mm along the normal): the folder mixes acquisitions of one "
            "series, or holds copies of some files. Remove the duplicates (or move each acquisition to its "
            "own folder) and open it again."
        )
    # equal counts: keep the first image of each position, by the tie-break keys (already sorted)
    kept = order[group_starts]
    notes.append(
        f"The series holds {int(counts[0])} images at each of {len(group_starts)} slice positions (echoes, time "
        "points or repeated acquisitions); showing only the first image at each position (the first volume)."
    )
    return kept, notes


def resample_slices(src: np.ndarray, positions: np.ndarray, targets: np.ndarray, out: np.ndarray) -> None:
    """Linear interpolation along axis 0 of ``src`` (slices at ``positions``) into ``out[k]``."""
    upper = np.clip(np.searchsorted(positions, targets, side="right"), 1, len(positions) - 1)
    lower = upper - 1
    span = positions[upper] - positions[lower]
    w = np.clip((targets - positions[lower]) / np.where(span > 0, span, 1.0), 0.0, 1.0)
    for k in range(len(targets)):
        a, b, t = int(lower[k]), int(upper[k]), np.float32(w[k])
        out[k] = src[a] * (np.float32(1.0) - t) + src[b] * t
