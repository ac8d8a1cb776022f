"""Listing the files under a folder that is opened as a DICOM export, within bounds.

A DICOM export (a PACS CD, a USB stick, a study folder) is a few thousand files a
few levels deep. Opening ``/`` or ``/usr`` by mistake would otherwise read every file
on the disk, so the walk stops with a clear error past :data:`MAX_FILES` files or
:data:`MAX_FOLDERS` sub-folders. Folders deeper than :data:`MAX_DEPTH` levels (a
viewer program bundled on the CD, say) are not searched, and the scan's notes say so.
Symbolic links to folders are not followed (a link back up the tree would loop);
symbolic links to files are. Pipes, devices and sockets are never opened: reading one
can wait forever.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from viewer.io.errors import ScanLoadError

MAX_FILES = 100_000
MAX_FOLDERS = 20_000
MAX_DEPTH = 8


@dataclass
class FolderListing:
    """Regular files found (sorted), and what was left out."""

    files: list[Path] = field(default_factory=list)
    special: int = 0  # pipes, devices, sockets, dangling links: skipped unopened
    too_deep: int = 0  # folders below MAX_DEPTH, not searched


def list_files(folder: Path, max_files: int | None = None, max_folders: int | None = None,
               max_depth: int | None = None) -> FolderListing:
    """Every regular file under ``folder`` down to ``max_depth`` levels of sub-folders.

    Limits default to the module's :data:`MAX_FILES`, :data:`MAX_FOLDERS` and :data:`MAX_DEPTH`.
    """
    max_files = MAX_FILES if max_files is None else max_files
    max_folders = MAX_FOLDERS if max_folders is None else max_folders
    max_depth = MAX_DEPTH if max_depth is None else max_depth
    out = FolderListing()
    pending: list[tuple[Path, int]] = [(folder, 0)]
    folders = 0
    while pending:
        current, depth = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue  # an unreadable sub-folder is skipped like an unreadable file
        for entry in entries:
            try:
                # the entry's type comes from the folder listing; only links need a stat
                if entry.is_file():  # a regular file, or a link to one
                    out.files.append(Path(entry.path))
                    if len(out.files) > max_files:
                        raise _too_big(folder, f"more than {max_files:,} files")
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if depth >= max_depth:
                        out.too_deep += 1
                        continue
                    folders += 1
                    if folders > max_folders:
                        raise _too_big(folder, f"more than {max_folders:,} sub-folders")
                    pending.append((Path(entry.path), depth + 1))
                    continue
                if entry.is_dir():  # a link to a folder: not followed
                    continue
            except OSError:
                pass
            out.special += 1  # a pipe, device, socket or dangling link
    out.files.sort()
    return out


def _too_big(folder: Path, what: str) -> ScanLoadError:
    return ScanLoadError(
        f"{folder.name or folder} holds {what}: it looks like a whole disk or a system folder, not a DICOM "
        "export, so it was not searched further. Choose the folder of one study or series (the one that holds "
        "its DICOM files or DICOMDIR)."
    )
