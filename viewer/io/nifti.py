"""NIfTI-1/2 (and Analyze / MGH, which nibabel reads the same way): reading and writing.

Reading trusts nibabel for the header — sform/qform precedence (``img.affine``, checked
by :mod:`viewer.io.nifti_affine`) and the scaling (``scl_slope``/``scl_inter``) — and
streams the voxels slab by slab into the final float32 array
(:mod:`viewer.io.nifti_voxels`); an uncompressed float32 file in RAS order is
memory-mapped copy-on-write instead, so it is never copied and never written. Writing puts a relevance map on the scan's exact grid, so
other NIfTI viewers (FSLeyes, ITK-SNAP, 3D Slicer) overlay it voxel for voxel.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import nibabel as nib
import numpy as np

from viewer.io.atomic import atomic_path
from viewer.io.errors import CorruptFileError, ExportError, ScanLoadError, UnsupportedFormatError
from viewer.io.memory import check_size, ensure_fits, out_of_memory
from viewer.io.nifti_affine import checked_affine
from viewer.io.nifti_voxels import read_volume, working_bytes
from viewer.io.notes import nonfinite_count, nonfinite_note
from viewer.io.orientation import canonical_plan, spacing_of
from viewer.io.scan import Scan
from viewer.io.sniff import check_regular_file

NIFTI_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img", ".hdr.gz", ".img.gz", ".mgz", ".mgh")

# NIfTI extension code 6 is "comment"; we store JSON text there.
COMMENT_EXTENSION = 6


def load_nifti(path: Path, frame: int = 0) -> Scan:
    """Read a NIfTI (or Analyze/MGH) file as a RAS+ canonical float32 :class:`Scan`.

    4D and higher files give one volume, ``frame`` (default the first), and say so in
    ``meta["notes"]``; 2D files become one slice. Non-finite values (NaN, ±inf) are kept
    as they are — they may be meaningful masks in the source — and counted in
    ``meta["nonfinite_voxels"]`` with a note; the display window ignores them. Voxels
    are read slab by slab into the result (:mod:`viewer.io.nifti_voxels`); the affine
    is checked (:mod:`viewer.io.nifti_affine`); empty axes and volumes over the voxel
    budget are refused before anything is read.
    """
    _check_pair(path)
    try:
        img = nib.load(str(path), mmap="c")
    except FileNotFoundError as exc:
        raise CorruptFileError(
            f"{path.name}: a file it needs is missing ({Path(str(exc.filename or '')).name or exc}). "
            "An Analyze/NIfTI pair needs both the .hdr and the .img file in the same folder."
        ) from None
    except MemoryError:
        raise out_of_memory(path.name) from None
    except Exception as exc:  # nibabel raises many types for damaged headers
        raise CorruptFileError(
            f"{path.name} is not a readable NIfTI/Analyze file "
            f"({type(exc).__name__}: {str(exc).replace(str(path), path.name)}). "
            "Check that the file is complete, or re-export it."
        ) from None

    if getattr(img, "affine", None) is None:
        raise UnsupportedFormatError(
            f"{path.name} is a {type(img).__name__} without a voxel grid in space (e.g. CIFTI surface data); "
            "lrp-viewer reads volumes. Open a NIfTI volume instead."
        )
    notes: list[str] = []
    shape = tuple(int(s) for s in img.shape)
    disk_dtype = np.dtype(img.get_data_dtype()) if hasattr(img, "get_data_dtype") else np.dtype("f4")
    if disk_dtype.kind == "c" or disk_dtype.fields is not None:
        raise UnsupportedFormatError(
            f"{path.name} holds {disk_dtype} voxels (complex or RGB); lrp-viewer reads scalar images. "
            "Save a magnitude or greyscale version and open that."
        )
    if len(shape) < 2:
        raise UnsupportedFormatError(f"{path.name} has shape {shape}; an image needs at least 2 dimensions.")
    if 0 in shape:
        check_size(shape, path.name)  # an empty 4th/5th axis leaves nothing to show, like an empty slice axis
    extra = shape[3:]
    n_volumes = int(np.prod(extra)) if extra else 1
    if not 0 <= frame < n_volumes:
        raise CorruptFileError(
            f"{path.name} has {n_volumes} volume(s); choose frame 0 to {n_volumes - 1}."
        )
    grid: tuple[int, int, int] = (shape + (1,))[:3] if len(shape) == 2 else shape[:3]  # type: ignore[assignment]
    ensure_fits(grid, path.name, extra_bytes=working_bytes(img.dataobj, grid))
    affine = checked_affine(img, path.name, grid, notes)
    plan = canonical_plan(affine, grid)
    index = tuple(int(i) for i in np.unravel_index(frame, extra)) if extra else ()
    try:
        data = read_volume(img.dataobj, path, grid, index, plan)
    except FileNotFoundError as exc:
        raise CorruptFileError(
            f"{path.name} is a header whose image file {Path(str(exc.filename or '')).name} is missing. "
            "Put the .img file next to the .hdr file (same name) and open it again."
        ) from None
    except ScanLoadError:
        raise
    except MemoryError:
        raise out_of_memory(path.name, grid) from None
    except Exception as exc:  # truncated or corrupt gzip stream, short file, ...
        raise CorruptFileError(
            f"{path.name}: the image data could not be read ({type(exc).__name__}: {exc}). "
            "The file is probably truncated or damaged; copy or export it again."
        ) from None
    if n_volumes > 1:
        notes.append(
            f"The file holds {n_volumes} volumes (e.g. time points or diffusion directions; size "
            f"{' × '.join(str(s) for s in shape)}); showing volume {frame} (numbered from 0)."
        )

    meta: dict[str, Any] = {
        "format": _format_name(img),
        "original_shape": shape,
        "original_orientation": plan.source_codes,
        "dtype": str(disk_dtype),
        "notes": notes,
    }
    if n_volumes > 1:
        meta["volumes"] = n_volumes
        meta["frame"] = frame
    header = img.header
    window = None
    if isinstance(header, nib.Nifti1Header):  # also Nifti2Header
        meta["sform_code"] = int(header["sform_code"])
        meta["qform_code"] = int(header["qform_code"])
    # nibabel moves scl_slope/scl_inter from the header into the array proxy on load
    slope, inter = getattr(img.dataobj, "slope", 1.0), getattr(img.dataobj, "inter", 0.0)
    if (slope, inter) != (1.0, 0.0):
        meta["scl_slope"], meta["scl_inter"] = float(slope), float(inter)
    if isinstance(header, nib.Nifti1Header):
        cal_min, cal_max = float(header["cal_min"]), float(header["cal_max"])
        if np.isfinite(cal_min) and np.isfinite(cal_max) and cal_max > cal_min:
            window = ((cal_min + cal_max) / 2.0, cal_max - cal_min)
    if disk_dtype.kind == "f" or meta.get("scl_slope") is not None:
        bad = nonfinite_count(data)
        if bad:
            meta["nonfinite_voxels"] = bad
            notes.append(nonfinite_note(bad, data.size, "voxels"))

    return Scan(
        data=data,
        affine=plan.affine,
        spacing=spacing_of(plan.affine),
        modality="unknown",
        window=window,
        meta=meta,
        source=f"{meta['format']} file {path.name}" + (f" (volume {frame} of {n_volumes})" if n_volumes > 1 else ""),
        planar=False,
        path=str(path),
    )


def _check_pair(path: Path) -> None:
    """Both files of an Analyze/NIfTI pair must be regular files (a pipe would block the read)."""
    name = path.name.lower()
    for suffix in (".hdr.gz", ".img.gz", ".hdr", ".img"):
        if name.endswith(suffix):
            stem = path.name[: -len(suffix)]
            for other in (".hdr", ".img", ".HDR", ".IMG", ".hdr.gz", ".img.gz"):
                sibling = path.with_name(stem + other)
                if sibling != path and sibling.exists():
                    check_regular_file(sibling)
            return


def _format_name(img: Any) -> str:
    name = type(img).__name__
    return {
        "Nifti1Image": "NIfTI-1",
        "Nifti2Image": "NIfTI-2",
        "Nifti1Pair": "NIfTI-1 pair",
        "Nifti2Pair": "NIfTI-2 pair",
        "AnalyzeImage": "Analyze 7.5",
        "Spm99AnalyzeImage": "Analyze (SPM99)",
        "Spm2AnalyzeImage": "Analyze (SPM2)",
        "MGHImage": "MGH",
    }.get(name, name)


def save_nifti(
    array: np.ndarray,
    like: Scan,
    path: str | os.PathLike,
    description: str | None = None,
    extensions: Iterable[tuple[int, bytes]] | Mapping[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write ``array`` as a float32 NIfTI-1 file on the grid of ``like``, atomically.

    Parameters
    ----------
    array
        Values on the scan's voxel grid: shaped like ``like.data`` or, for a 2D scan,
        ``(nx, ny)``. Anything else raises ValueError — a map on another grid would
        open misaligned in every viewer, which is worse than no file.
    like
        The scan whose affine the file gets. sform and qform are both set (qform without
        shears) so viewers that read either agree; the code is the scan's own when it
        came from a NIfTI file with one, otherwise 1 (scanner anatomical).
    path
        Ending ``.nii`` or ``.nii.gz``.
    description
        Text for the header's ``descrip`` field, cut to its 80 bytes.
    extensions
        ``[(code, bytes), ...]`` written as NIfTI extensions, or a JSON-able mapping
        written as one comment extension (code 6) holding JSON — how exports record
        the method and parameters that produced a map.
    overwrite
        False refuses to replace an existing file (:class:`ExportError`).

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise ExportError(f"Cannot write NIfTI to {path.name}: choose a file name ending in .nii or .nii.gz.")
    data = np.asarray(array, dtype=np.float32)
    if data.shape != like.shape:
        if like.is_2d and data.shape == like.shape[:2]:
            data = data[:, :, np.newaxis]
        else:
            allowed = f"{like.shape}" + (f" or {like.shape[:2]}" if like.is_2d else "")
            raise ValueError(f"Array shape {data.shape} does not match the scan grid; expected {allowed}.")

    img = nib.Nifti1Image(np.ascontiguousarray(data), like.affine)
    header = img.header
    header.set_data_dtype(np.float32)
    header.set_xyzt_units("mm")
    sform_code = int(like.meta.get("sform_code") or 0) or 1
    qform_code = int(like.meta.get("qform_code") or 0) or sform_code
    img.set_sform(like.affine, code=sform_code)
    img.set_qform(like.affine, code=qform_code)
    if description:
        header["descrip"] = description.encode("utf-8")[:80].decode("utf-8", errors="ignore").encode("utf-8")
    for code, content in _extensions(extensions):
        header.extensions.append(nib.nifti1.Nifti1Extension(code, content))

    with atomic_path(path, overwrite=overwrite) as tmp:
        nib.save(img, str(tmp))
    return path


def _extensions(extensions: Iterable[tuple[int, bytes]] | Mapping[str, Any] | None) -> list[tuple[int, bytes]]:
    if extensions is None:
        return []
    if isinstance(extensions, Mapping):
        return [(COMMENT_EXTENSION, json.dumps(extensions, default=str).encode("utf-8"))]
    out = []
    for code, content in extensions:
        if isinstance(content, str):
            content = content.encode("utf-8")
        out.append((int(code), bytes(content)))
    return out
