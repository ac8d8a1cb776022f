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


@dataclass(frozen=True)
class PanelState:
    """``params`` are the method's keyword arguments (for LRP including ``preset``).

    Frozen and with a read-only ``params`` mapping: the session replaces a panel's state
    whole, so a listener holding an old state never sees it change underneath.
    """

    method: str = "lrp"
    params: Mapping[str, Any] = field(default_factory=dict)
    overlay: OverlaySettings = field(default_factory=OverlaySettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def with_(self, **changes: Any) -> "PanelState":
        return dataclasses.replace(self, **changes)

    @property
    def preset(self) -> str | None:
        return self.params.get("preset")

    def to_spec(self) -> dict[str, Any]:
        return {"method": self.method, "params": dict(self.params), "overlay": self.overlay.to_dict()}
