"""Atomic file writing: readers never see a half-written export, and a failed export changes nothing.

Every export is written to a temporary file beside its target and renamed over it in
one step, so the previous file stays intact until the new one is complete.

* **Errors** — any operating-system failure while writing (read-only folder, full
  disk, file too large, target is a folder) becomes :class:`ExportError` naming the
  file, the reason and what to do; the temporary file is removed.
* **File mode** — the temporary file is created with ``0o666`` filtered by the
  process umask, like any file a program creates, rather than ``mkstemp``'s
  owner-only ``0o600``, so the export ends up with the permissions the user expects.
* **Left-overs** — a process killed mid-export (``kill -9``, power loss) leaves its
  temporary file behind. Our temporary files are named
  ``.lrpv-<pid>-<16 hex digits>-<target name>``; the first export of a run into a
  folder deletes such files there that are older than the run and whose process is
  gone. Nothing else is ever deleted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import threading
import time
from pathlib import Path
from typing import IO, Iterator

from viewer.io.errors import ExportError

TEMP_PREFIX = ".lrpv-"
_TEMP_NAME = re.compile(r"^\.lrpv-(\d+)-[0-9a-f]{16}-")
_RUN_STARTED = time.time()  # temporary files older than this belong to an earlier run
_cleaned: set[str] = set()
_cleaned_lock = threading.Lock()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", overwrite: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    If the block raises, the temporary file is removed and ``path`` is untouched; an
    ``OSError`` (from the block or from writing) is raised as :class:`ExportError`.
    With ``overwrite=False`` an existing ``path`` raises :class:`ExportError` before anything is written.
    """
    path = Path(path)
    tmp = _start(path, overwrite)
    try:
        with open(tmp, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _commit(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise export_error(path, exc) from None
    except BaseException:
        _discard(tmp)
        raise


def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> contextlib.AbstractContextManager[Path]:
    """Like :func:`atomic_write` for libraries that want a file name rather than a handle.

    The temporary name ends with the target's own name, so libraries that decide the
    format from the extension (``.nii.gz``) behave as for the real name.
    """
    return _atomic_path(Path(path), overwrite)


@contextlib.contextmanager
def _atomic_path(path: Path, overwrite: bool) -> Iterator[Path]:
    tmp = _start(path, overwrite)
    mode = stat.S_IMODE(os.stat(tmp).st_mode)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if stat.S_IMODE(os.stat(tmp).st_mode) != mode:  # writers that replace the file (safetensors: 0600)
            os.chmod(tmp, mode)
        _commit(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise export_error(path, exc) from None
    except BaseException:
        _discard(tmp)
        raise


def export_error(path: Path, exc: OSError) -> ExportError:
    """:class:`ExportError` for an operating-system failure while writing ``path``: the file, the reason, what to do."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    code = exc.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        advice = "Free some space on that drive, or choose a folder on another drive."
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = "The folder is read-only or you may not write there; choose another folder."
    elif code == errno.EFBIG:
        advice = "The file is larger than this drive or your account allows; choose another drive."
    elif code == errno.EISDIR:
        advice = "A folder has that name; choose another file name."
    else:
        advice = "Check the drive and the folder, then try again or choose another folder."
    return ExportError(f"Could not write {path}: {reason}. {advice} A previous file of that name is unchanged.")


def _start(path: Path, overwrite: bool) -> Path:
    """Checks, the clean-up of this folder's left-overs, and a new empty temporary file beside ``path``."""
    if not overwrite and path.exists():
        raise ExportError(f"{path} already exists; choose another name or allow overwriting.")
    if not path.parent.is_dir():
        raise ExportError(f"Folder {path.parent} does not exist; create it or choose another location.")
    remove_stale_temporaries(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}-{path.name}")
        try:
            os.close(os.open(tmp, flags, 0o666))  # 0o666 & ~umask, as for any new file
            return tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise export_error(path, exc) from None
    raise ExportError(f"Could not write {path}: no free temporary name in {path.parent}.")


def _commit(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # make the rename itself durable where the platform allows
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink()


def remove_stale_temporaries(folder: Path) -> list[str]:
    """Delete our temporary files in ``folder`` left by earlier runs; returns their names.

    Only files named by this module, last modified before this run started, whose
    process no longer exists. Done once per folder per run (a left-over is by
    definition older than the run, so one look is enough).
    """
    key = os.path.abspath(folder)
    with _cleaned_lock:
        if key in _cleaned:
            return []
        _cleaned.add(key)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if not match:
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_mtime >= _RUN_STARTED:
                continue
            if _alive(int(match.group(1))):
                continue
            os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists; when that cannot be known, assume it does (and keep its file)."""
    if pid == os.getpid():
        return False  # our pid on an old file: an earlier process that had the same number
    try:
        import psutil

        return bool(psutil.pid_exists(pid))
    except ImportError:
        pass
    if os.name != "posix":
        return True  # os.kill(pid, 0) would signal the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
