"""How an attribution graph is drawn: layered rows, nodes sized by share, edges by flow.

One row per level (the target output on top). Level-1 nodes are ordered by relevance;
lower nodes sit under the mean position of their parents (barycentre ordering), which
keeps most edges short and uncrossed without a layout solver, so laying out hundreds
of nodes costs microseconds. Colours come from the overlay's diverging colormap: the
same colour means the same sign on the views and in the graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from viewer.io import colormaps

ROOT = "output"
ROW_GAP = 120.0
MIN_GAP = 26.0
R_MIN, R_MAX = 7.0, 26.0
LABEL_W = 110.0
LABEL_H = 28.0  # two lines of 8 pt text under a node
LAYER_CHARS = 18
SELECTED = QtGui.QColor(255, 215, 60)
LABEL_BRUSH = QtGui.QBrush(QtGui.QColor(225, 225, 225))
_FONT: list[QtGui.QFont] = []


def label_font() -> QtGui.QFont:
    """One 8 pt font for every label (made once, after the application exists)."""
    if not _FONT:
        font = QtGui.QFont()
        font.setPointSizeF(8.0)
        _FONT.append(font)
    return _FONT[0]


@dataclass(frozen=True)
class Placed:
    """A node's centre and radius in scene coordinates."""

    x: float
    y: float
    r: float


def node_label(node: Any) -> str:
    """"layer · channel" over "share %"; a long layer name keeps its (most specific) end."""
    layer = node.layer if len(node.layer) <= LAYER_CHARS else "…" + node.layer[-(LAYER_CHARS - 1):]
    return f"{layer} · {node.channel}\n{100 * node.share:+.1f} %"


def node_tooltip(node: Any, labels: tuple[str, ...] = ()) -> str:
    """The numbers behind a node, with its conservation residual."""
    if node.id == ROOT:
        name = labels[node.channel] if 0 <= node.channel < len(labels) else f"class {node.channel}"
        return f"Target output: {name}\nexplained value {node.relevance:.4g}"
    rows = [f"{node.layer}, channel {node.channel}", f"relevance R = {node.relevance:+.4g}",
            f"share of the layer's |R| = {100 * node.share:+.2f} %"]
    if node.flow_out is not None:
        rows.append(f"flows out = {node.flow_out:+.4g}")
    if node.absorbed is not None:
        rows.append(f"absorbed (biases, ε) = {node.absorbed:+.4g}")
    if node.heatmap_sum is not None:
        rows.append(f"Σ input map = {node.heatmap_sum:+.4g}")
    rows.append("conservation residual |out + absorbed − R| / |R| = "
                + ("n/a" if node.residual is None else f"{node.residual:.2e}"))
    return "\n".join(rows)


def layout(graph: Any) -> dict[str, Placed]:
    """Scene positions of every node: rows by level, barycentre order, parents over their
    children, radius by |share|."""
    nodes = list(graph.nodes)
    biggest = max((abs(n.share) for n in nodes if n.id != ROOT), default=1.0) or 1.0
    radius = {n.id: (R_MAX if n.id == ROOT else R_MIN + (R_MAX - R_MIN) * math.sqrt(abs(n.share) / biggest))
              for n in nodes}
    parents: dict[str, list[str]] = {}
    for e in graph.edges:
        parents.setdefault(e.target, []).append(e.source)
    levels: dict[int, list[Any]] = {}
    for n in nodes:
        levels.setdefault(n.level, []).append(n)
    xs: dict[str, float] = {}
    for level in sorted(levels):
        row = levels[level]
        if level <= 1:
            row.sort(key=lambda n: -abs(n.relevance))
        else:
            def centre(n: Any) -> float:
                ps = [xs[p] for p in parents.get(n.id, []) if p in xs]
                return sum(ps) / len(ps) if ps else 0.0

            row.sort(key=lambda n: (centre(n), -abs(n.relevance)))
        width = sum(max(LABEL_W, 2 * radius[n.id]) for n in row) + MIN_GAP * (len(row) - 1)
        x = -width / 2
        for n in row:
            w = max(LABEL_W, 2 * radius[n.id])
            xs[n.id] = x + w / 2
            x += w + MIN_GAP
    # bottom-up: a parent moves over the middle of its children (a wide lower row would
    # otherwise leave the upper nodes far from theirs), pushed right only to keep the gaps
    children: dict[str, list[str]] = {}
    for child, ps in parents.items():
        for p in ps:
            children.setdefault(p, []).append(child)
    for level in sorted(levels, reverse=True)[1:]:
        last: tuple[float, float] | None = None
        for n in levels[level]:
            kids = [xs[c] for c in children.get(n.id, []) if c in xs]
            want = sum(kids) / len(kids) if kids else xs[n.id]
            w = max(LABEL_W, 2 * radius[n.id])
            if last is not None:
                want = max(want, last[0] + (last[1] + w) / 2 + MIN_GAP)
            xs[n.id], last = want, (want, w)
    return {n.id: Placed(xs[n.id], n.level * ROW_GAP, radius[n.id]) for n in nodes}


