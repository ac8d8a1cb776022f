"""Atomic file writing: readers never see a half-written export."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from viewer.io.errors import ExportError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", overwrite: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    If the block raises, the temporary file is removed and ``path`` is untouched.
    With ``overwrite=False`` an existing ``path`` raises :class:`ExportError` before anything is written.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise ExportError(f"{path} already exists; choose another name or allow overwriting.")
    if not path.parent.is_dir():
        raise ExportError(f"Folder {path.parent} does not exist; create it or choose another location.")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> contextlib.AbstractContextManager[Path]:
    """Like :func:`atomic_write` for libraries that want a file name rather than a handle."""
    return _atomic_path(Path(path), overwrite)


@contextlib.contextmanager
def _atomic_path(path: Path, overwrite: bool) -> Iterator[Path]:
    if not overwrite and path.exists():
        raise ExportError(f"{path} already exists; choose another name or allow overwriting.")
    if not path.parent.is_dir():
        raise ExportError(f"Folder {path.parent} does not exist; create it or choose another location.")
    # keep the real suffix(es) so libraries that look at the extension (.nii.gz) behave
    suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
