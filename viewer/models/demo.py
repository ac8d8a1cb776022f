"""Where the bundled demo lives: cases, lesion masks, model cards.

The demo (rebuilt by resources/build_demo.py) is a 3-class task — no lesion / lesion
in the left hemisphere / lesion in the right hemisphere — on synthetic lesions in the
MNI152 template, with a small 3D model and a small 2D (axial slice) model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

try:
    from viewer.resources import DEMO
except ImportError:  # running from a source checkout that is not pip-installed
    DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo"

DEFAULT_CASE = "case_left_large"


@dataclass(frozen=True)
class DemoPaths:
    """The default demo: a clear lesion case, its mask, and the 3D and 2D model cards."""

    scan: Path
    mask: Path
    model3d: Path
    model2d: Path


def demo_paths(case: str = DEFAULT_CASE) -> DemoPaths:
    """Paths of the bundled demo; ``case`` picks another shipped case (see :func:`demo_cases`)."""
    return DemoPaths(
        scan=DEMO / f"{case}.nii.gz",
        mask=DEMO / f"{case}_mask.nii.gz",
        model3d=DEMO / "demo3d.toml",
        model2d=DEMO / "demo2d.toml",
    )


def demo_cases() -> list[str]:
    """Names of the shipped cases (``case_*.nii.gz`` that have a mask), sorted."""
    return sorted(
        p.name[: -len(".nii.gz")]
        for p in DEMO.glob("case*.nii.gz")
        if not p.name.endswith("_mask.nii.gz") and (DEMO / p.name.replace(".nii.gz", "_mask.nii.gz")).exists()
    )
