"""What a model card or bundle may build without the user's explicit trust.

A card's ``architecture`` and a bundle's ``_target_`` name something to import and
call. Calling a *function* from a well-known package is not safe: ``torch.hub.load``,
``torch.load``, ``torch.jit.load``, ``torch.utils.cpp_extension.load_inline``,
``monai.bundle.scripts.run`` and ``monai.utils.module.instantiate`` all run code that a
file names. So without trust the name must resolve — after importing it, checking the
object itself, not the spelling — to a **class derived from** ``torch.nn.Module`` that is
*defined* in one of :data:`ALLOWED_NAMESPACES`, imported from the installed package
(:mod:`viewer.models.installed`). Its arguments come from TOML/JSON (numbers, strings,
lists, tables) or are other such modules, so constructing it runs only the library's
own code. Two more rules keep loading offline and file-free: arguments that would
download weights (``pretrained=True``, ``weights=...``) or that name a URL or a file
are refused, since the card's ``weights`` file is where weights come from.

torchvision builds most of its models with builder functions (``resnet18``); those
registered in torchvision's own model registry are accepted by identity with that
registry, with their download arguments forced off.

Everything else needs ``trust=True`` (``--trust`` on the command line, a confirmation
dialog in the app), which imports and calls the name as written.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from torch import nn

from viewer.models.errors import ModelLoadError, UntrustedModelError
from viewer.models.installed import DISTRIBUTIONS, import_installed

# Modules whose nn.Module classes may be built without trust (a class must be defined here).
ALLOWED_NAMESPACES = ("torch.nn", "torchvision.models", "monai.networks", "timm.models", "timm.layers", "viewer")
# Arguments that make a constructor fetch weights from the internet.
DOWNLOAD_ARGS = ("pretrained", "pretrained_backbone", "weights", "weights_backbone", "pretrained_url",
                 "pretrained_path", "checkpoint", "checkpoint_path", "cache_dir")
# A string argument that looks like one of these points at something outside the card.
_FILE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle", ".py", ".so", ".json", ".yaml", ".yml",
                  ".ts", ".onnx", ".safetensors", ".npz", ".h5", ".zip", ".tar", ".gz")


def untrusted_message(what: str, source: str, why: str = "") -> str:
    return (
        f"Loading {what} would run code from {source}{f' ({why})' if why else ''}. Only do this for files you "
        "trust: such code can do anything your user account can. Pass trust=True (command line: --trust; "
        "in the app, confirm the dialog) to load it anyway."
    )


def _in_namespace(name: str) -> bool:
    return any(name == ns or name.startswith(ns + ".") for ns in ALLOWED_NAMESPACES)


def resolve_architecture(import_path: str, trust: bool, entry: str = "architecture") -> Callable[..., Any]:
    """The class (or, with trust, any callable) that ``import_path`` names.

    Raises :class:`UntrustedModelError` for anything that is not an allowed
    ``nn.Module`` class when ``trust`` is False, :class:`ModelLoadError` when the name
    does not resolve.
    """
    what = f"{entry} '{import_path}'"
    module_name, _, attr = import_path.rpartition(".")
    if not module_name or not attr or not all(p.isidentifier() for p in import_path.split(".")):
        raise ModelLoadError(f"{what}: not an import path like 'monai.networks.nets.DenseNet121'.")
    top = module_name.split(".", 1)[0]
    if trust:
        module = _import_any(module_name, what)
    else:
        if top not in DISTRIBUTIONS and top != "viewer":
            raise UntrustedModelError(
                untrusted_message(what, f"the package '{top}'")
                + f" Without trust, only torch.nn / torchvision / MONAI / timm / lrp-viewer network classes load."
            )
        module = import_installed(module_name, what)
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ModelLoadError(f"{what}: '{module_name}' has no '{attr}'; check the name.") from None
    if not trust:
        _check_allowed(obj, import_path, what)
    if not callable(obj):
        raise ModelLoadError(f"{what} is not a class or function.")
    return obj


def _import_any(module_name: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(
            f"{what}: cannot import '{module_name}': {exc}. Check the spelling, or install the package."
        ) from exc


def _check_allowed(obj: Any, import_path: str, what: str) -> None:
    if _is_torchvision_builder(obj):
        return
    if not inspect.isclass(obj):
        kind = "a function" if inspect.isroutine(obj) else f"a {type(obj).__name__}"
        raise UntrustedModelError(
            untrusted_message(what, "that function", f"it is {kind}, and functions such as torch.hub.load, "
                              "torch.load or monai.bundle.scripts.run execute code that a file names")
            + " Without trust, name a network class (a torch.nn.Module subclass) instead."
        )
    if not issubclass(obj, nn.Module):
        raise UntrustedModelError(
            untrusted_message(what, f"the class {obj.__module__}.{obj.__qualname__}",
                              "it is not a torch.nn.Module network class")
        )
    if not (_in_namespace(obj.__module__) and _in_namespace(import_path.rpartition(".")[0])):
        raise UntrustedModelError(
            untrusted_message(what, f"the module '{obj.__module__}'",
                              "only network classes defined in " + ", ".join(ALLOWED_NAMESPACES)
                              + " load without trust")
        )


def _is_torchvision_builder(obj: Any) -> bool:
    """True when ``obj`` is a model builder listed in torchvision's own registry."""
    if not inspect.isfunction(obj) or not str(getattr(obj, "__module__", "")).startswith("torchvision.models"):
        return False
    try:
        from torchvision.models import get_model_builder, list_models
    except ImportError:
        return False
    name = obj.__name__
    return name in list_models() and get_model_builder(name) is obj


