"""Third-party licences of what lrp-viewer runs with, read from the installed packages.

The shipped build bundles every runtime dependency, so it must carry their licence
texts (THIRD_PARTY_NOTICES) and must not contain GPL/AGPL code, which would make the
whole binary GPL. Both come from one source, the metadata of the installed
distributions (``importlib.metadata``), walked from ``lrp-viewer``'s own requirements
with their environment markers evaluated, exactly the set pip would install: the
build script writes the notices file from it, a test checks the licences, and the
About box shows the bundled file (or this text, in a pip install).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = "lrp-viewer"

# Strong copyleft: bundling it would put the binary under its terms. LGPL is weak
# copyleft (dynamic linking, replaceable libraries) and is allowed; see QT_NOTICE.
_STRONG_COPYLEFT = re.compile(r"\b(A?GPL|GNU (Affero )?General Public)", re.IGNORECASE)
_WEAK = re.compile(r"\bLGPL|Lesser General Public|Library General Public", re.IGNORECASE)
_LICENCE_FILE = re.compile(r"(^|/)(LICEN[CS]E|COPYING|NOTICE|COPYRIGHT)[^/]*$", re.IGNORECASE)

QT_NOTICE = """\
Qt and PySide6 (Qt for Python) are used under the GNU Lesser General Public License
version 3 (LGPL-3.0). The Qt and PySide6 libraries are included unmodified as separate
shared libraries (in the installed folder: _internal/libQt6*.so.6, _internal/PySide6/); you may replace them
with other builds of the same version, for example ones you built from source. Their
source code is available from https://download.qt.io/official_releases/ and
https://code.qt.io/. The LGPL-3.0 text, and the GPL-3.0 text it builds on, are in the
licences/ folder of the installed build and at https://www.gnu.org/licenses/lgpl-3.0.html.
Copyright (C) The Qt Company Ltd. and other contributors.
"""

CODECS_NOTICE = """\
Compiled libraries inside Python packages: python-gdcm contains GDCM (BSD-3-Clause) with
its bundled IJG libjpeg, CharLS, OpenJPEG, expat and zlib; pyjpegls contains CharLS
(BSD-3-Clause); pylibjpeg-openjpeg contains OpenJPEG (BSD-2-Clause); their licence texts
are in the package sections below where the packages ship them.
"""

PYINSTALLER_NOTICE = """\
The standalone build is made with PyInstaller. Its bootloader is GPL-2.0 with an
exception that allows distributing programs built with it under any licence; no
PyInstaller code other than the bootloader is included.
"""

PATENT_NOTE = "LRP is reported by its inventors to be patented (free for research use)."


@dataclass(frozen=True)
class Package:
    """One installed distribution of the runtime closure."""

    name: str
    version: str
    licence: str
    homepage: str
    licence_files: tuple[Path, ...]

    @property
    def strong_copyleft(self) -> bool:
        return is_strong_copyleft(self.licence)


def runtime_packages(root: str = ROOT) -> list[Package]:
    """Every distribution ``root`` needs at run time here (no extras), sorted by name."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [(root, ())]
    while todo:
        name, extras = todo.pop()
        key = _key(name)
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement whose marker did not apply is never installed
        seen[key] = dist
        for req in dist.requires or []:
            parsed = _requirement(req, extras)
            if parsed is not None:
                todo.append(parsed)
    return sorted((_package(d) for k, d in seen.items() if k != _key(root)), key=lambda p: p.name.lower())


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement(text: str, extras: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
    """``(name, extras)`` of a requirement whose marker holds here, else None."""
    from packaging.requirements import Requirement

    req = Requirement(text)
    if req.marker is not None:
        envs = [{"extra": e} for e in extras] or [{"extra": ""}]
        if not any(req.marker.evaluate(env) for env in envs):
            return None
    return req.name, tuple(sorted(req.extras))


def _package(dist: metadata.Distribution) -> Package:
    meta = dist.metadata
    files = tuple(Path(str(dist.locate_file(f))) for f in (dist.files or []) if _LICENCE_FILE.search(str(f)))
    homepage = meta.get("Home-page") or ""
    for url in meta.get_all("Project-URL") or []:
        label, _, link = url.partition(",")
        if not homepage or label.strip().lower() in ("homepage", "source", "repository"):
            homepage = link.strip() or homepage
    return Package(meta["Name"], meta["Version"], licence_of(meta), homepage, files)


def licence_of(meta: metadata.PackageMetadata) -> str:
    """The declared licence: License-Expression, else a short License field, else the classifiers."""
    expression = meta.get("License-Expression")
    if expression:
        return expression.strip()
    declared = (meta.get("License") or "").strip()
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    if declared and len(declared) <= 100 and "\n" not in declared:
        return declared if not classifiers else f"{declared} ({'; '.join(classifiers)})"
    if classifiers:
        return " OR ".join(classifiers) if len(classifiers) > 1 else classifiers[0]
    first = declared.splitlines()[0].strip() if declared else ""
    return first[:100] or "UNKNOWN"


def is_strong_copyleft(licence: str) -> bool:
    """True if ``licence`` is GPL or AGPL with no non-copyleft alternative to choose.

    ``LGPL-3.0-only OR GPL-2.0-only`` (PySide6) is fine: we take the LGPL alternative.
    A proprietary alternative does not count (a user of the build holds no such
    licence), so "GPLv3; Other/Proprietary License" (pylibjpeg-libjpeg) is copyleft.
    """
    parts = [a.strip() for a in re.split(r"\s+OR\s+|;|\(|\)", licence) if a.strip()]
    strong = [a for a in parts if _STRONG_COPYLEFT.search(a) and not _WEAK.search(a)]
    usable = [a for a in parts if a not in strong and "proprietary" not in a.lower() and a.upper() != "AND"]
    return bool(strong) and not usable


def notices_text(packages: list[Package] | None = None, build: str = "") -> str:
    """THIRD_PARTY_NOTICES: a table of every package and licence, then their licence texts."""
    from viewer import __version__

    packages = runtime_packages() if packages is None else packages
    width = max((len(p.name) + len(p.version) for p in packages), default=10) + 3
    lines = [f"Third-party software in lrp-viewer {__version__}{f' ({build})' if build else ''}",
             "", "lrp-viewer itself is licensed under BSD-3-Clause (see LICENSE).", PATENT_NOTE, "",
             QT_NOTICE, PYINSTALLER_NOTICE, CODECS_NOTICE, "Packages (name, version, licence, home page):", ""]
    lines += [f"  {p.name + ' ' + p.version:<{width}}{p.licence}   {p.homepage}".rstrip() for p in packages]
    for p in packages:
        lines += ["", "=" * 78, f"{p.name} {p.version} — {p.licence}", p.homepage, "=" * 78]
        texts = [f for f in p.licence_files if f.is_file()]
        if not texts:
            lines.append(f"(no licence file in the package's metadata; licence declared: {p.licence})")
        for path in texts:
            lines += ["", f"--- {path.name} ---", path.read_text(encoding="utf-8", errors="replace").rstrip()]
    return "\n".join(lines) + "\n"


def bundled_notices() -> Path | None:
    """THIRD_PARTY_NOTICES next to the frozen program, when this is the installed build
    (it carries no package metadata for most of its dependencies)."""
    if not getattr(sys, "frozen", False):
        return None
    path = Path(sys.executable).resolve().parent / "THIRD_PARTY_NOTICES"
    return path if path.is_file() else None


def current_notices() -> str:
    """The notices of what is running: the bundled file, or made from the installed packages."""
    bundled = bundled_notices()
    return bundled.read_text(encoding="utf-8") if bundled is not None else notices_text()
