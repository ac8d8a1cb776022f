"""Reorienting voxel grids to RAS+ canonical order without resampling.

Every reader ends with the same step: a voxel array plus a voxel→world affine in RAS
millimetres, to be put in the closest canonical order (axis 0 → Right, 1 → Anterior,
2 → Superior) by permuting and flipping axes only, as ``nibabel.as_closest_canonical``
does. Doing it here once, and *before* the pixels are read, lets the DICOM reader write
each slice straight into the final float32 array (no second copy of the volume).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel.orientations import aff2axcodes, inv_ornt_aff, io_orientation

# DICOM patient coordinates are LPS; NIfTI / Scan world coordinates are RAS.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Canonical:
    """How a voxel grid maps onto its RAS+ canonical grid.

    ``axes[a]`` is the canonical axis that source axis ``a`` becomes and ``flips[a]``
    whether it is reversed; ``shape`` and ``affine`` describe the canonical grid.
    """

    axes: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    shape: tuple[int, int, int]
    source_shape: tuple[int, int, int]
    affine: np.ndarray
    source_codes: str

    @property
    def is_identity(self) -> bool:
        return self.axes == (0, 1, 2) and not any(self.flips)

    def apply(self, source: np.ndarray) -> np.ndarray:
        """The canonical float32 array of a source-ordered array.

        Axis permutations are views; flips need one streaming copy that keeps the memory
        order (so a Fortran-ordered nibabel array stays cheap). The result never has
        negative strides (``torch.from_numpy`` rejects those) but need not be C-contiguous.
        """
        flipped = source[self.flip_index()]
        if any(self.flips) or flipped.dtype != np.float32:
            flipped = np.array(flipped, dtype=np.float32, order="K", copy=True)
        return self.from_flipped(flipped)

    def flip_index(self) -> tuple[slice, ...]:
        return tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)

    def from_flipped(self, flipped: np.ndarray) -> np.ndarray:
        """Canonical view of a source-ordered array whose flips are already applied."""
        return flipped.transpose(np.argsort(self.axes))

    def slice_buffer(self) -> np.ndarray:
        """An empty float32 buffer in slice-major memory order ``(k, j, i)`` of the source grid.

        Readers write source slice ``k`` (rows ``j``, columns ``i``) with :meth:`put_slice`,
        contiguously, and get the canonical view with :meth:`from_buffer` — no copy of
        the volume and no scattered writes.
        """
        return np.empty((self.source_shape[2], self.source_shape[1], self.source_shape[0]), dtype=np.float32)

    def put_slice(self, buffer: np.ndarray, k: int, plane: np.ndarray) -> None:
        """Store source slice ``k`` (``plane[j, i]``) into a :meth:`slice_buffer`."""
        n = buffer.shape[0]
        kk = n - 1 - k if self.flips[2] else k
        # reverse the destination, not the source: numpy then reads the source contiguously
        # and the int→float32 cast stays vectorised (about 4× faster for a 512² slice)
        buffer[kk][:: -1 if self.flips[1] else 1, :: -1 if self.flips[0] else 1] = plane

    def from_buffer(self, buffer: np.ndarray) -> np.ndarray:
        return self.from_flipped(buffer.transpose(2, 1, 0))


def canonical_plan(affine: np.ndarray, shape: tuple[int, int, int]) -> Canonical:
    """Plan the RAS+ reorientation of a grid of ``shape`` with voxel→RAS ``affine``.

    The axis assignment is nibabel's ``io_orientation`` (closest axis by the affine's
    direction cosines), so results agree with ``as_closest_canonical``; the new affine
    is ``affine @ inv_ornt_aff(...)``, so every voxel keeps its world position.
    """
    affine = np.asarray(affine, dtype=np.float64)
    ornt = io_orientation(affine)
    if np.isnan(ornt).any():
        # a degenerate affine (zero column): keep the grid as it is
        ornt = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
    axes = tuple(int(a) for a in ornt[:, 0])
    flips = tuple(bool(f < 0) for f in ornt[:, 1])
    new_shape = [0, 0, 0]
    for src, dst in enumerate(axes):
        new_shape[dst] = int(shape[src])
    new_affine = affine @ inv_ornt_aff(ornt, shape)
    codes = "".join(c or "?" for c in aff2axcodes(affine))
    source_shape = tuple(int(s) for s in shape)
    return Canonical(axes, flips, tuple(new_shape), source_shape, new_affine, codes)  # type: ignore[arg-type]


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel step along each axis in mm: the lengths of the affine's first three columns."""
    norms = np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
    return tuple(float(n) for n in norms)  # type: ignore[return-value]
