"""Reading ``torch.save`` files and TorchScript archives without running what they contain.

``torch.load(weights_only=True)`` reads tensors and refuses anything else, but its
refusal does not say *why*: a damaged file, a text file and a pickled network all end in
the same ``UnpicklingError``. Telling them apart matters, because "pass trust=True" is
the right advice only for a real pickled object; for a broken file it teaches users to
switch off the one check that protects them. So a refused file is inspected with
:mod:`pickletools`, which decodes the opcodes without executing them.

TorchScript archives hold compiled code (``code/`` in the zip) that runs when loaded
(``__setstate__``) and at every prediction, and it can read and write files
(``torch.from_file(..., shared=True)``), so loading one needs trust like a pickle.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from viewer.models.errors import ModelLoadError, UntrustedModelError
from viewer.models.safety import untrusted_message

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
TORCHSCRIPT_WHY = "TorchScript files contain compiled code that runs when the file is loaded and at every " \
    "prediction, and that code can read and write files"
_EXPECTED = "a .safetensors file or a torch.save'd state dict"


def is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a ``code/`` folder (plain state dicts have none)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as zf:
            return any(re.match(r"^[^/]+/code/", n) or n.startswith("code/") for n in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def jit_load(path: Path, trust: bool) -> nn.Module:
    """Load a TorchScript module; refused without trust (see the module docstring)."""
    if not trust:
        raise UntrustedModelError(untrusted_message(f"the TorchScript model {path.name}", "that file", TORCHSCRIPT_WHY))
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError subclasses with long C++ traces
        raise ModelLoadError(f"Cannot load TorchScript file {path.name}: {first_line(exc)}") from exc


def load_torch_file(path: Path, trust: bool) -> Any:
    """``torch.load`` that runs no code unless trusted.

    A file that holds only tensors loads with ``weights_only=True``. A pickle that names
    classes other than tensors is a pickled object (usually a full module): refused
    without trust, loaded with it. Anything else is reported as not a weights file.
    """
    if not path.is_file():
        raise ModelLoadError(f"{path} is not a regular file; expected {_EXPECTED}.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        named = pickled_globals(path)
        if named is None:  # torch's own message would suggest weights_only=False: not for a broken file
            raise ModelLoadError(
                f"{path.name} is not a PyTorch weights file, or it is damaged ({_describe_start(path)}); "
                f"expected {_EXPECTED}."
            ) from exc
        if not trust:
            foreign = sorted(named, key=lambda n: (n.startswith(("torch.", "__builtin__.", "builtins.")), n))
            shown = ", ".join(foreign[:3]) or "objects other than tensors"
            raise UntrustedModelError(
                untrusted_message(f"the model file {path.name}", f"the file {path.name}",
                                  f"it is a pickled object naming {shown}, not plain weights")
            ) from exc
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types on foreign files
        raise ModelLoadError(
            f"{path.name} is not a PyTorch weights file, or it is damaged ({first_line(exc)}); expected {_EXPECTED}."
        ) from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - arbitrary code ran and failed; the user opted in
        raise ModelLoadError(f"Loading the pickled model {path.name} failed: {first_line(exc)}") from exc


def pickled_globals(path: Path) -> set[str] | None:
    """The ``module.name`` globals a torch.save file's pickle imports, or None if it is no pickle.

    Decoded with :func:`pickletools.genops`, which reads opcodes without running them.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                name = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                if name is None:
                    return None
                data = zf.read(name)
        else:
            with open(path, "rb") as fh:
                data = fh.read(64 * 1024 * 1024)
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return None
    if not data[:1] == b"\x80":  # every pickle torch writes starts with a PROTO opcode
        return None
    names: set[str] = set()
    stream = io.BytesIO(data)
    for index in range(4):  # the legacy format is several pickles in a row, then raw storage bytes
        try:
            names |= _globals_of_one_pickle(stream)
        except Exception:  # noqa: BLE001 - a damaged pickle raises anything from the decoder
            if index == 0:
                return None
            break
        if stream.read(1)[:1] != b"\x80":
            break
        stream.seek(-1, io.SEEK_CUR)
    tensor_machinery = ("torch._utils.", "collections.OrderedDict", "torch.FloatStorage", "torch.HalfStorage")
    return {n for n in names if not n.startswith(tensor_machinery) and not re.match(r"torch\.\w*Storage$", n)}


def _globals_of_one_pickle(stream: io.BytesIO) -> set[str]:
    names: set[str] = set()
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(stream):
        if op.name == "GLOBAL":
            names.add(str(arg).replace(" ", "."))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and isinstance(arg, str):
            strings = (strings + [arg])[-2:]
        elif op.name == "STACK_GLOBAL" and len(strings) == 2:
            names.add(".".join(strings))
        if op.name == "STOP":
            break
    return names


def _describe_start(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        return exc.strerror or "unreadable"
    if not head:
        return "the file is empty"
    if head.startswith(b"PK"):
        return "a zip archive without readable PyTorch data"
    if head[:1] == b"\x80":
        return "a pickle stream that cannot be decoded"
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head) / len(head)
    return "the file holds text" if printable > 0.95 else "unrecognised binary data"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
