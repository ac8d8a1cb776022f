"""Searching the batch's input folders: each real file and folder once, in bounded time.

Folders are searched recursively, following links (cohorts are often folders of links
into a scanner archive). Links can point back up the tree — a loop that would make the
same scan a case again and again — or sideways to a folder searched already, so every
folder and file is visited once, recognised by its device and inode rather than its
path. Only regular files are opened: a FIFO would block the read forever. A search
that goes deeper than :data:`MAX_DEPTH` folders or meets more than :data:`MAX_ENTRIES`
entries is not a cohort (``/``, ``/usr``, a home folder) and is refused with a message.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_DEPTH = 32
MAX_ENTRIES = 200_000

NIFTI_SUFFIXES = (".nii.gz", ".nii", ".hdr", ".hdr.gz", ".mgz", ".mgh")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
# never cases: sidecars, notes, tables, Analyze data halves (their .hdr is the case)
IGNORED_SUFFIXES = (".json", ".txt", ".md", ".csv", ".tsv", ".xml", ".toml", ".yaml", ".yml", ".py", ".img",
                    ".img.gz", ".safetensors", ".pt", ".pth", ".zip", ".log", ".lrpsession")


class FolderError(ValueError):
    """A folder cannot be searched as a cohort (too large, too deep)."""


class FolderSearch:
    """Finds scan files and DICOM folders below input folders, remembering what it has seen."""

    def __init__(self, excluded: list[Path]) -> None:
        self.excluded = excluded
        self.seen: set[tuple[int, int]] = set()
        self.skipped: list[Path] = []
        self.special: list[Path] = []  # FIFOs, sockets, devices, broken links
        self.unreadable: list[Path] = []
        self.repeated = 0
        self.entries = 0

    def search(self, root: Path) -> list[Path]:
        """Scan files and DICOM folders below ``root``, sorted by name so case ids are stable."""
        return self._folder(root, root, 0)

    def notes(self) -> list[str]:
        notes = []
        if self.skipped:
            notes.append(f"{len(self.skipped)} file(s) in the input folders are not scans and were ignored "
                         f"(e.g. {self.skipped[0].name}).")
        if self.special:
            notes.append(f"{len(self.special)} entry(ies) are not regular files (FIFOs, sockets, devices or broken "
                         f"links) and were not opened (e.g. {self.special[0]}).")
        if self.unreadable:
            notes.append(f"{len(self.unreadable)} folder(s) cannot be read (permission denied) and were skipped "
                         f"(e.g. {self.unreadable[0]}).")
        if self.repeated:
            notes.append(f"{self.repeated} file(s) or folder(s) are reached more than once through links (or a "
                         "link loop) and are searched once.")
        return notes

    def _first_visit(self, st: os.stat_result) -> bool:
        key = (st.st_dev, st.st_ino)
        if key in self.seen:
            self.repeated += 1
            return False
        self.seen.add(key)
        return True

    def _folder(self, folder: Path, root: Path, depth: int) -> list[Path]:
        try:
            if not self._first_visit(folder.stat()):
                return []
            real = folder.resolve()
        except OSError:
            self.unreadable.append(folder)
            return []
        if any(real == e or real.is_relative_to(e) for e in self.excluded):
            return []
        if depth > MAX_DEPTH:
            raise FolderError(f"{root} has folders more than {MAX_DEPTH} levels deep ({folder}); that is not a "
                              "cohort folder. Give the folder that holds the scans, or a CSV list.")
        try:
            with os.scandir(folder) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError:
            self.unreadable.append(folder)
            return []
        self.entries += len(items)
        if self.entries > MAX_ENTRIES:
            raise FolderError(f"{root} holds more than {MAX_ENTRIES:,} files and folders; that is not a cohort "
                              "folder. Give the folder that holds the scans, or list the cases in a CSV file.")
        files, folders = [], []
        for item in items:
            if item.name.startswith("."):
                continue
            path = Path(item.path)
            try:
                if item.is_dir():
                    folders.append(path)
                elif item.is_file():
                    if self._first_visit(item.stat()):
                        files.append(path)
                else:
                    self.special.append(path)
            except OSError:
                self.special.append(path)
        kinds = {p: file_kind(p) for p in files}
        found = [p for p in files if kinds[p] == "scan"]
        if any(k == "dicom" for k in kinds.values()):
            found.append(folder)
        self.skipped.extend(p for p in files if kinds[p] is None)
        for sub in folders:
            found.extend(self._folder(sub, root, depth + 1))
        return found


def file_kind(path: Path) -> str | None:
    """"scan" (a file that is a case by itself), "dicom", or None (not an image). Regular files only."""
    name = path.name.lower()
    if name.startswith(".") or name == "dicomdir":
        return None
    if name.endswith(NIFTI_SUFFIXES + PICTURE_SUFFIXES):
        return "scan"
    if name.endswith(DICOM_SUFFIXES):
        return "dicom"
    if name.endswith(IGNORED_SUFFIXES):
        return None
    try:  # DICOM files often have no suffix at all: look at the bytes
        from viewer.io.load import looks_like_headerless_dicom

        # non-blocking: should the file have been swapped for a FIFO meanwhile, the read returns at once
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        try:
            head = os.read(fd, 132)
        finally:
            os.close(fd)
    except OSError:
        return None
    if head[128:132] == b"DICM" or looks_like_headerless_dicom(head):
        return "dicom"
    return None
