"""One explanation panel: which method with which parameters, and how it is drawn.

Comparison mode shows up to :data:`MAX_PANELS` panels side by side, each with its own
method and overlay settings (FSLeyes' per-view display context), all following the
session's single cursor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from viewer.session.display import OverlaySettings

MAX_PANELS = 4
MODELS = ("A", "B")  # the session's model, and the second model opened to compare with
# Grad-CAM's maps are meant to be read positive-only (the original method applies a ReLU);
# the negative rim that upsampling leaves around the evidence misleads more than it tells.
POSITIVE_ONLY_METHODS = ("gradcam", "gradcampp")


def default_sign(method: str) -> str:
    """Which sign of a method's map is shown until the user chooses otherwise."""
    return "positive" if method in POSITIVE_ONLY_METHODS else "both"


def with_method(state: "PanelState", method: str, params: Mapping[str, Any]) -> "PanelState":
    """``state`` switched to another method; the shown sign follows the method's default
    unless the user had changed it from the old method's default."""
    overlay = state.overlay
    if method != state.method and overlay.sign == default_sign(state.method):
        overlay = overlay.with_(sign=default_sign(method))
    return state.with_(method=method, params=dict(params), overlay=overlay)


@dataclass(frozen=True)
class PanelState:
    """``params`` are the method's keyword arguments (for LRP including ``preset``);
    ``model`` is which model the panel explains: "A" (the session's model) or "B" (the
    second model of :mod:`viewer.session.compare_model`).

    Frozen and with a read-only ``params`` mapping: the session replaces a panel's state
    whole, so a listener holding an old state never sees it change underneath.
    """

    method: str = "lrp"
    params: Mapping[str, Any] = field(default_factory=dict)
    overlay: OverlaySettings = field(default_factory=OverlaySettings)
    model: str = "A"

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        if self.model not in MODELS:
            raise ValueError(f"A panel explains model \"A\" or \"B\", not {self.model!r}.")

    def with_(self, **changes: Any) -> "PanelState":
        return dataclasses.replace(self, **changes)

    @property
    def preset(self) -> str | None:
        return self.params.get("preset")

    def to_spec(self) -> dict[str, Any]:
        return {"method": self.method, "params": dict(self.params), "overlay": self.overlay.to_dict(),
                "model": self.model}
