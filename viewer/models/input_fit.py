"""Does this scan fit the model? Checks of the prepared input against the model card.

A model answers with a confident-looking probability whatever it is given: a 0–255 PNG
fed to a model trained on [0, 1] intensities, a blank (constant) image, a volume whose
voxels are much coarser than the training grid. Each check here turns such a mismatch
into a sentence that the UI shows next to the prediction and the batch command writes
into ``summary.csv`` (``input_warnings``). The checks cost a few passes over arrays that
:func:`viewer.models.prepare.prepare_scan` has in memory anyway.

Thresholds (documented here because they decide what a user is told):

* **Clipped at the top** — more than :data:`TOP_CLIP_WARN` (20 %) of the input voxels lie
  above the top of the model's range. Bright structures (bone in a brain window) are
  clipped in training data too, but when a fifth of the image is saturated the
  intensities are probably in other units (0–255 instead of 0–1, raw instead of HU).
* **Clipped at the bottom** — more than :data:`BOTTOM_CLIP_WARN` (75 %). The low end is
  usually background (air, outside the body, zero padding), which fills half of many
  fields of view and is clipped in training as well, so only an image that is mostly
  below the range is flagged.
* **Little left inside the range** — fewer than :data:`INSIDE_WARN` (20 %) of the voxels
  inside the range, whichever end the rest went to.
* **NaN / Inf** — more than :data:`NONFINITE_WARN` (0.1 %) of the voxels non-finite (they
  become 0 for the model); fewer are a note (:func:`nonfinite_note`), and a scan without a
  single finite voxel is an error, not a warning.
* **Constant input** — the prepared input has one value everywhere.
* **Spacing** — only when the card gives ``input.spacing``: a scan more than
  :data:`COARSE_SPACING_RATIO` (2×) coarser than the card on some axis is upsampled, so
  the model sees interpolated detail it never saw in training. (A card with ``size``
  resamples whatever it gets to that size and states no spacing to compare with.)
* **Orientation** — cards are in RAS and scans are read in the closest RAS voxel order;
  a scan whose voxel axes are more than :data:`OBLIQUE_DEGREES` (20°) away from the
  patient axes reaches the model tilted by that much.

The range is the card's ``input.input_range`` or, without one, the range a clipping
normalisation produces (window / min–max with ``clip``: [0, 1]); with neither (z-score,
``none``) there is no range to check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viewer.models.card import InputSpec
from viewer.models.errors import ModelLoadError

TOP_CLIP_WARN = 0.20
BOTTOM_CLIP_WARN = 0.75
INSIDE_WARN = 0.20
NONFINITE_WARN = 0.001
COARSE_SPACING_RATIO = 2.0
OBLIQUE_DEGREES = 20.0


@dataclass(frozen=True)
class InputFit:
    """Measurements of one prepared input and the warnings they raise.

    Fractions are of the scan's voxels after normalisation, before resampling to the
    model grid (resampling mixes neighbours but does not change which share of the
    image is out of range). ``value_range`` is the prepared input's (min, max), which is
    also what LRP's ZBox rule uses when the card gives no ``input_range``.
    """

    input_range: tuple[float, float] | None
    above: float = 0.0
    below: float = 0.0
    nonfinite: int = 0
    voxels: int = 0
    value_range: tuple[float, float] = (0.0, 0.0)
    warnings: tuple[str, ...] = ()


def reference_range(spec: InputSpec) -> tuple[float, float] | None:
    """The value range the model was made for (see the module docstring), or None."""
    if spec.input_range is not None:
        return (float(spec.input_range[0]), float(spec.input_range[1]))
    return spec.normalize.default_range()


def count_nonfinite(data: np.ndarray) -> int:
    """Number of NaN/Inf voxels; :class:`ModelLoadError` when no voxel is finite."""
    finite = int(np.count_nonzero(np.isfinite(data)))
    if data.size and finite == 0:
        raise ModelLoadError(
            f"The scan has no finite values: all {data.size} voxels are NaN or infinite, so there is nothing "
            "for the model to look at. Check the file (a failed reconstruction or conversion writes such "
            "volumes) and open the original."
        )
    return int(data.size - finite)


def nonfinite_note(nonfinite: int, voxels: int) -> str:
    """The sentence about NaN/Inf voxels (a warning above :data:`NONFINITE_WARN`, else a note)."""
    return f"{nonfinite} voxels ({_percent(nonfinite / max(voxels, 1))}) are NaN or infinite; the model sees 0 there."


def _percent(fraction: float) -> str:
    """A share as a reader should see it: never "100 %" for less than all, never "0 %" for some."""
    p = 100.0 * fraction
    if p >= 99.5 and fraction < 1.0:
        return f"{min(p, 99.9):.1f} %"
    return f"{p:.0f} %" if p >= 1 or p == 0 else f"{p:.2g} %"


def out_of_range(normalised: np.ndarray, spec: InputSpec) -> tuple[float, float]:
    """Fractions of ``normalised`` (the scan after the card's normalisation, before its
    clip) above and below the model's range; (0, 0) when there is no range."""
    rng = reference_range(spec)
    n = int(normalised.size)
    if rng is None or not n:
        return 0.0, 0.0
    lo, hi = rng
    tol = 1e-6 * (hi - lo)
    return float(np.count_nonzero(normalised > hi + tol)) / n, float(np.count_nonzero(normalised < lo - tol)) / n


