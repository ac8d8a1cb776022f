"""PNG figures of a scan with its relevance overlay, drawn with numpy and Pillow only.

The figure shows the views the app shows (axial, coronal and sagittal slices through
the cursor, or the single view of a 2D image) with the same orientation conventions
(:mod:`viewer.io.view_geometry`), the same colormaps (:mod:`viewer.io.colormaps`), a
colour bar, orientation letters and a one-line caption. Pixels are square in
millimetres, so anatomy keeps its proportions whatever the voxel spacing.

Figures are de-identified by default: nothing from the scan's metadata or file name is
drawn, and the PNG carries a single text chunk, ``Software: lrp-viewer``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from viewer.io.atomic import atomic_write
from viewer.io.colormaps import DEFAULT, colorize, lut, symmetric_limit
from viewer.io.errors import ExportError
from viewer.io.scan import Scan
from viewer.io.view_geometry import VIEWS, ViewGeometry, physical_size, resample, screen_slice, view_geometry

MAX_PIXELS = 60_000_000
_BACKGROUND = (0, 0, 0)
_TEXT = (255, 255, 255)
_OUTLINE = (255, 255, 0)


@dataclass(frozen=True)
class FigureOptions:
    """How to draw a figure; defaults match the app's defaults.

    Resolution: ``width`` (pixels of the whole figure) wins over ``scale``; ``scale`` 1
    draws the finest voxel spacing at one pixel per voxel. ``window`` is ``(centre,
    width)``, None for the scan's default. ``limit`` is the overlay's symmetric colour
    limit, None for the 99.5th percentile of |relevance| over the volume (as the app).
    ``threshold`` is a fraction of the limit (below it: transparent). ``cursor`` is the
    voxel the slices pass through, None for the volume's centre. ``views`` None means all
    three for a volume and the one view of a 2D image. ``deidentify`` False adds the scan
    file's name to the caption (file names often contain patient names).
    """

    scale: float = 1.0
    width: int | None = None
    radiological: bool = True
    window: tuple[float, float] | None = None
    colormap: str = DEFAULT
    limit: float | None = None
    opacity: float = 0.6
    threshold: float = 0.0
    sign: str = "both"
    show_overlay: bool = True
    mask_outline: bool = True
    orientation_letters: bool = True
    colorbar: bool = True
    caption: str = ""
    cursor: tuple[int, int, int] | None = None
    views: tuple[str, ...] | None = None
    interpolation: str = "nearest"
    deidentify: bool = True


@dataclass(frozen=True)
class RenderedFigure:
    """The figure image plus where things are in it, as ``(left, top, right, bottom)`` boxes."""

    image: Image.Image
    panels: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    colorbar: tuple[int, int, int, int] | None = None
    limit: float = 1.0


def describe(relevance: Any = None, labels: Sequence[str] | None = None,
             probabilities: Sequence[float] | None = None) -> str:
    """A caption from a :class:`~viewer.explain.Relevance`: method, preset, target, prediction.

    Only model facts appear, never anything about the patient.
    """
    parts = []
    if relevance is not None:
        method = str(relevance.method)
        parts.append(f"{method} {relevance.preset}" if relevance.preset else method)
        parts.append(f"target: {relevance.target.describe(labels)}")
    if probabilities is not None and len(probabilities):
        p = np.asarray(probabilities, dtype=np.float64).ravel()
        k = int(p.argmax())
        name = labels[k] if labels is not None and k < len(labels) else f"class {k}"
        parts.append(f"prediction: {name} ({p[k]:.2f})")
    return " | ".join(parts)


def render_figure(scan: Scan, relevance: np.ndarray | None, options: FigureOptions = FigureOptions(),
                  mask: np.ndarray | None = None) -> RenderedFigure:
    """Draw the figure in memory; ``relevance`` and ``mask`` are on the scan's grid (or None).

    ``mask`` may be a boolean/label array or a mask :class:`Scan`; voxels > 0 are inside.
    """
    if isinstance(mask, Scan):
        mask = mask.data
    if relevance is not None and tuple(np.shape(relevance)) != scan.shape:
        raise ExportError(f"Relevance map shape {np.shape(relevance)} does not match the scan {scan.shape}.")
    if mask is not None and tuple(np.shape(mask)) != scan.shape:
        raise ExportError(f"Mask shape {np.shape(mask)} does not match the scan {scan.shape}.")
    geometries = _geometries(scan, options)
    cursor = _cursor(scan, options.cursor)
    limit = options.limit if options.limit else (symmetric_limit(relevance) if relevance is not None else 1.0)
    with_bar = options.colorbar and relevance is not None and options.show_overlay
    layout = _Layout.fit(scan, geometries, options, with_bar)

    canvas = Image.new("RGB", (layout.width, layout.height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=layout.font)
    panels = {}
    for geometry, (left, top, w, h) in zip(geometries, layout.panels):
        index = cursor[geometry.slice_axis]
        tile = _panel_pixels(scan, relevance, mask, geometry, index, w, h, limit, options)
        canvas.paste(Image.fromarray(tile, "RGB"), (left, top))
        if options.orientation_letters and not scan.planar:
            _letters(draw, font, geometry, (left, top, left + w, top + h), layout.font)
        panels[geometry.name] = (left, top, left + w, top + h)

    colorbar = None
    if with_bar:
        colorbar = _colorbar(canvas, draw, font, layout, options.colormap, limit)
    caption = options.caption
    if not options.deidentify and scan.path:
        caption = f"{caption} | {Path(scan.path).name}" if caption else Path(scan.path).name
    if caption:
        _caption(draw, font, caption, layout)
    return RenderedFigure(canvas, panels, colorbar, float(limit))


def save_figure(path: str | os.PathLike, scan: Scan, relevance: np.ndarray | None,
                options: FigureOptions = FigureOptions(), mask: np.ndarray | None = None,
                overwrite: bool = False) -> RenderedFigure:
    """Render and write the figure as PNG atomically; raises ExportError if ``path`` exists."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ExportError(f"Figures are written as PNG; choose a file name ending in .png (got {path.name}).")
    if not overwrite and path.exists():  # before rendering; atomic_write checks again when writing
        raise ExportError(f"{path} already exists; choose another name or allow overwriting.")
    figure = render_figure(scan, relevance, options, mask)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "lrp-viewer")
    with atomic_write(path, "wb", overwrite=overwrite) as fh:
        figure.image.save(fh, format="PNG", pnginfo=info)
    return figure


