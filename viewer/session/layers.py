"""Layers drawn over the scan: the main relevance map, the mask, and maps from files.

A reader comparing today's explanation with one exported earlier (or by another tool)
wants both over the same scan, each switchable and with its own opacity, as FSLeyes'
and ITK-SNAP's layer lists offer. The relevance layer is panel 0's overlay and the mask
layer is the view's mask outline; maps opened from files are held here. All of them
appear in :meth:`LayersMixin.layers`, one row per layer, and :meth:`set_layer` changes
any of them the same way. Mixed into :class:`viewer.session.session.Session`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from viewer.io import colormaps
from viewer.session.display import OverlaySettings

RELEVANCE, MASK = "relevance", "mask"
MAP_COLORMAP = "coldnhot"  # unlike the main overlay's default, so the two are told apart


class LayerError(ValueError):
    """A map that cannot be shown over this scan (no scan, another voxel grid)."""


@dataclass(frozen=True, eq=False)
class MapLayer:
    """A signed map from a file on the scan's grid, with how it is drawn and its default limit."""

    name: str
    path: str | None
    data: np.ndarray
    overlay: OverlaySettings
    default_limit: float

    @property
    def limit(self) -> float:
        return float(self.overlay.fixed_limit) if self.overlay.limit_mode == "fixed" else self.default_limit


@dataclass(frozen=True)
class Layer:
    """One row of the layer list: ``key`` is ``"relevance"``, ``"mask"`` or ``("map", i)``."""

    key: Any
    title: str
    visible: bool
    opacity: float
    available: bool = True
    removable: bool = False


class LayersMixin:
    def _init_layers(self) -> None:
        self._maps: list[MapLayer] = []

    @property
    def maps(self) -> list[MapLayer]:
        return list(self._maps)

    def layers(self) -> list[Layer]:
        """Every layer, top of the drawing order first: maps from files, relevance, mask."""
        rows = [Layer(("map", i), f"Map: {m.name}", m.overlay.visible, m.overlay.opacity, True, True)
                for i, m in reversed(list(enumerate(self._maps)))]
        ov = self._panel_states[0].overlay
        main = self._panel_states[0]
        what = main.method + (f" {main.preset}" if main.preset else "")
        rows.append(Layer(RELEVANCE, f"Relevance ({what})", ov.visible, ov.opacity, self.scan is not None))
        rows.append(Layer(MASK, "Mask" + (f": {Path(self.mask_path).name}" if self.mask_path else ""),
                          self.view.mask_outline, self.view.mask_opacity, self.mask is not None))
        return rows

    def set_layer(self, key: Any, visible: bool | None = None, opacity: float | None = None) -> None:
        """Show/hide a layer or change its opacity (0–1); ValueError for an unknown key."""
        changes: dict[str, Any] = {}
        if visible is not None:
            changes["visible"] = bool(visible)
        if opacity is not None:
            changes["opacity"] = float(opacity)
        if key == RELEVANCE:
            self.set_overlay(0, **changes)
        elif key == MASK:
            view: dict[str, Any] = {}
            if "visible" in changes:
                view["mask_outline"] = changes["visible"]
            if "opacity" in changes:
                view["mask_opacity"] = changes["opacity"]
            self.set_view(**view)
        elif isinstance(key, tuple) and key[:1] == ("map",):
            self.set_map_layer(int(key[1]), **changes)
        else:
            raise ValueError(f"Unknown layer {key!r}; layers are 'relevance', 'mask' and ('map', i).")

    # -- maps from files ------------------------------------------------------------
    def open_relevance_map(self, path: str | os.PathLike) -> bool:
        """Add a map from a file (NIfTI, ...) on the scan's grid as a layer; True on success."""
        from viewer.io import load_scan
        from viewer.io.errors import ScanLoadError

        try:
            data = load_scan(path).data
            self.add_relevance_map(data, Path(path).name, str(Path(path).absolute()))
        except (ScanLoadError, LayerError) as exc:
            self._report("Cannot open relevance map", str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - an unexpected reader failure must not close the app
            self._report("Cannot open relevance map", f"{Path(path).name}: {type(exc).__name__}: {exc}")
            return False
        return True

    def add_relevance_map(self, data: np.ndarray, name: str, path: str | None = None) -> int:
        """Add an in-memory map on the scan's grid; returns its index among the maps."""
        data = np.asarray(data, dtype=np.float32)
        if self.scan is None:
            raise LayerError("Open a scan first; a relevance map is drawn on the scan's voxel grid.")
        if data.shape != tuple(self.scan.shape):
            raise LayerError(
                f"{name} has shape {data.shape} but the scan has {tuple(self.scan.shape)}; a map must lie on the "
                "scan's voxel grid (export it from lrp-viewer with this scan open, or resample it to the scan)."
            )
        limit = colormaps.symmetric_limit(data, 99.5)
        layer = MapLayer(name, path, np.ascontiguousarray(data), OverlaySettings(colormap=MAP_COLORMAP), limit)
        with self._lock:
            self._maps.append(layer)
        self.layers_changed.emit()
        return len(self._maps) - 1

    def set_map_layer(self, i: int, **changes: Any) -> None:
        """Change how map ``i`` is drawn (visible, opacity, colormap, ...)."""
        layer = self._maps[i]
        overlay = layer.overlay.with_(**changes)
        if overlay != layer.overlay:
            with self._lock:
                self._maps[i] = MapLayer(layer.name, layer.path, layer.data, overlay, layer.default_limit)
            self.layers_changed.emit()

    def remove_map_layer(self, i: int) -> None:
        with self._lock:
            del self._maps[i]
        self.layers_changed.emit()

    def _clear_maps(self) -> None:
        """Maps belong to one scan's grid; a new scan drops them."""
        if self._maps:
            with self._lock:
                self._maps.clear()
            self.layers_changed.emit()
