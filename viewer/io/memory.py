"""Checks made before allocating a scan, so a huge file fails with a message, not a crash.

A volume that does not fit makes the operating system kill the application (or swap
for minutes); asking before allocating costs a few microseconds.
"""

from __future__ import annotations

import numpy as np

from viewer.io.errors import ScanLoadError


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
    """Raise :class:`ScanLoadError` if a float32 array of ``shape`` cannot be allocated.

    ``extra_bytes`` counts temporary buffers the reader needs at the same time (e.g. a
    decoded frame). Allows up to 90 % of the memory that is available now.
    """
    need = int(np.prod(shape, dtype=np.int64)) * 4 + int(extra_bytes)
    avail = available_bytes()
    if avail is not None and need > 0.9 * avail:
        raise ScanLoadError(
            f"{what} needs {need / 2**30:.1f} GiB of memory as float32 {tuple(shape)}, but only "
            f"{avail / 2**30:.1f} GiB is available. Close other programs, or crop/downsample the "
            "scan (e.g. load a single series or volume) and try again."
        )