# -- layout -----------------------------------------------------------------------------


def _geometries(scan: Scan, options: FigureOptions) -> list[ViewGeometry]:
    if scan.is_2d or scan.planar:
        names: Sequence[str] = ("axial",)
    else:
        names = options.views or VIEWS
    return [view_geometry(n, options.radiological, scan.planar) for n in names]


def _cursor(scan: Scan, cursor: tuple[int, int, int] | None) -> tuple[int, int, int]:
    if cursor is None:
        return tuple(n // 2 for n in scan.shape)  # type: ignore[return-value]
    return tuple(int(np.clip(c, 0, n - 1)) for c, n in zip(cursor, scan.shape))  # type: ignore[return-value]


@dataclass
class _Layout:
    width: int
    height: int
    font: int
    panels: list[tuple[int, int, int, int]]  # left, top, width, height
    bar: tuple[int, int, int, int]            # left, top, width, height
    caption_top: int
    margin: int
    fixed_width: int  # margins, gaps, colour bar and labels: what does not scale with the panels

    @staticmethod
    def fit(scan: Scan, geometries: list[ViewGeometry], options: FigureOptions, with_bar: bool) -> "_Layout":
        sizes_mm = [physical_size(scan.shape, scan.spacing, g) for g in geometries]
        finest = min(min(scan.spacing[g.h_axis], scan.spacing[g.v_axis]) for g in geometries)
        if options.width is None:
            if not options.scale > 0:
                raise ExportError(f"Figure scale must be positive, got {options.scale}.")
            layout = _Layout.build(sizes_mm, options.scale / finest, with_bar)
        else:
            layout = _Layout.for_width(sizes_mm, int(options.width), with_bar)
        if layout.width * layout.height > MAX_PIXELS:
            raise ExportError(
                f"A {layout.width}x{layout.height} figure is too large; choose a smaller scale or width."
            )
        return layout

    @staticmethod
    def for_width(sizes_mm: list[tuple[float, float]], width: int, with_bar: bool) -> "_Layout":
        too_small = f"Figure width {width} px is too small for {len(sizes_mm)} view(s); choose a larger width."
        if width < 64:
            raise ExportError(too_small)
        px_per_mm = width / sum(w for w, _ in sizes_mm)
        for _ in range(30):  # fonts and margins grow with the panels: converge on the target
            layout = _Layout.build(sizes_mm, px_per_mm, with_bar)
            if width - 2 <= layout.width <= width:
                break
            px_per_mm *= max(1, width - layout.fixed_width) / max(1, layout.width - layout.fixed_width)
        while layout.width > width and px_per_mm > 1e-6:
            px_per_mm *= 0.99
            layout = _Layout.build(sizes_mm, px_per_mm, with_bar)
        if layout.width > width:
            raise ExportError(too_small)
        # centre the content; the extra columns become margin
        extra = width - layout.width
        shift = extra // 2
        layout.panels = [(x + shift, y, w, h) for x, y, w, h in layout.panels]
        bx, by, bw, bh = layout.bar
        layout.bar = (bx + shift, by, bw, bh)
        layout.width = width
        return layout

    @staticmethod
    def build(sizes_mm: list[tuple[float, float]], px_per_mm: float, with_bar: bool) -> "_Layout":
        dims = [(max(1, round(w * px_per_mm)), max(1, round(h * px_per_mm))) for w, h in sizes_mm]
        tallest = max(h for _, h in dims)
        font = int(np.clip(round(tallest / 14), 11, 64))
        margin = max(4, font // 2)
        gap = max(2, font // 3)
        left, panels = margin, []
        for w, h in dims:
            panels.append((left, margin, w, h))
            left += w + gap
        bar = (left + margin - gap, margin, max(6, font), tallest)
        if with_bar:
            label_width = int(math.ceil(ImageFont.load_default(size=font).getlength("-8.88e-88")))
            width = bar[0] + bar[2] + font // 3 + label_width + margin
        else:
            width = left - gap + margin
        caption_top = margin + tallest + font // 2
        height = caption_top + int(font * 1.5) + margin // 2
        return _Layout(width, height, font, panels, bar, caption_top, margin, width - sum(w for w, _ in dims))


# -- drawing ----------------------------------------------------------------------------


def _panel_pixels(scan: Scan, relevance: np.ndarray | None, mask: np.ndarray | None, geometry: ViewGeometry,
                  index: int, width: int, height: int, limit: float, options: FigureOptions) -> np.ndarray:
    """RGB uint8 tile: windowed greyscale, blended overlay, mask outline."""
    centre, win = options.window if options.window is not None else scan.display_window()
    win = float(win) if win and win > 0 else 1.0
    values = resample(screen_slice(scan.data, geometry, index), width, height, options.interpolation)
    grey = np.clip((values - (centre - win / 2.0)) / win, 0.0, 1.0) * 255.0
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    if relevance is not None and options.show_overlay:
        r = resample(screen_slice(np.asarray(relevance, np.float32), geometry, index), width, height,
                     options.interpolation)
        rgba = colorize(r, limit, options.colormap, options.opacity, options.threshold, options.sign)
        alpha = rgba[..., 3:4].astype(np.float32) / 255.0
        rgb = rgb * (1.0 - alpha) + rgba[..., :3].astype(np.float32) * alpha
    if mask is not None and options.mask_outline:
        inside = resample(screen_slice(np.asarray(mask) > 0, geometry, index), width, height, "nearest")
        rgb[_outline(inside)] = _OUTLINE
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def _outline(inside: np.ndarray) -> np.ndarray:
    """Pixels of ``inside`` that touch the outside (4-neighbourhood): a 1-pixel contour."""
    padded = np.pad(inside, 1, constant_values=False)
    core = padded[1:-1, 1:-1]
    interior = core & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return core & ~interior


def _letters(draw: ImageDraw.ImageDraw, font: Any, geometry: ViewGeometry, box: tuple[int, int, int, int],
             size: int) -> None:
    left, top, right, bottom = box
    pad = max(2, size // 4)
    l_, r_, t_, b_ = geometry.letters
    cx, cy = (left + right) // 2, (top + bottom) // 2
    spots = ((l_, (left + pad, cy), "lm"), (r_, (right - pad, cy), "rm"),
             (t_, (cx, top + pad), "mt"), (b_, (cx, bottom - pad), "mb"))
    for text, xy, anchor in spots:
        if text:
            draw.text(xy, text, fill=_TEXT, font=font, anchor=anchor, stroke_width=max(1, size // 10),
                      stroke_fill=_BACKGROUND)


def _colorbar(canvas: Image.Image, draw: ImageDraw.ImageDraw, font: Any, layout: _Layout, colormap: str,
              limit: float) -> tuple[int, int, int, int]:
    left, top, width, height = layout.bar
    table = lut(colormap)
    # top row = +limit, bottom row = -limit
    rows = np.round(np.linspace(255, 0, height)).astype(np.intp)
    strip = np.repeat(table[rows][:, None, :], width, axis=1)
    canvas.paste(Image.fromarray(np.ascontiguousarray(strip), "RGB"), (left, top))
    x = left + width + max(2, layout.font // 3)
    for value, y, anchor in ((limit, top, "lt"), (0.0, top + height // 2, "lm"), (-limit, top + height - 1, "lb")):
        draw.text((x, y), _number(value), fill=_TEXT, font=font, anchor=anchor)
    return left, top, left + width, top + height


def _number(value: float) -> str:
    return "0" if value == 0 else f"{value:.3g}"


def _caption(draw: ImageDraw.ImageDraw, font: Any, text: str, layout: _Layout) -> None:
    available = layout.width - 2 * layout.margin
    if draw.textlength(text, font=font) > available:
        while text and draw.textlength(text + "...", font=font) > available:
            text = text[:-1]
        text += "..."
    draw.text((layout.margin, layout.caption_top), text, fill=_TEXT, font=font, anchor="lt")
