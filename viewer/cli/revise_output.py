"""What the revise command writes: the revised model card, its weights, the report, and
the checkpoint that lets an interrupted run continue.

Everything is written atomically (a reader never sees half a file). The new card is
the original card's own fields with a new name, description and weights file, so it
loads with :func:`viewer.models.load_model` exactly like the original.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from viewer.io.atomic import atomic_path, atomic_write
from viewer.revise.errors import ReviseError

CHECKPOINT_FORMAT = 1


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_raw_card(path: Path) -> dict[str, Any]:
    """The card's fields as written (the loader has validated them already)."""
    data = path.read_bytes().decode("utf-8")
    return tomllib.loads(data) if path.suffix.lower() == ".toml" else json.loads(data)


def toml_text(raw: Mapping[str, Any]) -> str:
    """A model card as TOML: top-level values first, then each table (nested tables dotted)."""
    lines: list[str] = []
    _table(raw, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(table: Mapping[str, Any], prefix: list[str], lines: list[str]) -> None:
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    if prefix and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_key(k) for k in prefix) + "]")
    for key, value in scalars:
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables:
        _table(value, prefix + [key], lines)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are TOML basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise ReviseError(f"The model card holds a value of type {type(value).__name__} that cannot be written back.")


def revised_card(raw: Mapping[str, Any], weights: str, name: str, note: str) -> dict[str, Any]:
    card = {k: v for k, v in raw.items()}
    card["name"] = name
    card["description"] = (str(raw.get("description", "")).rstrip() + " " + note).strip()
    card["weights"] = weights
    return card


def write_model(out: Path, module: nn.Module, card: Mapping[str, Any], meta: Mapping[str, str]) -> Path:
    """The weights (``<out stem>.safetensors`` beside the card) and the card itself."""
    from safetensors.torch import save_file

    weights = out.with_suffix(".safetensors")
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata=dict(meta))
    text = toml_text(card) if out.suffix.lower() == ".toml" else json.dumps(card, indent=2) + "\n"
    with atomic_write(out, "w") as fh:
        fh.write(text)
    return weights


def write_report(path: Path, report: Mapping[str, Any]) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(json.dumps(report, indent=2, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def checkpoint_path(out: Path) -> Path:
    return out.parent / f".{out.name}.revise-checkpoint.pt"


def save_checkpoint(path: Path, fingerprint: str, mask: Mapping[str, torch.Tensor] | None,
                    training: Mapping[str, Any], extra: Mapping[str, Any]) -> None:
    state = {"format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "mask": dict(mask) if mask else None,
             "training": dict(training), "extra": dict(extra)}
    with atomic_path(path) as tmp:
        torch.save(state, str(tmp))


def load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The saved state of an interrupted run with the same arguments, or None if there is none.

    A checkpoint of another run (other arguments, model or data) is an error: it is
    not ours to delete, and silently starting over would hide that.
    """
    if not path.exists():
        return None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged checkpoint: say so, never guess
        raise ReviseError(f"The checkpoint {path} cannot be read ({exc}); delete it or pass --overwrite.") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ReviseError(f"{path} is not a revise checkpoint this version can continue; delete it or pass --overwrite.")
    if state.get("fingerprint") != fingerprint:
        raise ReviseError(f"{path} belongs to an interrupted revision with other arguments, model or data; "
                          "run that command again to finish it, or pass --overwrite to start this one afresh.")
    return state
