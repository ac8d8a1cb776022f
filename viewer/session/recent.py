"""Recently opened files, remembered between runs in the user's config folder."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from viewer.io.atomic import atomic_write
from viewer.session.signals import Signal

log = logging.getLogger(__name__)

KINDS = ("scan", "model", "mask", "session")
FILE_NAME = "recent.json"


def config_dir() -> Path:
    """Where lrp-viewer keeps its settings; ``LRP_VIEWER_CONFIG_DIR`` overrides (tests, portable installs)."""
    override = os.environ.get("LRP_VIEWER_CONFIG_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "lrp-viewer"


@dataclass(frozen=True)
class RecentEntry:
    path: str
    kind: str


class RecentFiles:
    """Newest-first list of at most ``limit`` files, saved atomically after every change.

    A missing or broken file reads as an empty list: losing the history must never stop
    the application from starting. Failing to save is logged, not raised, for the same
    reason.
    """

    def __init__(self, directory: str | os.PathLike | None = None, limit: int = 10) -> None:
        self.directory = Path(directory) if directory is not None else config_dir()
        self.limit = int(limit)
        self.changed = Signal("recent_files_changed")
        self._entries = self._read()

    @property
    def path(self) -> Path:
        return self.directory / FILE_NAME

    @property
    def entries(self) -> list[RecentEntry]:
        return list(self._entries)

    def add(self, path: str | os.PathLike, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
        p = str(Path(path).absolute())
        self._entries = [RecentEntry(p, kind)] + [e for e in self._entries if e.path != p]
        del self._entries[self.limit :]
        self._save()

    def remove(self, path: str | os.PathLike) -> None:
        p = str(Path(path).absolute())
        self._entries = [e for e in self._entries if e.path != p]
        self._save()

    def clear(self) -> None:
        self._entries = []
        self._save()

    def _read(self) -> list[RecentEntry]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            items = doc["recent"] if isinstance(doc, dict) else []
            entries = [RecentEntry(str(i["path"]), str(i["kind"])) for i in items if i.get("kind") in KINDS]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            log.warning("Ignoring unreadable recent-files list %s", self.path)
            return []
        return entries[: self.limit]

    def _save(self) -> None:
        doc = {"version": 1, "recent": [{"path": e.path, "kind": e.kind} for e in self._entries]}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.path, "w") as fh:
                json.dump(doc, fh, indent=2)
        except Exception:  # noqa: BLE001 - history is a convenience, never fatal
            log.warning("Could not save the recent-files list to %s", self.path, exc_info=True)
        self.changed.emit()