def check_input(
    above: float,
    below: float,
    voxels: int,
    prepared_min: float,
    prepared_max: float,
    spec: InputSpec,
    nonfinite: int,
    spacing: tuple[float, ...] | None = None,
    affine: np.ndarray | None = None,
) -> InputFit:
    """The :class:`InputFit` of one input: ``above``/``below`` from :func:`out_of_range`,
    ``voxels`` the scan's voxel count, the prepared input's extremes, the number of
    NaN/Inf voxels, and the scan's ``spacing`` and ``affine`` (None for a picture without
    geometry, whose spacing and orientation mean nothing).
    """
    rng = reference_range(spec)
    n = int(voxels)
    warnings: list[str] = []
    clip = spec.normalize.default_range()  # None unless the normalisation clips
    if rng is not None and n:
        lo, hi = rng
        fate_hi = f"clipped to {hi:g}" if clip is not None and clip[1] == hi else "not clipped"
        fate_lo = f"clipped to {lo:g}" if clip is not None and clip[0] == lo else "not clipped"
        if above > TOP_CLIP_WARN:
            warnings.append(
                f"{_percent(above)} of the model input is above the top of its range [{lo:g}, {hi:g}] ({fate_hi}): "
                "the scan's intensities probably do not match what the model was trained on "
                "(other units or scaling, e.g. 0–255 instead of 0–1)."
            )
        if below > BOTTOM_CLIP_WARN:
            warnings.append(
                f"{_percent(below)} of the model input is below the bottom of its range [{lo:g}, {hi:g}] ({fate_lo}): "
                "the model sees an almost empty image."
            )
        inside = 1.0 - above - below
        if inside < INSIDE_WARN and above <= TOP_CLIP_WARN and below <= BOTTOM_CLIP_WARN:
            warnings.append(
                f"Only {_percent(inside)} of the model input lies inside its range [{lo:g}, {hi:g}] "
                f"({_percent(above)} above, {_percent(below)} below): the intensities do not match the model's."
            )
    if nonfinite and nonfinite > NONFINITE_WARN * max(n, 1):
        warnings.append(nonfinite_note(nonfinite, n))
    scale = max(abs(prepared_max), abs(prepared_min), (rng[1] - rng[0]) if rng else 0.0, 1e-30)
    if prepared_max - prepared_min <= 1e-6 * scale:
        warnings.append(
            f"The model input is constant (every value is {prepared_min:.4g}): the prediction says nothing "
            "about this image."
        )
    if spacing is not None and spec.spacing is not None:
        dims = len(spec.spacing)
        ratios = [float(s) / float(t) for s, t in zip(spacing[:dims], spec.spacing) if t > 0]
        if ratios and max(ratios) > COARSE_SPACING_RATIO:
            have = " × ".join(f"{float(s):.3g}" for s in spacing[:dims])
            want = " × ".join(f"{float(t):.3g}" for t in spec.spacing)
            warnings.append(
                f"The scan's voxels ({have} mm) are up to {max(ratios):.1f}× coarser than the model's "
                f"({want} mm): the model sees interpolated detail it was not trained on."
            )
    if affine is not None:
        angle = obliquity_degrees(affine)
        if angle > OBLIQUE_DEGREES:
            warnings.append(
                f"The scan is oblique: its voxel axes are up to {angle:.0f}° from the patient axes, and the model "
                f"(orientation {spec.orientation}) sees the anatomy tilted by that much."
            )
    return InputFit(rng, above, below, int(nonfinite), n, (float(prepared_min), float(prepared_max)),
                    tuple(warnings))


def obliquity_degrees(affine: np.ndarray) -> float:
    """Largest angle (degrees) between a voxel axis and the world axis it is closest to."""
    m = np.asarray(affine, dtype=np.float64)[:3, :3]
    norms = np.linalg.norm(m, axis=0)
    if not np.all(norms > 0):
        return 0.0
    cosines = np.abs(m / norms).max(axis=0)
    return float(np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0))).max())