class Palette:
    """Sign colours from the overlay's colormap (positive end, negative end)."""

    def __init__(self, name: str = colormaps.DEFAULT) -> None:
        lut = colormaps.lut(name, 256)
        self.positive = QtGui.QColor(*[int(v) for v in lut[230][:3]])
        self.negative = QtGui.QColor(*[int(v) for v in lut[25][:3]])

    def sign(self, value: float, alpha: int = 255) -> QtGui.QColor:
        c = QtGui.QColor(self.positive if value >= 0 else self.negative)
        c.setAlpha(alpha)
        return c


class NodeItem(QtWidgets.QGraphicsEllipseItem):
    """One feature: a disc coloured by sign, outlined when selected, crossed when switched off."""

    def __init__(self, node: Any, where: Placed, palette: Palette, labels: tuple[str, ...]) -> None:
        r = where.r
        super().__init__(-r, -r, 2 * r, 2 * r)
        self.node_id = node.id
        self.setPos(where.x, where.y)
        self.setZValue(10)
        self.setBrush(QtGui.QBrush(palette.sign(node.relevance)))
        self.setPen(QtGui.QPen(QtGui.QColor(40, 40, 40), 1.0))
        self.setToolTip(node_tooltip(node, labels))
        self.setAcceptHoverEvents(True)
        text = (f"target: {labels[node.channel] if 0 <= node.channel < len(labels) else node.channel}"
                if node.id == ROOT else node_label(node))
        self.labels: list[QtWidgets.QGraphicsSimpleTextItem] = []
        y = r + 2
        for line in text.split("\n"):  # each line centred under the node
            label = QtWidgets.QGraphicsSimpleTextItem(line, self)
            label.setBrush(LABEL_BRUSH)
            label.setFont(label_font())
            box = label.boundingRect()
            label.setPos(-box.width() / 2, y)
            y += box.height()
            self.labels.append(label)
        self.cross: QtWidgets.QGraphicsPathItem | None = None

    def set_state(self, selected: bool, ablated: bool) -> None:
        pen = QtGui.QPen(SELECTED, 3.0) if selected else QtGui.QPen(QtGui.QColor(40, 40, 40), 1.0)
        self.setPen(pen)
        self.setOpacity(0.45 if ablated else 1.0)
        if ablated and self.cross is None:
            r = self.rect().width() / 2
            path = QtGui.QPainterPath()
            path.moveTo(-r, -r)
            path.lineTo(r, r)
            path.moveTo(-r, r)
            path.lineTo(r, -r)
            self.cross = QtWidgets.QGraphicsPathItem(path, self)
            self.cross.setPen(QtGui.QPen(QtGui.QColor(20, 20, 20), 2.5))
        if self.cross is not None:
            self.cross.setVisible(ablated)


def edge_item(edge: Any, a: Placed, b: Placed, palette: Palette, biggest: float) -> QtWidgets.QGraphicsPathItem:
    """A curve from the upper node's bottom to the lower node's top, as wide as its share."""
    start = a.y + a.r + LABEL_H  # below the upper node's label
    path = QtGui.QPainterPath(QtCore.QPointF(a.x, start))
    mid = (start + b.y) / 2
    path.cubicTo(QtCore.QPointF(a.x, mid), QtCore.QPointF(b.x, mid), QtCore.QPointF(b.x, b.y - b.r))
    item = QtWidgets.QGraphicsPathItem(path)
    share = min(1.0, abs(edge.share) / (1.0 if edge.source == ROOT else biggest))
    pen = QtGui.QPen(palette.sign(edge.relevance, 170), 1.0 + 9.0 * share)
    pen.setCapStyle(QtCore.Qt.PenCapStyle.RoundCap)
    item.setPen(pen)
    item.setZValue(1)
    item.setToolTip(f"{edge.source} → {edge.target}\nflow {edge.relevance:+.4g} "
                    f"({100 * edge.share:+.1f} % of {edge.source}'s relevance)")
    return item
