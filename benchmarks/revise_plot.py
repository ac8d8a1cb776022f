"""The figure of docs/revise.md, drawn with Pillow (a runtime dependency already; no matplotlib).

Four panels: decorrelated accuracy and marker relevance share after ``correct`` against
the fraction of channels updated (log scale), accuracy after ``prune`` against the
fraction pruned, and accuracy kept on task A after ``preserve`` against the fraction
frozen (the accuracy reached on task B is in the table). Points are means over seeds,
bars ± one standard deviation.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLORS = {"relevance": (214, 39, 40), "random": (110, 110, 110), "taylor": (31, 119, 180),
          "magnitude": (31, 119, 180), "full": (0, 0, 0), "rrr": (148, 103, 189), "before": (44, 160, 44),
          "head only": (255, 127, 14)}
W, H = 760, 520  # one panel
PAD_L, PAD_R, PAD_T, PAD_B = 80, 150, 70, 60


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def _panel(img: Image.Image, origin: tuple[int, int], title: str, xlabel: str, ylabel: str,
           series: list[tuple[str, list[tuple[float, float, float]]]], xticks: list[float], log_x: bool,
           ylim: tuple[float, float], hlines: list[tuple[str, float]] = ()) -> None:
    d = ImageDraw.Draw(img)
    ox, oy = origin
    x0, x1, y0, y1 = ox + PAD_L, ox + W - PAD_R, oy + PAD_T, oy + H - PAD_B
    f, small = _font(18), _font(14)
    tx = (lambda v: math.log10(v)) if log_x else (lambda v: v)
    lo, hi = tx(min(xticks)), tx(max(xticks))
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)

    def px(v: float) -> float:
        return x0 + (tx(v) - lo) / (hi - lo) * (x1 - x0)

    def py(v: float) -> float:
        return y1 - (v - ylim[0]) / (ylim[1] - ylim[0]) * (y1 - y0)

    d.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
    d.text((ox + PAD_L, oy + 10), title, fill=(0, 0, 0), font=f)
    d.text(((x0 + x1) / 2 - 6 * len(xlabel) / 2, y1 + 32), xlabel, fill=(0, 0, 0), font=small)
    d.text((ox + 6, y0 - 24), ylabel, fill=(0, 0, 0), font=small)
    for t in xticks:
        d.line([px(t), y1, px(t), y1 + 5], fill=(0, 0, 0))
        d.text((px(t) - 12, y1 + 8), f"{t:g}", fill=(0, 0, 0), font=small)
    steps = int(round((ylim[1] - ylim[0]) / 0.1))
    steps = steps if 2 <= steps <= 10 else 5
    for i in range(steps + 1):
        v = ylim[0] + (ylim[1] - ylim[0]) * i / steps
        d.line([x0 - 5, py(v), x0, py(v)], fill=(0, 0, 0))
        d.line([x0, py(v), x1, py(v)], fill=(230, 230, 230))
        d.text((x0 - 45, py(v) - 8), f"{v:.2f}", fill=(0, 0, 0), font=small)
    legend_y = y0
    for name, value in hlines:
        color = COLORS.get(name, (0, 0, 0))
        for xs in range(int(x0), int(x1), 12):
            d.line([xs, py(value), min(xs + 6, x1), py(value)], fill=color, width=2)
        d.line([x1 + 8, legend_y + 8, x1 + 14, legend_y + 8], fill=color, width=2)
        d.line([x1 + 18, legend_y + 8, x1 + 24, legend_y + 8], fill=color, width=2)
        d.text((x1 + 30, legend_y), name, fill=color, font=small)
        legend_y += 20
    for name, points in series:
        color = COLORS.get(name, (0, 0, 0))
        pts = sorted(points)
        for (xa, ma, _), (xb, mb, _) in zip(pts, pts[1:]):
            d.line([px(xa), py(ma), px(xb), py(mb)], fill=color, width=3)
        for x, m, s in pts:
            d.line([px(x), py(m - s), px(x), py(m + s)], fill=color, width=2)
            d.ellipse([px(x) - 5, py(m) - 5, px(x) + 5, py(m) + 5], fill=color)
        d.ellipse([x1 + 12, legend_y + 4, x1 + 20, legend_y + 12], fill=color)
        d.text((x1 + 26, legend_y), name, fill=color, font=small)
        legend_y += 20


def _series(summary: list[dict], key: str, arms: list[str], x_of=lambda s: 100 * s["p"]) -> list:
    out = []
    for arm in arms:
        pts = [(x_of(s), s[key][0], s[key][1]) for s in summary if s["arm"] == arm]
        if pts:
            out.append((arm, pts))
    return out


def plot(correct: list[dict], pruned: list[dict], kept: list[dict], path: Path) -> None:
    img = Image.new("RGB", (2 * W, 2 * H), "white")
    ticks = [1, 5, 10, 25, 100]
    before = next(s for s in correct if s["arm"] == "before")
    arms = ["relevance", "random", "taylor", "full", "rrr"]
    _panel(img, (0, 0), "correct: accuracy on decorrelated slices", "% of channels updated (100 = all parameters)",
           "accuracy", _series(correct, "decorrelated", arms), ticks, True, (0.5, 1.0),
           [("before", before["decorrelated"][0])])
    _panel(img, (W, 0), "correct: LRP relevance share on the marker", "% of channels updated (100 = all parameters)",
           "share", _series(correct, "marker_share", arms), ticks, True, (0.0, 0.5),
           [("before", before["marker_share"][0])])
    _panel(img, (0, H), "prune (no training): accuracy on decorrelated slices", "% of channels zeroed",
           "accuracy", _series(pruned, "decorrelated", ["relevance", "random", "magnitude"]), [1, 5, 10, 25], True,
           (0.3, 1.0), [("before", before["decorrelated"][0])])
    pre = next(s for s in kept if s["arm"] == "before")
    full = next(s for s in kept if s["arm"] == "full")
    _panel(img, (W, H), "preserve: accuracy kept on task A after learning B", "% of channels frozen (100 = head only)",
           "accuracy on A", _series(kept, "A", ["relevance", "random", "taylor", "head only"]), ticks, True,
           (0.5, 1.0), [("before", pre["A"][0]), ("full", full["A"][0])])
    img.save(path)
