"""How things are drawn: overlay settings per panel, window/level, view conventions.

Display state never triggers recomputation of an explanation, so it lives apart from
the explanation requests. All classes are frozen: the session replaces them whole, and
the UI can compare old and new values to redraw only what changed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from viewer.io import colormaps

LIMIT_MODES = ("percentile", "fixed")
SIGNS = ("both", "positive", "negative")
LAYOUTS = ("grid", "one-large", "row")


class _Settings:
    """Shared conveniences of the frozen settings classes."""

    def with_(self, **changes: Any):  # type: ignore[no-untyped-def]
        """A copy with some fields changed (validated like a new instance)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):  # type: ignore[no-untyped-def]
        """Build from plain values (a session file); unknown keys are ignored so newer files open."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass(frozen=True)
class OverlaySettings(_Settings):
    """How one panel's relevance is drawn over the scan.

    The colour limit is symmetric (zero is always the middle colour) and by default
    follows a high percentile of |relevance| so that a few extreme voxels do not wash
    out the rest; ``limit_mode="fixed"`` keeps it constant to compare cases fairly.
    ``threshold`` is a fraction of the limit below which voxels are transparent.
    """

    colormap: str = colormaps.DEFAULT
    limit_mode: str = "percentile"
    percentile: float = 99.5
    fixed_limit: float = 1.0
    opacity: float = 0.6
    threshold: float = 0.0
    sign: str = "both"
    visible: bool = True

    def __post_init__(self) -> None:
        if self.colormap not in colormaps.NAMES:
            raise ValueError(f"Unknown colormap {self.colormap!r}; choose one of {', '.join(colormaps.NAMES)}.")
        if self.limit_mode not in LIMIT_MODES:
            raise ValueError(f"limit_mode must be one of {LIMIT_MODES}, got {self.limit_mode!r}.")
        if not 0.0 < float(self.percentile) <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {self.percentile}.")
        if not (np.isfinite(self.fixed_limit) and self.fixed_limit > 0):
            raise ValueError(f"fixed_limit must be a positive number, got {self.fixed_limit}.")
        if not 0.0 <= float(self.opacity) <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {self.opacity}.")
        if not 0.0 <= float(self.threshold) < 1.0:
            raise ValueError(f"threshold must be a fraction in [0, 1), got {self.threshold}.")
        if self.sign not in SIGNS:
            raise ValueError(f"sign must be one of {SIGNS}, got {self.sign!r}.")

    def limit_for(self, values: np.ndarray) -> float:
        """The symmetric colour limit for ``values`` under these settings."""
        if self.limit_mode == "fixed":
            return float(self.fixed_limit)
        return colormaps.symmetric_limit(values, self.percentile)


@dataclass(frozen=True)
class WindowLevel(_Settings):
    """Grey-value window of the scan: ``centre`` and ``width`` in data units (HU for CT)."""

    centre: float
    width: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.centre) and np.isfinite(self.width) and self.width > 0):
            raise ValueError(f"A window needs a finite centre and a positive width, got ({self.centre}, {self.width}).")
        object.__setattr__(self, "centre", float(self.centre))
        object.__setattr__(self, "width", float(self.width))

    @property
    def low(self) -> float:
        return self.centre - self.width / 2.0

    @property
    def high(self) -> float:
        return self.centre + self.width / 2.0

    @staticmethod
    def for_scan(scan: Any) -> "WindowLevel":
        """The file's window when it has one, otherwise a robust percentile window."""
        return WindowLevel(*scan.display_window())


# Radiology's standard CT windows (centre, width) in HU.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "CT brain": (40.0, 80.0),
    "CT lung": (-600.0, 1500.0),
    "CT bone": (400.0, 1800.0),
    "CT soft tissue": (50.0, 400.0),
    "CT abdomen": (60.0, 400.0),
}
DEFAULT_PRESET = "Default"
MR_AUTO = "MR auto"
# MR intensities have no physical unit, so "auto" spans robust percentiles of the volume.
MR_AUTO_PERCENTILES = (1.0, 99.0)


def window_presets(modality: str) -> list[str]:
    """Window presets that make sense for a modality; "Default" (the file's window) is always last."""
    mod = (modality or "").upper()
    if mod == "CT":
        return [*WINDOW_PRESETS, DEFAULT_PRESET]
    if mod in ("MR", "MRI"):
        return [MR_AUTO, DEFAULT_PRESET]
    return [DEFAULT_PRESET]


def window_for_preset(name: str, scan: Any) -> WindowLevel:
    """The window a preset stands for on ``scan``; ValueError for an unknown name."""
    if name in WINDOW_PRESETS:
        return WindowLevel(*WINDOW_PRESETS[name])
    if name == MR_AUTO:
        return WindowLevel(*scan.robust_window(*MR_AUTO_PERCENTILES))
    if name == DEFAULT_PRESET:
        return WindowLevel.for_scan(scan)
    raise ValueError(f"Unknown window preset {name!r}; choose one of {', '.join([*WINDOW_PRESETS, MR_AUTO, DEFAULT_PRESET])}.")


@dataclass(frozen=True)
class ViewSettings(_Settings):
    """Conventions shared by all slice views.

    ``radiological=True`` draws the patient's right on the screen's left, as radiologists
    read images; False is the neurological convention. ``crosshair_gap`` leaves the
    crosshair's centre open so it never hides the voxel it points at; ``link_zoom`` gives
    the three views one scale (millimetres per screen pixel) when one of them is zoomed.
    """

    radiological: bool = True
    layout: str = "grid"
    show_crosshair: bool = True
    mask_outline: bool = True
    crosshair_gap: bool = True
    link_zoom: bool = False
    mask_opacity: float = 1.0

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}.")
        if not 0.0 <= float(self.mask_opacity) <= 1.0:
            raise ValueError(f"mask_opacity must be in [0, 1], got {self.mask_opacity}.")
