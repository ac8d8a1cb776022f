"""One batch run per output folder: a lock file holding the running process's PID.

Two runs writing one ``summary.csv`` each rewrite it from their own rows, and the last
writer wins: half of the other run's rows vanish. So a run takes
``<out>/.lrp-viewer-batch.lock`` for its whole duration. The file holds
``PID hostname`` for people and for the message; the lock itself is the operating
system's (``flock`` on POSIX, ``msvcrt.locking`` on Windows), which the kernel
releases when a process dies, even by ``kill -9``. A lock file left behind by a dead
run is therefore taken over without asking. On file systems without locks the PID
decides: a live process on this host keeps its lock, a dead one loses it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lrp-viewer-batch.lock"


class OutputLocked(Exception):
    """Another live run holds the output folder; the message names its PID."""


def _lock_fd(fd: int) -> bool | None:
    """True: locked; False: another process holds it; None: this file system has no locks."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError:
            return None
    import msvcrt

    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def _holder(fd: int) -> tuple[int | None, str]:
    """(PID, host) written in the lock file, or (None, "") when it holds none."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 200).decode("utf-8", errors="replace")
    except OSError:
        return None, ""
    parts = text.split()
    if not parts or not parts[0].isdigit():
        return None, ""
    return int(parts[0]), (parts[1] if len(parts) > 1 else "")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # POSIX only: this branch runs only where fcntl exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@contextlib.contextmanager
def output_lock(folder: Path) -> Iterator[str | None]:
    """Hold ``folder``'s lock for the block; yields a note when a dead run's lock was taken over.

    Raises :class:`OutputLocked` when another live run holds it, and OSError when the
    lock file cannot be written at all.
    """
    path = folder / LOCK_NAME
    host = socket.gethostname()
    for _ in range(20):  # a run releasing its lock meanwhile deletes the file: open the new one
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            locked = _lock_fd(fd)
            pid, pid_host = _holder(fd)
            if locked is None:  # no kernel locks here: trust a live PID on this host
                locked = pid is None or (pid_host == host and not _alive(pid))
            if not locked:
                elsewhere = f" on {pid_host}" if pid_host and pid_host != host else ""
                who = f"PID {pid}{elsewhere}" if pid else "a process"
                raise OutputLocked(
                    f"Another lrp-viewer batch run ({who}) is writing to {folder}. Wait for it to finish, or choose "
                    f"another --out. (If no such run exists, delete {path}.)"
                )
            if not _same_file(fd, path):
                os.close(fd)
                continue
            note = None
            if pid is not None and pid != os.getpid():
                note = f"took over the lock of an earlier run (PID {pid}) that ended without releasing it"
            record = lock_record().encode()
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, record)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        try:
            yield note
        finally:
            _release(fd, path)
        return
    raise OutputLocked(f"The lock file {path} keeps changing; another run is starting or ending there. Try again.")


def lock_record() -> str:
    """What this process writes into a lock it holds: ``PID hostname``."""
    return f"{os.getpid()} {socket.gethostname()}\n"


def sees_lock(folder: Path, record: str) -> bool:
    """Whether ``folder`` holds the lock ``record`` (read from another process, e.g. a cluster worker).

    A worker that cannot read its driver's record does not see the driver's output
    folder: what it wrote there would be lost on its own disk.
    """
    try:
        return (folder / LOCK_NAME).read_text(encoding="utf-8", errors="replace") == record
    except OSError:
        return False


def _release(fd: int, path: Path) -> None:
    """Delete the lock file, then unlock (POSIX): nobody can lock a file that is about to vanish.

    Windows cannot delete an open file, so there the order is reversed; a run that
    opens the file in between finds it unlocked and takes it over, which is right.
    """
    ours = _same_file(fd, path)
    if fcntl is not None and ours:
        with contextlib.suppress(OSError):
            os.unlink(path)
    os.close(fd)
    if fcntl is None and ours:
        with contextlib.suppress(OSError):
            os.unlink(path)
