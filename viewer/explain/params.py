"""Description of one user-settable parameter of an attribution method or LRP preset.

The UI builds its parameter panels from these, and the CLI validates its flags with
them, so a method declares its knobs once, next to its code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its name (the keyword argument), Python type, default value,
    optional choices (for enumerations) and optional bounds (for numbers), plus a
    short label for the UI."""

    name: str
    type: type
    default: Any
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    label: str = ""
