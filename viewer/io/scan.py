"""The in-memory scan every layer shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(eq=False)
class Scan:
    """A scan on its own voxel grid, in RAS+ canonical voxel order.

    ``data`` is always three-dimensional, float32, shape ``(nx, ny, nz)``: axis 0 runs
    towards the patient's Right, axis 1 towards Anterior, axis 2 towards Superior (as
    nibabel's ``as_closest_canonical``), and ``affine`` maps voxel indices to world
    millimetres (RAS+). Values are in physical units (modality LUT applied, e.g. HU for CT).

    A 2D image has ``nz == 1``. ``planar`` is True when the file carries no patient
    geometry (PNG/JPEG/TIFF, a projection X-ray without orientation): then
    ``data[i, j, 0]`` is the pixel at column ``i`` and row ``H - 1 - j`` of the file, so
    a view that draws axis 0 to the right and axis 1 upwards shows the image exactly as
    the file does, and orientation letters are unknown.

    ``window`` is the file's default display window ``(centre, width)`` in data units,
    or None. ``meta`` holds non-identifying facts only (never patient name, ID, birth
    date, ...). ``source`` describes where the scan came from, e.g.
    ``"DICOM series 1.2.3… (120 files, CT)"``.
    """

    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    modality: str = "unknown"
    window: tuple[float, float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    planar: bool = False
    path: str | None = None

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise ValueError(f"Scan.data must be 3D (nx, ny, nz), got shape {self.data.shape}")
        if self.data.dtype != np.float32:
            self.data = self.data.astype(np.float32)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"Scan.affine must be 4x4, got {self.affine.shape}")
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def is_2d(self) -> bool:
        return self.data.shape[2] == 1

    def voxel_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """World (RAS mm) coordinates of voxel indices, shape (..., 3)."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_voxel(self, xyz: np.ndarray) -> np.ndarray:
        """Fractional voxel indices of world (RAS mm) coordinates, shape (..., 3)."""
        xyz = np.asarray(xyz, dtype=np.float64)
        inv = np.linalg.inv(self.affine)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def robust_window(self, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
        """``(centre, width)`` spanning the given percentiles; used when the file has no window."""
        finite = self.data[np.isfinite(self.data)]
        if finite.size == 0:
            return 0.0, 1.0
        lo, hi = np.percentile(finite, [low, high])
        width = float(hi - lo) or 1.0
        return float(lo + hi) / 2.0, width

    def display_window(self) -> tuple[float, float]:
        """The file's window if it has one, otherwise a robust percentile window."""
        return self.window if self.window is not None else self.robust_window()
