"""Relevance maps as NIfTI files that open aligned over the scan in any viewer.

The map is written float32 on the scan's own grid and affine (:func:`save_nifti`), and
the file says how it was made: a short, human-readable ``descrip`` (shown by FSLeyes,
ITK-SNAP, ``fslhd``) and a JSON comment extension with every detail needed to
reproduce it (method, preset, parameters, target, model, conservation numbers).
Nothing about the patient is recorded.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from viewer.io.errors import ExportError
from viewer.io.nifti import COMMENT_EXTENSION, save_nifti
from viewer.io.scan import Scan

DESCRIPTION_BYTES = 80


def method_tag(method: str, preset: str | None = None) -> str:
    """File-name-safe tag of a method, e.g. ``lrp-epsilon-plus`` or ``gradcam``."""
    text = f"{method}-{preset}" if preset else method
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text.replace("_", "-")).strip("-").lower()


def relevance_metadata(relevance: Any, model_name: str, labels: Sequence[str] | None = None) -> dict[str, Any]:
    """The JSON record stored in the file: what was explained, how, and how well it conserved."""
    from viewer import __version__

    target = relevance.target
    return {
        "software": f"lrp-viewer {__version__}",
        "content": "relevance",
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "model": model_name,
        "method": relevance.method,
        "preset": relevance.preset,
        "params": _plain(dict(relevance.params)),
        "target": {
            "kind": target.kind,
            "index": target.index,
            "other": target.other,
            "description": target.describe(labels),
        },
        "explained": _number(relevance.explained),
        "input_sum": _number(relevance.input_sum),
        "absorbed": _number(relevance.absorbed),
        "conservation_error": _number(relevance.conservation_error),
    }


def describe_short(relevance: Any, model_name: str, labels: Sequence[str] | None = None) -> str:
    """At most 80 ASCII bytes for the header: ``lrp:epsilon-plus tumour demo3d``."""
    method = f"{relevance.method}:{relevance.preset}" if relevance.preset else str(relevance.method)
    text = f"{method} target={relevance.target.describe(labels)} model={model_name}"
    return text.encode("ascii", errors="replace").decode("ascii")[:DESCRIPTION_BYTES]


def export_relevance(
    on_scan_map: np.ndarray,
    scan: Scan,
    relevance: Any,
    model_name: str,
    path: str | os.PathLike,
    overwrite: bool = False,
    labels: Sequence[str] | None = None,
) -> Path:
    """Write a relevance map (already on ``scan``'s grid) as a float32 NIfTI file.

    Parameters
    ----------
    on_scan_map
        The map the model layer mapped back to the scan (``to_scan(relevance.relevance)``),
        shape ``scan.shape``.
    scan
        The scan it explains: the file gets its affine, so it overlays voxel for voxel.
    relevance
        The :class:`~viewer.explain.Relevance` it came from; recorded in the header.
    model_name
        How the model is named in the record (the card's name or the file name).
    path
        ``.nii`` or ``.nii.gz``.
    overwrite
        False (the default) raises :class:`ExportError` when ``path`` exists.
    labels
        Class names, so the target reads "tumour" rather than "class 1".
    """
    data = np.asarray(on_scan_map, dtype=np.float32)
    if data.shape != scan.shape and not (scan.is_2d and data.shape == scan.shape[:2]):
        raise ExportError(
            f"The relevance map has shape {data.shape} but the scan has {scan.shape}; map it back to "
            "the scan's grid (LoadedModel.prepare's to_scan) before exporting."
        )
    return save_nifti(
        data,
        like=scan,
        path=path,
        description=describe_short(relevance, model_name, labels),
        extensions={"lrp-viewer": relevance_metadata(relevance, model_name, labels)},
        overwrite=overwrite,
    )


def read_relevance_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """The record :func:`export_relevance` stored in ``path``, or None if there is none."""
    import nibabel as nib

    header = nib.load(str(path)).header
    for ext in getattr(header, "extensions", ()):
        if ext.get_code() != COMMENT_EXTENSION:
            continue
        try:
            doc = json.loads(ext.get_content())
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(doc, dict) and "lrp-viewer" in doc:
            return doc["lrp-viewer"]
    return None


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _plain(value: Any) -> Any:
    """JSON-able copy: tuples to lists, numpy/torch scalars to numbers, the rest as text."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _plain(value.item())
    return str(value)
