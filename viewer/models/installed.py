"""Import a package only from where it was installed, never from the working directory.

``importlib.import_module("timm")`` takes the first ``timm`` on ``sys.path``, and the
first entry is often the current directory (``python -m viewer`` from a downloads
folder, a notebook next to an unpacked model archive). A folder named like an
allow-listed package there would then run as if it were the installed package. So
before importing, the top-level package is located without running it
(``importlib.util.find_spec``) and its file must be the one the installed
distribution's metadata lists; ``viewer`` itself must be this running package.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from viewer.models.errors import ModelLoadError, UntrustedModelError

# top-level package -> the distribution that installs it
DISTRIBUTIONS = {"torch": "torch", "torchvision": "torchvision", "monai": "monai", "timm": "timm"}


def import_installed(module_name: str, entry: str) -> ModuleType:
    """Import ``module_name`` after checking that its top-level package is the installed one.

    ``entry`` names what asked for it (a card's architecture, a bundle's ``_target_``)
    for the messages.
    """
    top = module_name.split(".", 1)[0]
    origin = _origin_of(top, entry)
    expected = _installed_origin(top, entry)
    if origin is None or Path(origin).resolve() != expected.resolve():
        raise UntrustedModelError(
            f"{entry}: the package '{top}' would be imported from {origin or 'an unknown place'}, not from its "
            f"installed copy ({expected.parent}). A folder named '{top}' in the current directory or on the "
            "Python path is not the installed package and could run anything; start the app from another "
            "folder, or pass trust=True (--trust) if you wrote that code yourself."
        )
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(
            f"{entry}: cannot import '{module_name}': {exc}. Check the spelling, or install the package "
            "that provides it."
        ) from exc


def _origin_of(top: str, entry: str) -> str | None:
    loaded = sys.modules.get(top)
    if loaded is not None:
        return getattr(loaded, "__file__", None)
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise ModelLoadError(f"{entry}: cannot locate the package '{top}': {exc}.") from exc
    if spec is None:
        raise ModelLoadError(f"{entry}: the package '{top}' is not installed; install it to open this model.")
    return spec.origin


def _installed_origin(top: str, entry: str) -> Path:
    if top == "viewer":
        import viewer

        return Path(viewer.__file__)
    dist_name = DISTRIBUTIONS.get(top)
    if dist_name is None:  # not an allow-listed package: callers check the allow-list first
        raise UntrustedModelError(f"{entry}: the package '{top}' is not on the allow-list.")
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(
            f"{entry}: the package '{top}' is not installed (pip install {dist_name}); a folder of that name "
            "on the Python path is not used without trust."
        ) from None
    return Path(str(dist.locate_file(f"{top}/__init__.py")))
