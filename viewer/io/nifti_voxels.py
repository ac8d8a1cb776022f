"""A NIfTI/Analyze/MGH volume's voxels, read slab by slab into the final float32 array.

Letting nibabel scale a whole volume costs several times the result: the stored
integers, the scaled values (float64 when the header's slope is a double), a copy to
float32 and, for a non-RAS file, a reoriented copy. A 1.4 MB ``.nii.gz`` of 900³ int16
with a slope peaked at 11 GB that way. Here the float32 result is allocated once, in
the slice-major layout of :meth:`Canonical.slice_buffer` (so flips cost nothing), and
the file is streamed through it a slab of planes at a time: each slab is decoded,
scaled exactly as nibabel scales it (its own ``apply_read_scaling``, so values are
identical to ``get_fdata(dtype=np.float32)``) and written in place. Peak memory is the
result plus one slab.

An uncompressed float32 file without scaling, already in RAS order, is not read at all:
it is memory-mapped copy-on-write, as before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from nibabel.arrayproxy import ArrayProxy
from nibabel.openers import ImageOpener
from nibabel.volumeutils import apply_read_scaling

from viewer.io.errors import CorruptFileError
from viewer.io.orientation import Canonical

SLAB_BYTES = 4 * 2**20  # stored bytes decoded at a time; its scaled float64 copies take up to 8× that


def working_bytes(proxy: object, grid: tuple[int, int, int]) -> int:
    """Memory the read needs besides the float32 result (for the memory check)."""
    voxels = int(np.prod(grid, dtype=np.int64))
    if _mappable(proxy):
        return 0
    if _streamable(proxy):
        itemsize = np.dtype(proxy.dtype).itemsize  # type: ignore[attr-defined]
        slab_voxels = min(voxels, max(SLAB_BYTES // itemsize, grid[0] * grid[1]))
        return slab_voxels * (itemsize + 8 + 4)  # stored slab, float64 scaling, float32 cast
    return voxels * (8 + 8 + 4)  # nibabel's whole-volume path: stored values, scaled float64, copies


def read_volume(proxy: object, path: Path, grid: tuple[int, int, int], index: tuple[int, ...],
                plan: Canonical) -> np.ndarray:
    """The 3D volume at ``index`` (of the dimensions after the third) as ``plan``'s canonical float32 array."""
    shape = tuple(int(s) for s in proxy.shape)  # type: ignore[attr-defined]
    extra = shape[3:]
    volume = int(np.ravel_multi_index(index, extra, order="F")) if extra else 0  # files store x fastest
    if _mappable(proxy) and plan.is_identity:
        flat = np.asanyarray(proxy).reshape(-1, order="F")  # a copy-on-write memory map: nothing is read
        size = int(np.prod(grid, dtype=np.int64))
        return plan.from_flipped(np.asarray(flat[volume * size:(volume + 1) * size]).reshape(grid, order="F"))
    if _streamable(proxy):
        return _stream(proxy, path, grid, volume, plan)  # type: ignore[arg-type]
    # formats with their own proxies (MINC, ...): nibabel reads the one volume
    raw = proxy[(slice(None),) * min(3, len(shape)) + index] if extra else proxy  # type: ignore[index]
    return plan.apply(np.asarray(raw, dtype=np.float32).reshape(grid))


def _streamable(proxy: object) -> bool:
    return (
        type(proxy) is ArrayProxy
        and proxy.order == "F"
        and isinstance(proxy.file_like, (str, Path))
        and np.dtype(proxy.dtype).kind in "biuf"
    )


def _mappable(proxy: object) -> bool:
    """Uncompressed, native float32, unscaled: what nibabel memory-maps as the final array."""
    if not _streamable(proxy):
        return False
    dtype = np.dtype(proxy.dtype)  # type: ignore[attr-defined]
    return (
        dtype == np.dtype(np.float32)
        and dtype.isnative
        and str(proxy.file_like).lower().endswith((".nii", ".img", ".mgh"))  # type: ignore[attr-defined]
        and (float(proxy.slope), float(proxy.inter)) == (1.0, 0.0)  # type: ignore[attr-defined]
    )


def _scaling(proxy: ArrayProxy) -> tuple[np.ndarray, np.ndarray] | None:
    """The slope and intercept as nibabel applies them when asked for float32, or None for (1, 0)."""
    slope, inter = np.asanyarray(proxy.slope), np.asanyarray(proxy.inter)
    if (float(slope), float(inter)) == (1.0, 0.0):
        return None
    if np.can_cast(slope, np.float32):
        slope = slope.astype(np.float32)
    if np.can_cast(inter, np.float32):
        inter = inter.astype(np.float32)
    return slope, inter


def _stream(proxy: ArrayProxy, path: Path, grid: tuple[int, int, int], volume: int, plan: Canonical) -> np.ndarray:
    nx, ny, nz = grid
    dtype = np.dtype(proxy.dtype)
    plane_bytes = nx * ny * dtype.itemsize
    per_slab = max(1, min(nz, SLAB_BYTES // max(plane_bytes, 1)))
    scaling = _scaling(proxy)
    buffer = plan.slice_buffer()  # (nz, ny, nx) float32: the result, allocated once
    chunk = bytearray(per_slab * plane_bytes)
    fx, fy, fz = (slice(None, None, -1) if f else slice(None) for f in plan.flips)
    with ImageOpener(proxy.file_like) as fh:
        fh.seek(int(proxy.offset) + volume * plane_bytes * nz)
        k = 0
        while k < nz:
            n = min(per_slab, nz - k)
            view = memoryview(chunk)[: n * plane_bytes]
            _read_exactly(fh, view, path, done=k * plane_bytes, total=nz * plane_bytes)
            stored = np.frombuffer(view, dtype=dtype).reshape(n, ny, nx)  # the file is x-fastest (Fortran)
            values = stored if scaling is None else apply_read_scaling(stored, *scaling)
            lo, hi = (nz - k - n, nz - k) if plan.flips[2] else (k, k + n)
            buffer[lo:hi][fz, fy, fx] = values
            k += n
    return plan.from_buffer(buffer)


def _read_exactly(fh: ImageOpener, view: memoryview, path: Path, done: int, total: int) -> None:
    got = 0
    while got < len(view):
        n = fh.readinto(view[got:])
        if not n:
            raise CorruptFileError(
                f"{path.name}: the image data ends after {done + got:,} of its {total:,} bytes; the file is "
                "truncated. Copy or export it again."
            )
        got += n
