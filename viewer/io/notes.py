"""The wording of notes that several readers write into ``Scan.meta["notes"]``.

Notes are shown to the user next to the scan. Each says what the reader assumed or
changed, in words a clinician understands — what it means for reading the image —
rather than in file-format jargon. Notes that only one reader writes live in that
reader; the ones shared by several are worded once, here.
"""

from __future__ import annotations

import numpy as np

COLOUR = ("The image is in colour and is shown in grey (brightness = 0.299 red + 0.587 green + 0.114 blue, "
          "the usual luminance), because the viewer and the models work on one value per pixel.")

ALPHA = "Alpha (transparency) channel ignored: the picture is shown as if fully opaque."


def nonfinite_note(bad: int, total: int, unit: str) -> str:
    """Pixels or voxels that hold NaN or ±infinity in a floating-point file."""
    share = 100.0 * bad / max(total, 1)
    return (
        f"{bad:,} of the {total:,} {unit} ({share:.3g} %) hold no number (NaN) or an infinite value in the file. "
        "They are kept unchanged, not replaced by any value, and ignored when the display's brightness range "
        "is chosen."
    )


def no_pixel_size_note(what: str = "in the image") -> str:
    """A file that states no pixel spacing: 1 × 1 mm is assumed."""
    return (f"The file states no pixel size; pixels are shown as 1 × 1 mm, so distances and areas measured "
            f"{what} are not real millimetres.")



def nonfinite_count(data: np.ndarray) -> int:
    """NaN/±inf values in ``data``, counted a slab at a time so no volume-sized mask is made."""
    if data.dtype.kind not in "fc":
        return 0
    if data.ndim == 0:
        return int(not np.isfinite(data))
    slowest = int(np.argmax(np.abs(data.strides)))  # slabs along it are contiguous blocks of memory
    slabs = np.moveaxis(data, slowest, 0)
    per_slab = max(1, (1 << 24) // max(slabs[0].size, 1))
    total = 0
    for start in range(0, slabs.shape[0], per_slab):
        part = slabs[start:start + per_slab]
        total += int(part.size - np.count_nonzero(np.isfinite(part)))
    return total
