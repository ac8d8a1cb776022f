"""A layered drawing of an attribution graph (PNG), without Qt.

One row per level (the target output on top), one box per node with its layer,
channel, signed relevance and share, and a thumbnail of its heatmap over the input:
for volumes the axial slice where the node's relevance is largest, with the picture's x
axis along the scan's first voxel axis (towards the patient's right in RAS order) and
anterior up. Edges are red for excitatory flows and blue for
inhibitory ones, thicker for a larger share of the parent's relevance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from viewer.explain.graph.model import ROOT, AttributionGraph

BOX_W, BOX_H, THUMB = 150, 150, 96
GAP_X, GAP_Y, MARGIN, LABEL_W = 24, 70, 20, 130
POSITIVE, NEGATIVE = (200, 40, 40), (40, 90, 210)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed-size bitmap font
        return ImageFont.load_default()


def draw_graph(graph: AttributionGraph, labels: list[str] | None = None, background: Any = None) -> Image.Image:
    """The drawing as a PIL image. ``labels`` name the model's classes; ``background``
    (shaped like the model input, default: the input the graph was built on) is shown
    in grey under each heatmap thumbnail."""
    if background is None and graph.source is not None:
        background = graph.source.x
    rows = [graph.level(level) for level in range(graph.depth + 1)]
    n_max = max(len(r) for r in rows)
    width = MARGIN * 2 + LABEL_W + n_max * BOX_W + (n_max - 1) * GAP_X
    height = MARGIN * 2 + len(rows) * BOX_H + (len(rows) - 1) * GAP_Y
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    small, big = _font(11), _font(13)
    where: dict[str, tuple[int, int]] = {}
    for level, row in enumerate(rows):
        y = MARGIN + level * (BOX_H + GAP_Y)
        row_w = len(row) * BOX_W + (len(row) - 1) * GAP_X
        x0 = MARGIN + LABEL_W + (n_max * BOX_W + (n_max - 1) * GAP_X - row_w) // 2
        name = "output" if level == 0 else graph.layers[level - 1] if level - 1 < len(graph.layers) else ""
        draw.text((MARGIN, y + BOX_H // 2 - 8), name, fill=(60, 60, 60), font=big)
        for i, node in enumerate(row):
            where[node.id] = (x0 + i * (BOX_W + GAP_X), y)
    biggest = max((abs(e.share) for e in graph.edges if e.source != ROOT), default=1.0) or 1.0
    for e in graph.edges:
        if e.source not in where or e.target not in where:
            continue
        (xa, ya), (xb, yb) = where[e.source], where[e.target]
        share = abs(e.share) / (1.0 if e.source == ROOT else biggest)
        draw.line([(xa + BOX_W // 2, ya + BOX_H), (xb + BOX_W // 2, yb)], fill=POSITIVE if e.relevance >= 0 else NEGATIVE,
                  width=max(1, int(round(1 + 7 * min(1.0, share)))))
    for node in graph.nodes:
        x, y = where[node.id]
        draw.rectangle([x, y, x + BOX_W, y + BOX_H], outline=(90, 90, 90), fill=(248, 248, 248))
        if node.id == ROOT:
            text = graph.target.describe(labels)
            draw.text((x + 8, y + 8), "target", fill=(0, 0, 0), font=big)
            draw.text((x + 8, y + 30), text[:22], fill=(0, 0, 0), font=small)
            draw.text((x + 8, y + 50), f"value {node.relevance:+.3g}", fill=(0, 0, 0), font=small)
            continue
        thumb = _thumbnail(graph.heatmaps.get(node.id), background)
        if thumb is not None:
            image.paste(thumb, (x + (BOX_W - THUMB) // 2, y + 4))
        draw.text((x + 6, y + THUMB + 8), f"channel {node.channel}", fill=(0, 0, 0), font=big)
        draw.text((x + 6, y + THUMB + 26), f"R {node.relevance:+.3g} ({100 * node.share:+.0f}%)",
                  fill=POSITIVE if node.relevance >= 0 else NEGATIVE, font=small)
    return image


def save_graph_png(graph: AttributionGraph, path: str | os.PathLike, labels: list[str] | None = None,
                   background: Any = None) -> Path:
    """Write :func:`draw_graph` as a PNG, atomically."""
    from viewer.io.atomic import atomic_write

    image = draw_graph(graph, labels, background)
    with atomic_write(path, "wb") as fh:
        image.save(fh, format="PNG")
    return Path(path)


def _thumbnail(heat: torch.Tensor | None, background: Any) -> Image.Image | None:
    """THUMB×THUMB picture of one 2D plane of the heatmap over the input."""
    if heat is None:
        return None
    from viewer.io.colormaps import colorize, symmetric_limit

    h = heat.detach().float().cpu().sum(1)  # (B, *spatial): channels summed
    bg = None if background is None else torch.as_tensor(background).detach().float().cpu().mean(1)
    row = int(h.reshape(h.shape[0], -1).abs().sum(1).argmax())
    h = h[row]
    bg = bg[row] if bg is not None and bg.shape[0] > row else None
    if h.ndim == 3:  # volume: the axial plane (last axis) with the most relevance
        k = int(h.abs().sum((0, 1)).argmax())
        h = h[..., k]
        bg = bg[..., k] if bg is not None else None
    if h.ndim != 2:
        return None
    plane = np.ascontiguousarray(h.numpy().T[::-1])  # rows: axis 1 (anterior up), columns: axis 0
    rgba = colorize(plane, symmetric_limit(plane), threshold=0.05)
    if bg is not None:
        g = bg.numpy().T[::-1]
        lo, hi = float(g.min()), float(g.max())
        grey = ((g - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(g)).astype(np.uint8)
        base = np.stack([grey] * 3, axis=-1).astype(np.float32)
    else:
        base = np.full(plane.shape + (3,), 255.0, dtype=np.float32)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    out = (base * (1 - alpha) + rgba[..., :3].astype(np.float32) * alpha).astype(np.uint8)
    pic = Image.fromarray(out, "RGB")
    scale = THUMB / max(pic.size)
    return pic.resize((max(1, int(pic.size[0] * scale)), max(1, int(pic.size[1] * scale))), Image.NEAREST)
