"""What the .deb and the tarball install besides the program: desktop entry, MIME type,
icons, and install.sh (run here into a temporary prefix with a stand-in program)."""

from __future__ import annotations

import configparser
import os
import shutil
import stat
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
MAIN_CATEGORIES = {"AudioVideo", "Audio", "Video", "Development", "Education", "Game", "Graphics", "Network",
                   "Office", "Science", "Settings", "System", "Utility"}


def desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read(PACKAGING / "lrp-viewer.desktop", encoding="utf-8")
    return parser["Desktop Entry"]


def test_desktop_entry_opens_every_selected_file_and_has_one_main_category():
    entry = desktop_entry()
    assert entry["Exec"] == "lrp-viewer %F"
    assert entry["Icon"] == "lrp-viewer"
    categories = [c for c in entry["Categories"].split(";") if c]
    assert [c for c in categories if c in MAIN_CATEGORIES] == ["Science"]
    mime = entry["MimeType"].split(";")
    assert "application/x-nifti" in mime and "application/dicom" in mime


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils is not installed")
def test_desktop_entry_validates():
    result = subprocess.run(["desktop-file-validate", str(PACKAGING / "lrp-viewer.desktop")],
                            capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_mime_type_globs_nifti():
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    tree = ET.parse(PACKAGING / "lrp-viewer-mime.xml")
    (mime,) = tree.getroot().findall("m:mime-type", ns)
    assert mime.get("type") == "application/x-nifti"
    assert {g.get("pattern") for g in mime.findall("m:glob", ns)} == {"*.nii", "*.nii.gz"}
    offsets = {m.get("offset"): m.get("value") for m in mime.findall("m:magic/m:match", ns)}
    assert offsets == {"344": "n+1", "4": "n+2"}  # NIfTI-1 and NIfTI-2 magic


def test_icon_set_has_every_size():
    for size in SIZES:
        with Image.open(ROOT / "resources" / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "lrp-viewer.png") as im:
            assert im.size == (size, size) and im.mode == "RGBA"
            assert im.getpixel((size // 2, size // 2))[3] == 255  # the icon, not an empty canvas


def test_scripts_parse():
    for script in ("build.sh", "smoke.sh"):
        assert subprocess.run(["bash", "-n", str(PACKAGING / script)]).returncode == 0
    assert subprocess.run(["sh", "-n", str(PACKAGING / "install.sh")]).returncode == 0


def _tarball_tree(tmp_path: Path) -> Path:
    """The layout build.sh packs, with a shell script standing in for the frozen program."""
    tree = tmp_path / "lrp-viewer-0-linux-x86_64"
    app = tree / "lrp-viewer"
    app.mkdir(parents=True)
    program = app / "lrp-viewer"
    program.write_text("#!/bin/sh\necho stand-in \"$@\"\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    (app / "_internal").mkdir()
    (app / "_internal" / "data.bin").write_bytes(b"\0" * 10)
    share = tree / "share"
    (share / "applications").mkdir(parents=True)
    shutil.copy(PACKAGING / "lrp-viewer.desktop", share / "applications")
    (share / "mime" / "packages").mkdir(parents=True)
    shutil.copy(PACKAGING / "lrp-viewer-mime.xml", share / "mime" / "packages" / "lrp-viewer.xml")
    shutil.copytree(ROOT / "resources" / "icons" / "hicolor", share / "icons" / "hicolor")
    shutil.copy(PACKAGING / "install.sh", tree / "install.sh")
    return tree


def test_install_sh_installs_into_a_prefix_and_uninstalls(tmp_path):
    tree = _tarball_tree(tmp_path)
    prefix = tmp_path / "prefix"
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # the desktop cache tools may or may not exist
    run = subprocess.run(["sh", str(tree / "install.sh"), "--prefix", str(prefix)], capture_output=True, text=True,
                         env=env)
    assert run.returncode == 0, run.stderr
    app = prefix / "lib" / "lrp-viewer"
    assert (app / "_internal" / "data.bin").read_bytes() == b"\0" * 10
    out = subprocess.run([str(prefix / "bin" / "lrp-viewer"), "x.nii"], capture_output=True, text=True).stdout
    assert out == "stand-in x.nii\n"
    desktop = (prefix / "share" / "applications" / "lrp-viewer.desktop").read_text()
    assert f"Exec={app}/lrp-viewer %F" in desktop
    assert (prefix / "share" / "icons" / "hicolor" / "48x48" / "apps" / "lrp-viewer.png").is_file()
    assert (prefix / "share" / "mime" / "packages" / "lrp-viewer.xml").is_file()

    run = subprocess.run(["sh", str(tree / "install.sh"), "--uninstall", "--prefix", str(prefix)],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    left = sorted(str(p.relative_to(prefix)) for p in prefix.rglob("*") if p.is_file() and "lrp-viewer" in p.name)
    assert left == [] and not app.exists()


def test_install_sh_refuses_unknown_options(tmp_path):
    run = subprocess.run(["sh", str(PACKAGING / "install.sh"), "--frobnicate"], capture_output=True, text=True)
    assert run.returncode == 2 and "unknown option --frobnicate" in run.stderr
