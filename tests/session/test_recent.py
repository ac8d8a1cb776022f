"""Recent files: newest first, at most ten, persisted atomically."""

import json
from pathlib import Path

from viewer.session.recent import RecentFiles


def test_env_override_and_persistence(config_dir: Path, tmp_path: Path) -> None:
    from viewer.session import recent

    assert recent.config_dir() == config_dir
    r = RecentFiles()
    changes = []
    r.changed.connect(lambda: changes.append(1))
    for i in range(12):
        r.add(tmp_path / f"scan{i}.nii.gz", "scan")
    r.add(tmp_path / "scan5.nii.gz", "scan")  # re-opening moves it to the top, no duplicate
    assert len(r.entries) == 10
    assert r.entries[0].path == str(tmp_path / "scan5.nii.gz")
    assert [e.path for e in r.entries].count(str(tmp_path / "scan5.nii.gz")) == 1
    assert changes and len(changes) == 13
    again = RecentFiles()
    assert again.entries == r.entries
    doc = json.loads((config_dir / "recent.json").read_text())
    assert len(doc["recent"]) == 10
    assert [p.name for p in config_dir.iterdir()] == ["recent.json"]  # no temporary left behind
    again.remove(tmp_path / "scan5.nii.gz")
    assert len(RecentFiles().entries) == 9
    again.clear()
    assert RecentFiles().entries == []


def test_broken_file_reads_as_empty(config_dir: Path) -> None:
    (config_dir / "recent.json").write_text("{not json")
    r = RecentFiles()
    assert r.entries == []
    r.add("/x/model.toml", "model")
    assert RecentFiles().entries[0].kind == "model"
