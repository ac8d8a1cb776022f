"""Which voxel-to-world matrix a NIfTI/Analyze/MGH file gets, and when none can be trusted.

nibabel gives the header's best matrix (sform, else qform, else one built from the
voxel sizes). A matrix with NaN or infinite entries, or a singular one (a zero voxel
size, two axes pointing the same way), says nothing reliable about where the voxels
lie or how large they are; loaded as is, it gives spacing 0, exports that other tools
reject, and "unexpected LinAlgError" deep in the display. So:

* a non-finite or singular best matrix is replaced by the header's other matrix
  (qform for sform and back) when that one is sound, with a note;
* a single-slice image whose slice axis alone has size 0 (2D files often store
  ``pixdim[3] = 0``) gets a 1 mm slice perpendicular to the image, with a note;
* otherwise the file is refused with :class:`CorruptFileError`, naming the problem.
"""

from __future__ import annotations

from typing import Any

import nibabel as nib
import numpy as np

from viewer.io.errors import CorruptFileError

# a matrix is singular when its smallest singular value is below this fraction of its largest
SINGULAR_RATIO = 1e-6


def checked_affine(img: Any, name: str, grid: tuple[int, int, int], notes: list[str]) -> np.ndarray:
    """A sound voxel → world matrix for ``img`` (see module docstring)."""
    candidates = [("voxel-to-world matrix", np.asarray(img.affine, dtype=np.float64))]
    header = img.header
    if isinstance(header, nib.Nifti1Header):  # also NIfTI-2
        sform_code, qform_code = int(header["sform_code"]), int(header["qform_code"])
        best = "sform" if sform_code > 0 else "qform" if qform_code > 0 else "voxel sizes (pixdim)"
        candidates = [(f"voxel-to-world matrix (its {best})", candidates[0][1])]
        if sform_code > 0 and qform_code > 0:
            try:
                candidates.append(("qform", np.asarray(header.get_qform(), dtype=np.float64)))
            except Exception:  # noqa: BLE001 - a broken quaternion is just not an alternative
                pass
    first_problem = ""
    for which, affine in candidates:
        problem, repaired, note = _soundness(affine, grid)
        if not problem:
            if first_problem:
                notes.append(
                    f"The file's {candidates[0][0]} is {first_problem}; its {which} was used instead. Check that "
                    "the scan's position and orientation look right."
                )
            if note:
                notes.append(note)
            return repaired
        first_problem = first_problem or problem
    raise CorruptFileError(
        f"{name}: its {candidates[0][0]} is {first_problem}, so where the voxels lie in the patient, and how "
        "large they are, is unknown. The header is damaged: write the scan again from the software that made it "
        "(or repair the sform/qform with nibabel or fslorient) and open it again."
    )


def _soundness(affine: np.ndarray, grid: tuple[int, int, int]) -> tuple[str, np.ndarray, str]:
    """(problem, affine to use, note): problem is "" when the matrix can be used."""
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        return "not a finite matrix (it contains NaN or infinite numbers)", affine, ""
    columns = affine[:3, :3]
    sizes = np.linalg.norm(columns, axis=0)
    largest = float(sizes.max())
    if largest == 0.0:
        return "all zeros", affine, ""
    zero = [a for a in range(3) if sizes[a] <= SINGULAR_RATIO * largest]
    note = ""
    if len(zero) == 1 and grid[zero[0]] == 1:
        a = zero[0]
        normal = np.cross(columns[:, (a + 1) % 3], columns[:, (a + 2) % 3])  # cyclic: a right-handed grid
        if np.linalg.norm(normal) > 0:
            affine = affine.copy()
            affine[:3, a] = normal / np.linalg.norm(normal)
            columns = affine[:3, :3]
            note = ("The file gives its single slice no thickness (voxel size 0 across it); 1 mm was assumed. "
                    "This matters only for measurements across the slice.")
    singular = np.linalg.svd(columns, compute_uv=False)
    if singular.min() <= SINGULAR_RATIO * singular.max():
        sizes = np.linalg.norm(columns, axis=0)
        detail = ("with a voxel size of 0 along axis " + ", ".join(str(a) for a in range(3) if sizes[a] == 0)
                  if np.any(sizes == 0) else "with two axes pointing the same way")
        return f"singular ({detail})", affine, ""
    return "", affine, note
