"""lrp-viewer: explain medical-imaging networks with Layer-wise Relevance Propagation."""

from __future__ import annotations


def _version() -> str:
    """The version from the one place it is written: ``[project] version`` in pyproject.toml.

    Installed (pip, wheel, the frozen build, which carries the dist-info) it comes from the
    package metadata; a source tree that was never installed reads pyproject.toml itself.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lrp-viewer")
    except PackageNotFoundError:
        pass
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return "0+unknown"
    return str(project.get("version", "0+unknown")) if project.get("name") == "lrp-viewer" else "0+unknown"


__version__ = _version()
