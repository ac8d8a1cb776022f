"""How large a scan may be, checked before anything is allocated.

Two checks, both before the pixels are read:

* **The voxel budget** — one limit on the number of voxels (pixels for 2D images) of
  the scan a reader returns, the same for every format. A volume far beyond what a
  workstation can show and explain is refused in milliseconds, with its size named,
  rather than decoded for minutes and then killed by the operating system. The default,
  2**29 voxels (2 GiB as float32, e.g. 512 × 512 × 2048 or a 23,000² picture), is sized
  for a 24 GiB workstation: the viewer keeps the scan, one relevance map per compared
  method and a cache, about four scan-sized float32 arrays (8 GiB), next to the model,
  Qt and the operating system. Change it with the environment variable
  ``LRP_VIEWER_MAX_VOXELS`` or ``load_scan(..., max_voxels=...)``.
* **Memory available now** — the reader's real peak (the float32 result plus the
  buffers it needs at the same time, which each reader counts) against what the
  operating system says is available.

A scan that passes both but still cannot be allocated raises :func:`out_of_memory`'s
error, which says so, rather than being mistaken for a damaged file.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Iterator

import numpy as np

from viewer.io.errors import CorruptFileError, ScanLoadError, ScanTooLargeError

DEFAULT_MAX_VOXELS = 2**29
MAX_VOXELS_ENV = "LRP_VIEWER_MAX_VOXELS"

_override: contextvars.ContextVar[int | None] = contextvars.ContextVar("lrp_viewer_max_voxels", default=None)


def max_voxels() -> int:
    """The voxel budget in force: ``voxel_budget(...)`` if set, else the environment, else the default."""
    value = _override.get()
    if value is not None:
        return value
    text = os.environ.get(MAX_VOXELS_ENV, "").strip().replace("_", "")
    if not text:
        return DEFAULT_MAX_VOXELS
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value <= 0:
        raise ScanLoadError(
            f"{MAX_VOXELS_ENV}={os.environ[MAX_VOXELS_ENV]!r} is not a positive number of voxels. "
            f"Set it to a whole number such as {DEFAULT_MAX_VOXELS}, or unset it for the default."
        )
    return value


@contextlib.contextmanager
def voxel_budget(limit: int | None) -> Iterator[None]:
    """Use ``limit`` voxels as the budget inside the block (None: keep the current one).

    A context variable, so a limit set for one load does not leak into loads running
    on other threads.
    """
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit <= 0):
        raise ScanLoadError(f"max_voxels must be a positive whole number, got {limit!r}.")
    token = _override.set(int(limit) if limit is not None else _override.get())
    try:
        yield
    finally:
        _override.reset(token)


def describe_size(shape: tuple[int, ...]) -> str:
    """``"900 × 900 × 900 = 729,000,000 voxels"`` (pixels for a 2D shape)."""
    dims = [int(s) for s in shape]
    unit = "pixels" if len(dims) == 2 or (len(dims) == 3 and dims[2] == 1) else "voxels"
    shown = dims[:2] if unit == "pixels" and len(dims) == 3 else dims
    return f"{' × '.join(str(d) for d in shown)} = {int(np.prod(dims, dtype=np.int64)):,} {unit}"


def check_size(shape: tuple[int, ...], what: str) -> None:
    """Refuse an image with a zero-length axis, or one over the voxel budget.

    An empty axis would load "successfully" and then break every view and tool that
    indexes it, so it is refused as a damaged file here, once, for every reader.
    """
    dims = tuple(int(s) for s in shape)
    if any(d <= 0 for d in dims):
        raise CorruptFileError(
            f"{what} has an image axis of length 0 (size {' × '.join(str(d) for d in dims)}), so it holds "
            "no pixels. The file is incomplete or damaged; export it again."
        )
    count = int(np.prod(dims, dtype=np.int64))
    limit = max_voxels()
    if count > limit:
        raise ScanTooLargeError(
            f"{what} is {describe_size(dims)}, more than the limit of {limit:,} for one scan "
            f"({limit * 4 / 2**30:.1f} GiB as 32-bit values). Open a cropped or downsampled copy. On a computer "
            f"with enough memory (this scan needs about {count * 4 / 2**30:.1f} GiB, plus as much again for each "
            f"relevance map) raise the limit: set {MAX_VOXELS_ENV}={count} or pass max_voxels= to load_scan."
        )


def available_bytes() -> int | None:
    """Memory the process can still allocate, or None when the platform does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # optional; present on most desktops

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - any failure means "unknown"
        return None


def ensure_fits(shape: tuple[int, ...], what: str, extra_bytes: int = 0) -> None:
    """Check the budget (:func:`check_size`), then that the reader's peak memory is available.

    The peak is the float32 result of ``shape`` plus ``extra_bytes``: every buffer the
    reader holds at the same time (decoded frames, a slab being converted, the file's
    own copy of the pixels). Allows up to 90 % of the memory that is available now.
    """
    check_size(shape, what)
    result = int(np.prod(shape, dtype=np.int64)) * 4
    need = result + int(extra_bytes)
    avail = available_bytes()
    if avail is not None and need > 0.9 * avail:
        raise ScanLoadError(
            f"{what} needs about {need / 2**30:.1f} GiB of memory to load ({describe_size(tuple(shape))} as 32-bit "
            f"values, plus {int(extra_bytes) / 2**30:.1f} GiB of working buffers), but only {avail / 2**30:.1f} GiB "
            "is available now. Close other programs, or open a cropped or downsampled copy of the scan."
        )


def out_of_memory(what: str, shape: tuple[int, ...] | None = None) -> ScanLoadError:
    """The error for a real allocation failure, naming the size, so it is never reported as a damaged file."""
    size = f" ({describe_size(shape)}, {int(np.prod(shape, dtype=np.int64)) * 4 / 2**30:.1f} GiB as 32-bit values)" \
        if shape is not None else ""
    return ScanLoadError(
        f"{what} does not fit in the memory this program may use{size}: the computer ran out of memory while "
        "reading it. Close other programs, or open a cropped or downsampled copy."
    )
