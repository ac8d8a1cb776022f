"""Where the real test images live (pydicom, pydicom-data, nibabel), without downloading anything."""

from __future__ import annotations

from pathlib import Path

import pytest


def _dicom_dirs() -> list[Path]:
    import pydicom.data

    dirs = [Path(pydicom.data.__file__).parent / "test_files"]
    try:
        import data_store  # the pydicom-data package

        dirs.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    return dirs


def dicom_file(name: str) -> Path:
    """A DICOM test file shipped with pydicom or pydicom-data; skips if it is not on disk."""
    for folder in _dicom_dirs():
        path = folder / name
        if path.is_file():
            return path
    pytest.skip(f"{name} is not installed (pydicom-data missing?)")


def dicomdir_tests() -> Path:
    return _dicom_dirs()[0] / "dicomdirtests"


def nibabel_file(name: str) -> Path:
    import nibabel.tests

    path = Path(nibabel.tests.__file__).parent / "data" / name
    if not path.is_file():
        pytest.skip(f"nibabel test file {name} is not installed")
    return path
