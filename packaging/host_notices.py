"""Append the notices of the system libraries PyInstaller copied from the build host.

PyInstaller bundles every shared library the frozen program links to, except the C
library and the graphics stack; on a Debian/Ubuntu build host those are files of Debian
packages (libstdc++, libexpat, OpenSSL, GLib, ...), whose licences must go along. Each
bundled library is traced to its package with ``dpkg -S`` and the package's
``/usr/share/doc/<package>/copyright`` is appended, plus the Python licence. A library
under GPL (not LGPL) would make the bundle GPL: the build stops if one is found (GNU
readline is the usual one; the spec excludes Python's readline module for that reason).

    python packaging/host_notices.py BUNDLE_DIR NOTICES_FILE
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
from pathlib import Path

GPL_ONLY_PACKAGES = re.compile(r"^(libreadline\d*|libgmp\d*|libgdbm\d*|libmpfr\d*)$")


def package_of(name: str) -> str | None:
    result = subprocess.run(["dpkg", "-S", f"*/{name}"], capture_output=True, text=True)
    if result.returncode != 0 or not result.stdout:
        return None
    return result.stdout.splitlines()[0].split(":", 1)[0]


def main(bundle: str, notices: str) -> int:
    internal = Path(bundle) / "_internal"
    libs = sorted(p.name for p in internal.iterdir() if p.is_file() and re.match(r"lib.*\.so", p.name))
    packages: dict[str, list[str]] = {}
    for name in libs:
        pkg = package_of(name)
        if pkg is not None:
            packages.setdefault(pkg, []).append(name)
    bad = [p for p in packages if GPL_ONLY_PACKAGES.match(p)]
    if bad:
        print(f"host_notices: GPL libraries in the bundle: {', '.join(bad)}; exclude what links them", file=sys.stderr)
        return 1
    lines = ["", "=" * 78, "System libraries copied from the build host", "=" * 78, ""]
    for pkg, names in sorted(packages.items()):
        version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True).stdout
        lines.append(f"  {pkg} {version}: {', '.join(names)}")
    for pkg in sorted(packages):
        copyright_file = Path("/usr/share/doc") / pkg / "copyright"
        lines += ["", "=" * 78, f"{pkg} (Debian package) — {copyright_file}", "=" * 78]
        lines.append(copyright_file.read_text(encoding="utf-8", errors="replace").rstrip()
                     if copyright_file.is_file() else "(no copyright file on the build host)")
    python_licence = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    lines += ["", "=" * 78, f"Python {sys.version.split()[0]} — PSF-2.0", "=" * 78,
              python_licence.read_text(encoding="utf-8").rstrip() if python_licence.is_file()
              else "See https://docs.python.org/3/license.html"]
    with open(notices, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"host libraries: {len(libs)} files, {len(packages)} Debian packages noted")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
