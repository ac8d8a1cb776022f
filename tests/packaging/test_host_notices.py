"""packaging/host_notices.py: system libraries PyInstaller copies from a Debian build host
are traced to their packages and their copyright files appended; GNU readline stops the build."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "packaging" / "host_notices.py"
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")

pytestmark = pytest.mark.skipif(shutil.which("dpkg") is None or not (LIBDIR / "libz.so.1").is_file(),
                                reason="needs a Debian/Ubuntu host (dpkg, zlib1g)")


def bundle_with(tmp_path: Path, *libs: str) -> Path:
    internal = tmp_path / "bundle" / "_internal"
    internal.mkdir(parents=True)
    for name in libs:
        shutil.copy(LIBDIR / name, internal / name)
    (internal / "notalib.txt").write_text("x")
    return internal.parent


def test_libraries_are_traced_to_their_packages_and_copyrights(tmp_path):
    bundle = bundle_with(tmp_path, "libz.so.1")
    notices = tmp_path / "NOTICES"
    notices.write_text("head\n")
    run = subprocess.run([sys.executable, str(SCRIPT), str(bundle), str(notices)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    text = notices.read_text()
    assert text.startswith("head\n")
    assert "System libraries copied from the build host" in text
    assert "  zlib1g " in text and ": libz.so.1" in text
    assert (Path("/usr/share/doc/zlib1g/copyright").read_text().strip()[:200]) in text
    assert "PSF-2.0" in text
    assert run.stdout.strip() == "host libraries: 1 files, 1 Debian packages noted"


@pytest.mark.skipif(not (LIBDIR / "libreadline.so.8").is_file(), reason="libreadline8 is not installed")
def test_gnu_readline_stops_the_build(tmp_path):
    bundle = bundle_with(tmp_path, "libz.so.1", "libreadline.so.8")
    notices = tmp_path / "NOTICES"
    notices.write_text("")
    run = subprocess.run([sys.executable, str(SCRIPT), str(bundle), str(notices)], capture_output=True, text=True)
    assert run.returncode == 1
    assert "libreadline8" in run.stderr
    assert notices.read_text() == ""
