"""The licences of what lrp-viewer ships with (pip-licenses style, over importlib.metadata).

The installed build bundles every runtime dependency, so one GPL/AGPL package makes
the whole binary GPL. The runtime closure is walked from lrp-viewer's requirements as
installed here, markers evaluated, as pip resolves it.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from viewer.notices import PATENT_NOTE, QT_NOTICE, is_strong_copyleft, notices_text, runtime_packages

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def packages():
    return runtime_packages()


def _names(packages) -> set[str]:
    return {re.sub(r"[-_.]+", "-", p.name).lower() for p in packages}


def test_installed_requirements_are_pyprojects():
    """Otherwise the closure below describes an old install ('pip install -e .' again)."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    installed = [r for r in metadata.requires("lrp-viewer") or [] if "extra ==" not in r]
    assert sorted(map(str, map(Requirement, installed))) == sorted(map(str, map(Requirement, declared)))


def test_no_runtime_dependency_is_gpl_or_agpl(packages):
    offenders = [f"{p.name} {p.version}: {p.licence}" for p in packages if p.strong_copyleft]
    assert offenders == []


def test_the_closure_holds_the_permissive_decoders_and_not_libjpeg(packages):
    names = _names(packages)
    assert {"python-gdcm", "pyjpegls", "pylibjpeg", "pylibjpeg-openjpeg", "pylibjpeg-rle", "pydicom",
            "torch", "numpy", "pyside6-essentials", "shiboken6", "pyqtgraph", "nibabel"} <= names
    assert "pylibjpeg-libjpeg" not in names
    assert not any(n.startswith(("pytest", "zennit", "captum", "monai", "quantus")) for n in names)  # test extras


def test_every_package_declares_a_licence(packages):
    unknown = [p.name for p in packages if p.licence == "UNKNOWN" and not p.licence_files]
    # NVIDIA's cuda-toolkit meta-package (CUDA builds of torch) declares none; its parts carry NVIDIA's licence
    assert [n for n in unknown if n != "cuda-toolkit"] == []


@pytest.mark.parametrize(("licence", "strong"), [
    ("GPL V3.0 (GNU General Public License v3 (GPLv3); Other/Proprietary License)", True),  # pylibjpeg-libjpeg
    ("AGPL-3.0-or-later", True),
    ("GNU General Public License v2 (GPLv2)", True),
    ("MIT AND GPL-3.0-only", True),
    ("LGPL-3.0-only OR GPL-2.0-only OR GPL-3.0-only", False),  # PySide6: the LGPL alternative
    ("GNU Lesser General Public License v3 (LGPLv3)", False),
    ("GPL-2.0-only OR MIT", False),
    ("BSD-3-Clause", False),
    ("LicenseRef-NVIDIA-Proprietary", False),
])
def test_copyleft_classification(licence, strong):
    assert is_strong_copyleft(licence) is strong


def test_notices_name_every_package_with_its_licence_text(packages):
    text = notices_text(packages, build="test")
    assert PATENT_NOTE in text and QT_NOTICE in text
    for p in packages:
        assert f"{p.name} {p.version} — {p.licence}" in text
    pydicom = next(p for p in packages if p.name.lower() == "pydicom")
    licence_text = pydicom.licence_files[0].read_text(encoding="utf-8").strip()
    assert licence_text and licence_text in text


def test_repository_licence_is_bsd3_as_declared():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("BSD 3-Clause License")
    assert "Neither the name of the copyright holder" in text
    assert tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["license"] == "BSD-3-Clause"
