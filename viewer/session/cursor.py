"""The crosshair: one voxel shared by every view and every comparison panel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class Cursor:
    """A voxel index ``(i, j, k)`` on the scan grid, always inside the scan.

    Construct through :meth:`clamped` or :meth:`centre` so a click outside the volume or
    a restored session from another scan never points outside the data.
    """

    ijk: tuple[int, int, int]

    @staticmethod
    def clamped(ijk: Sequence[float], shape: Sequence[int]) -> "Cursor":
        """The nearest voxel inside ``shape`` (fractional indices are rounded)."""
        if len(ijk) != 3 or len(shape) != 3:
            raise ValueError(f"A cursor needs three indices and a 3D shape, got {tuple(ijk)} and {tuple(shape)}.")
        values = []
        for v, n in zip(ijk, shape):
            v = float(v)
            if not np.isfinite(v):
                v = 0.0
            values.append(int(min(max(int(round(v)), 0), int(n) - 1)))
        return Cursor((values[0], values[1], values[2]))

    @staticmethod
    def centre(shape: Sequence[int]) -> "Cursor":
        return Cursor.clamped([n // 2 for n in shape], shape)

    def moved(self, axis: int, delta: int, shape: Sequence[int]) -> "Cursor":
        """One slice (or ``delta`` slices) along ``axis``, stopping at the edges."""
        ijk = list(self.ijk)
        ijk[axis] += int(delta)
        return Cursor.clamped(ijk, shape)

    def world(self, scan: Any) -> np.ndarray:
        """The cursor's position in world millimetres (RAS+)."""
        return scan.voxel_to_world(np.asarray(self.ijk, dtype=np.float64))
