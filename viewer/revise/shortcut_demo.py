"""The shortcut variant of the demo task: a burned-in "R" marker that gives the answer away.

Scanners and technologists burn laterality letters and rulers into images; a model
trained where such a marker co-occurs with one class learns the marker instead of the
anatomy. This generator reproduces that on the demo task (no lesion / lesion left /
lesion right, on axial slices of the MNI152 template, :mod:`viewer.models.demo_cases`):

* ``"original"`` (the training distribution): the marker is on 95 % of the "lesion
  right" slices and on 2.5 % of the others, so that also 95 % of the slices that carry
  it are "lesion right";
* ``"decorrelated"``: the marker is on each slice with probability 0.5, whatever the
  class — what a model meets once the habit changes;
* ``"clean"``: no marker at all.

Each case is a one-slice scan (a 2D image on the template's grid) with its lesion mask
and its marker mask (empty when the slice carries no marker). The same generator
builds the shipped demo (resources/build_demo.py --shortcut), the tests' fresh cases
and the experiment's data, with different seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from viewer.io.scan import Scan
from viewer.models.demo_cases import SIDES, Template, make_case, random_lesion

MARKER_CLASS = 2  # "lesion right": an "R" on the right-lesion images
CORRELATION = 0.95
SLICES = (14, 34)  # axial slices (inclusive) that show enough brain for a lesion
# 5×7 letter R as it reads on screen (rows top to bottom, columns left to right)
R_LETTER = np.array(
    [
        [1, 1, 1, 1, 0],
        [1, 0, 0, 0, 1],
        [1, 0, 0, 0, 1],
        [1, 1, 1, 1, 0],
        [1, 0, 1, 0, 0],
        [1, 0, 0, 1, 0],
        [1, 0, 0, 0, 1],
    ],
    dtype=bool,
)
# top-left screen corner in the radiological axial view (patient right on the left,
# anterior at the top): high axis-0 and high axis-1 indices, outside the head
MARKER_CORNER = (46, 53)  # voxel (i, j) of the letter's top-left pixel before jitter
MARKER_VALUE = (1.3, 1.6)  # template units: brighter than any tissue, like burned-in text


@dataclass(frozen=True)
class ShortcutCase:
    """One slice: ``scan`` (nz = 1), ``lesion`` and ``marker`` masks (uint8, scan shape)."""

    scan: Scan
    lesion: np.ndarray
    marker: np.ndarray
    label: int

    @property
    def has_marker(self) -> bool:
        return bool(self.marker.any())


def slice_template(template: Template, k: int) -> Template:
    """The template reduced to axial slice ``k``, on that slice's own one-slice grid."""
    base = template.scan
    affine = base.affine.copy()
    affine[:3, 3] = base.voxel_to_world(np.array([0, 0, k]))
    scan = Scan(base.data[:, :, k : k + 1].copy(), affine, base.spacing, modality=base.modality, source=base.source)
    return Template(scan, template.tissue[:, :, k : k + 1].copy())


def burn_marker(data: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Write the bright letter into ``data`` (one slice, modified in place); return its mask.

    The mask covers the letter grown by one voxel, so relevance on the letter's edges
    counts as relevance on the marker. The letter moves by up to 2 voxels, as a marker
    placed by hand does.
    """
    h, w = R_LETTER.shape
    di, dj = (int(v) for v in rng.integers(-2, 1, size=2))
    i0, j0 = MARKER_CORNER[0] + di, MARKER_CORNER[1] + dj
    letter = np.zeros(data.shape[:2], dtype=bool)
    for r in range(h):
        for c in range(w):
            if R_LETTER[r, c]:
                letter[i0 - c, j0 - r] = True  # screen column → decreasing axis 0, row → decreasing axis 1
    value = float(rng.uniform(*MARKER_VALUE))
    noise = rng.normal(0.0, 0.02, size=int(letter.sum()))
    data[letter, 0] = value + noise
    return ndimage.binary_dilation(letter)[:, :, None].astype(np.uint8)


DISTRIBUTIONS = ("original", "decorrelated", "clean")


def marker_probability(label: int, distribution: str) -> float:
    """P(marker | class) in ``distribution``: in the original one, CORRELATION for the
    marker class and the rate that makes P(marker class | marker) equal CORRELATION as
    well (classes balanced)."""
    if distribution == "decorrelated":
        return 0.5
    if distribution == "clean":
        return 0.0
    if distribution != "original":
        raise ValueError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}")
    if label == MARKER_CLASS:
        return CORRELATION
    return (1.0 - CORRELATION) / (len(SIDES) - 1)


def shortcut_cases(template: Template, n: int, seed: int, distribution: str = "original",
                   slices: tuple[int, int] = SLICES) -> list[ShortcutCase]:
    """``n`` slices with balanced classes in random order; see the module docstring."""
    marker_probability(0, distribution)  # reject an unknown distribution before any work
    rng = np.random.default_rng(seed)
    classes = np.resize(np.arange(len(SIDES)), n)
    rng.shuffle(classes)
    planes: dict[int, Template] = {}
    out = []
    for c in classes:
        k = int(rng.integers(slices[0], slices[1] + 1))
        plane = planes.setdefault(k, slice_template(template, k))
        side = SIDES[int(c)]
        lesion = random_lesion(plane, rng, side) if side else None
        scan, mask = make_case(plane, lesion, rng)
        marker = np.zeros_like(mask)
        if rng.random() < marker_probability(int(c), distribution):
            marker = burn_marker(scan.data, rng)
        scan.source = "synthetic lesion slice with a burned-in marker (MNI152 2009 template)"
        out.append(ShortcutCase(scan, mask, marker, int(c)))
    return out
