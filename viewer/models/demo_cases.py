"""Synthetic lesion cases for the demo: a healthy brain template plus a smooth blob.

The demo task is "is there a lesion, and in which hemisphere?" (no lesion / lesion
left / lesion right), chosen so a reader can see at a glance whether an explanation
points at the right place. The same generator builds the training data
(resources/build_demo.py), the shipped demo cases and the fresh cases the tests
score the shipped models on, with different seeds.

Orientation: scans are RAS+, so voxel axis 0 grows towards the patient's **Right**;
a lesion in the left hemisphere has world x < 0, i.e. a small axis-0 index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viewer.io.scan import Scan

LABELS = ("no lesion", "lesion left", "lesion right")
SIDES = (None, "left", "right")  # index = class
MIN_MIDLINE_MM = 12.0  # lesion centres keep this far from the midline so the side is unambiguous
# Lesion radii: at 4 mm voxels a 10–22 mm lesion spans 5–11 voxels, large enough against the
# network's receptive field that an explanation on the lesion is measurably on it.
RADIUS_MM = (10.0, 22.0)
# The mask covers the blob's visible extent: every voxel where the profile blends in at least
# this fraction of the lesion (the soft edge is still plainly visible there).
MASK_LEVEL = 0.2


@dataclass(frozen=True)
class Lesion:
    """A smooth ellipsoidal blob whose core takes the intensity ``value``.

    Intensities are on the template's scale (white matter ≈ 0.9, grey matter ≈ 0.55,
    CSF ≈ 0.2): a bright lesion (``value`` > 1) stands out from every normal tissue, a
    dark one (``value`` ≈ 0.1–0.3) looks like fluid where no fluid should be.
    ``strength`` (0–1) blends the core between tissue and ``value``.
    """

    center_mm: tuple[float, float, float]
    radius_mm: float
    value: float
    strength: float = 1.0
    stretch: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def side(self) -> str:
        return "left" if self.center_mm[0] < 0 else "right"


@dataclass(frozen=True)
class Template:
    """The healthy template volume and where lesions may be placed (brain tissue)."""

    scan: Scan
    tissue: np.ndarray  # bool, scan.shape

    @classmethod
    def read(cls, image: str | Path, tissue: str | Path) -> "Template":
        """Read the template written by resources/build_demo.py (RAS NIfTI, float32 / uint8)."""
        import nibabel as nib  # the build script runs before any other reader matters; keep it minimal

        img = nib.as_closest_canonical(nib.load(str(image)))
        msk = nib.as_closest_canonical(nib.load(str(tissue)))
        data = np.asarray(img.dataobj, dtype=np.float32)
        spacing = tuple(float(s) for s in img.header.get_zooms()[:3])
        scan = Scan(data, img.affine, spacing, modality="MR", source="MNI152 2009 template (demo)")
        return cls(scan, np.asarray(msk.dataobj) > 0)


def class_of(lesion: Lesion | None) -> int:
    """Class index: 0 no lesion, 1 lesion left, 2 lesion right."""
    return 0 if lesion is None else (1 if lesion.side == "left" else 2)


def random_lesion(template: Template, rng: np.random.Generator, side: str) -> Lesion:
    """A lesion of random size, contrast and position inside tissue of one hemisphere."""
    scan = template.scan
    ijk = np.argwhere(template.tissue)
    xyz = scan.voxel_to_world(ijk)
    ok = xyz[:, 0] < 0 if side == "left" else xyz[:, 0] > 0
    radius = float(rng.uniform(RADIUS_MM[0], RADIUS_MM[1]))
    # large lesions keep their centre further from the midline so they stay in one hemisphere
    ok &= np.abs(xyz[:, 0]) >= max(MIN_MIDLINE_MM, 0.8 * radius)
    center = xyz[ok][rng.integers(ok.sum())]
    value = float(rng.uniform(1.2, 1.45)) if rng.random() < 0.5 else float(rng.uniform(0.1, 0.3))
    strength = float(rng.uniform(0.7, 1.0))
    stretch = tuple(float(s) for s in rng.uniform(0.75, 1.3, size=3))
    return Lesion(tuple(float(c) for c in center), radius, value, strength, stretch)  # type: ignore[arg-type]


def make_case(
    template: Template,
    lesion: Lesion | None,
    rng: np.random.Generator,
    noise: float | None = None,
) -> tuple[Scan, np.ndarray]:
    """A new scan (template + lesion + scanner-like variation) and its lesion mask (uint8).

    Variation: a global gain, a smooth multiplicative bias field and Gaussian noise,
    so a model cannot solve the task by matching the template voxel for voxel.
    """
    base = template.scan
    data = base.data.astype(np.float64).copy()
    mask = np.zeros(base.shape, dtype=np.uint8)
    if lesion is not None:
        profile = _blob(base, lesion)
        weight = lesion.strength * profile
        data = data * (1.0 - weight) + lesion.value * weight
        mask = ((profile >= MASK_LEVEL) & (base.data > 0.05 * float(base.data.max()))).astype(np.uint8)
    data *= rng.uniform(0.85, 1.15) * _bias_field(base.shape, rng)
    sigma = rng.uniform(0.01, 0.04) if noise is None else noise
    data += rng.normal(0.0, sigma * float(base.data.max()), size=data.shape)
    scan = Scan(
        data.astype(np.float32),
        base.affine.copy(),
        base.spacing,
        modality="MR",
        source="synthetic lesion case (MNI152 2009 template)",
    )
    return scan, mask


def random_cases(template: Template, n: int, seed: int) -> list[tuple[Scan, np.ndarray, int]]:
    """``n`` cases with balanced classes (in random order): (scan, mask, class index)."""
    rng = np.random.default_rng(seed)
    classes = np.resize(np.arange(3), n)
    rng.shuffle(classes)
    out = []
    for c in classes:
        side = SIDES[int(c)]
        lesion = random_lesion(template, rng, side) if side else None
        scan, mask = make_case(template, lesion, rng)
        out.append((scan, mask, int(c)))
    return out


def _blob(scan: Scan, lesion: Lesion) -> np.ndarray:
    """Soft-edged ellipsoid profile in [0, 1] (0.5 at distance = radius)."""
    grids = np.meshgrid(*[np.arange(n) for n in scan.shape], indexing="ij")
    ijk = np.stack(grids, axis=-1).reshape(-1, 3)
    xyz = scan.voxel_to_world(ijk).reshape(*scan.shape, 3)
    rel = (xyz - np.asarray(lesion.center_mm)) / np.asarray(lesion.stretch)
    dist = np.sqrt((rel**2).sum(axis=-1))
    edge = 0.25 * lesion.radius_mm
    profile = 1.0 / (1.0 + np.exp((dist - lesion.radius_mm) / max(edge, 1e-3) * 2.0))
    return profile


def _bias_field(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A smooth, low-order multiplicative field within about ±10 %."""
    coords = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    field = np.ones(shape)
    for c in coords:
        field += rng.uniform(-0.05, 0.05) * c + rng.uniform(-0.03, 0.03) * c * c
    return field