def check_arguments(factory: Callable[..., Any], kwargs: dict[str, Any], what: str) -> dict[str, Any]:
    """Refuse download and file arguments; switch off constructors' default downloads."""
    for key, value in kwargs.items():
        if key in DOWNLOAD_ARGS and value not in (None, False):
            raise ModelLoadError(
                f"{what}: the argument {key}={value!r} would fetch weights from the internet or a file while "
                "building the network. The card's (or bundle's) weights file provides the weights; remove it."
            )
    for value in _strings(kwargs):
        low = value.lower()
        if "://" in value or "/" in value or "\\" in value or low.endswith(_FILE_SUFFIXES):
            raise UntrustedModelError(
                untrusted_message(what, f"the location {value!r}",
                                  "an architecture argument that names a file or URL lets the network's code "
                                  "read or download it")
            )
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return kwargs
    # defaults that download (EfficientNetBN's pretrained=True, detection models' weights_backbone)
    off = {k: (False if isinstance(p.default, bool) else None) for k, p in params.items()
           if k in DOWNLOAD_ARGS and k not in kwargs and p.default not in (None, False, inspect.Parameter.empty)}
    return {**off, **kwargs}


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def build_module(import_path: str, kwargs: dict[str, Any], trust: bool, entry: str = "architecture") -> nn.Module:
    """Construct the architecture with keyword arguments; it must be an ``nn.Module``."""
    what = f"{entry} '{import_path}'"
    factory = resolve_architecture(import_path, trust, entry)
    if not trust:
        kwargs = check_arguments(factory, kwargs, what)
    module = call_factory(factory, kwargs, what)
    if not isinstance(module, nn.Module):
        raise ModelLoadError(f"{what} built a {type(module).__name__}, not a torch.nn.Module.")
    return module


def call_factory(factory: Callable[..., Any], kwargs: dict[str, Any], what: str) -> Any:
    """Call the network's constructor; any failure becomes a :class:`ModelLoadError`."""
    try:
        return factory(**kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - constructors raise anything on bad arguments
        shown = {k: v for k, v in kwargs.items() if not isinstance(v, nn.Module)}
        raise ModelLoadError(
            f"Cannot build {what} with the arguments {shown}: {type(exc).__name__}: {exc}"
        ) from exc
