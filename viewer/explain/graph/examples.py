"""What a feature responds to: the reference cases and regions where a channel carries
the most relevance (relevance maximisation, as in Concept Relevance Propagation).

For every case, one LRP pass gives the relevance at the layer for *all* its channels at
once; each channel's score in the case is its summed relevance and its location the
position of its largest relevance, mapped from the layer's grid to the input's. These
per-case tables are cached on disk per (model weights, layer, preset and parameters,
target), so asking about another channel of the same layer, or the same channel
again, needs no new pass; the crops' conditional heatmaps are cached per channel too.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from viewer.explain.graph.conditional import ConditionalPass, concept_relevance, span
from viewer.explain.graph.errors import GraphError
from viewer.explain.progress import Progress

CACHE_VERSION = 1


@dataclass(frozen=True)
class FeatureExample:
    """One region of one reference case where the channel carries much relevance.

    ``image`` and ``heatmap`` are crops of the model input (channels summed) and of the
    channel's conditional relevance, ``box`` the crop's ``(start, stop)`` per spatial axis
    of the model input, ``center`` the voxel of largest relevance, ``row`` the input
    row (the slice, for a 2D model run on a volume) and ``slice_index`` the axial
    position to show (the row for 2D models on volumes, else the centre's last index).
    Dense and token layers have no location: the crop is the whole input.
    """

    case: str
    rank: int
    score: float
    row: int
    center: tuple[int, ...] | None
    box: tuple[tuple[int, int], ...]
    slice_index: int | None
    image: np.ndarray
    heatmap: np.ndarray | None


def default_cache_dir() -> Path:
    """``$LRP_VIEWER_CACHE_DIR``, else ``$XDG_CACHE_HOME/lrp-viewer``, else ``~/.cache/lrp-viewer``."""
    if os.environ.get("LRP_VIEWER_CACHE_DIR"):
        return Path(os.environ["LRP_VIEWER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lrp-viewer"


def feature_examples(
    module: nn.Module,
    layer: str,
    channel: int,
    cases: Mapping[str, torch.Tensor] | Iterable[torch.Tensor | tuple[str, torch.Tensor]] | torch.Tensor,
    k: int = 8,
    *,
    target: Any = None,
    preset: str = "epsilon-plus",
    patch: tuple[int, ...] | int | None = None,
    heatmaps: bool = True,
    cache_dir: str | os.PathLike | None = None,
    overrides: Mapping | None = None,
    channel_dim: int | None = None,
    progress: Progress | None = None,
    **params: Any,
) -> list[FeatureExample]:
    """The ``k`` reference regions where channel ``channel`` of ``layer`` carries the most
    relevance of ``target`` (None: each case's predicted class), best first.

    ``cases``: ``{id: input}``, a list of inputs or ``(id, input)`` pairs, or one tensor
    whose rows are cases. ``patch``: crop size per spatial axis (default a third of
    each axis, at least 8 voxels). ``cache_dir``: where the per-case tables live
    (default :func:`default_cache_dir`; the cache is keyed by the model's weights, so a
    retrained model never reads stale tables).
    """
    if k < 1:
        raise GraphError(f"k must be at least 1, got {k}.")
    items = _cases(cases)
    progress = progress or Progress()
    key = _key(module, layer, preset, params, overrides, target, channel_dim)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    table = _Table(folder / "feature-examples" / f"{key}.npz")
    for i, (cid, x) in enumerate(items):
        progress.step(i, 2 * len(items))
        digest = _digest(x)
        if table.has(cid, digest):
            continue
        cp = ConditionalPass(module, x, [layer], target, preset, overrides, channel_dim,
                             span(progress, i / (2 * len(items)), (i + 1) / (2 * len(items))), **params)
        r = cp.relevance([layer])[layer]
        table.add(cid, digest, r.double(), cp.dims[layer], x)
    table.save()
    n_channels = table.channels()
    if not 0 <= channel < n_channels:
        raise GraphError(f"Layer {layer!r} has {n_channels} channels (0–{n_channels - 1}); channel {channel} does not exist.")
    wanted = [(cid, x) for cid, x in items if table.has(cid, _digest(x))]
    ranked = sorted(wanted, key=lambda item: -table.score(item[0], channel))[:k]
    maps = _Heatmaps(folder / "feature-examples" / f"{key}_channel{channel}.npz") if heatmaps else None
    out = []
    for rank, (cid, x) in enumerate(ranked):
        progress.step(len(items) + rank, len(items) + len(ranked))
        row, center = table.location(cid, channel)
        box = _box(x.shape[2:], center, patch)
        index = (row, slice(None)) + tuple(slice(a, b) for a, b in box)
        heat = None
        if maps is not None:
            digest = _digest(x)
            heat = maps.get(cid, digest, box)
            if heat is None:
                cr = concept_relevance(module, x, layer, [channel], target, preset, overrides=overrides,
                                       channel_dim=channel_dim, progress=Progress(None, progress.cancel), **params)
                heat = cr.maps[0][index].sum(0).double().cpu().numpy()
                maps.put(cid, digest, box, heat)
        image = x.detach()[index].sum(0).double().cpu().numpy()
        slice_index = row if x.shape[0] > 1 else (center[-1] if center is not None and len(center) == 3 else None)
        out.append(FeatureExample(cid, rank, table.score(cid, channel), row, center, box, slice_index, image, heat))
    if maps is not None:
        maps.save()
    progress.step(1, 1)
    return out


class _Table:
    """Per-case scores and locations of every channel of one layer, in one ``.npz`` file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}
        self.dirty = False
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:
                    meta = json.loads(str(data["meta"]))
                    for j, cid in enumerate(meta["ids"]):
                        self.rows[cid] = {"digest": meta["digests"][j], "score": data["score"][j],
                                          "where": data["where"][j]}
            except (OSError, ValueError, KeyError):  # a damaged cache is recomputed, never trusted
                self.rows = {}

    def has(self, cid: str, digest: str) -> bool:
        return cid in self.rows and self.rows[cid]["digest"] == digest

    def add(self, cid: str, digest: str, r: torch.Tensor, dim: int, x: torch.Tensor) -> None:
        """Scores (summed relevance) and the input position of each channel's largest relevance."""
        moved = r.movedim(dim, 1)  # (B, C, ...)
        n = moved.shape[1]
        score = moved.transpose(0, 1).reshape(n, -1).sum(1).cpu().numpy()
        flat = moved.transpose(0, 1).reshape(n, moved.shape[0], -1)  # (C, B, positions)
        best = flat.reshape(n, -1).argmax(1).cpu().numpy()
        spatial = tuple(moved.shape[2:])
        nd = x.ndim - 2
        where = np.full((n, 1 + nd), -1, dtype=np.int64)
        positions = int(np.prod(spatial)) if spatial else 1
        where[:, 0] = best // positions
        if len(spatial) == nd and moved.ndim == x.ndim:  # a feature map on a grid like the input's
            idx = np.stack(np.unravel_index(best % positions, spatial), axis=1)
            for a in range(nd):
                where[:, 1 + a] = np.minimum(((idx[:, a] + 0.5) * x.shape[2 + a] / spatial[a]).astype(np.int64),
                                             x.shape[2 + a] - 1)
        self.rows[cid] = {"digest": digest, "score": score, "where": where}
        self.dirty = True

    def channels(self) -> int:
        return int(next(iter(self.rows.values()))["score"].shape[0]) if self.rows else 0

    def score(self, cid: str, channel: int) -> float:
        return float(self.rows[cid]["score"][channel])

    def location(self, cid: str, channel: int) -> tuple[int, tuple[int, ...] | None]:
        where = self.rows[cid]["where"][channel]
        center = tuple(int(v) for v in where[1:])
        return int(where[0]), (center if center and min(center) >= 0 else None)

    def save(self) -> None:
        if not self.dirty or not self.rows:
            return
        from viewer.io.atomic import atomic_write

        ids = list(self.rows)
        shapes = {self.rows[c]["score"].shape for c in ids}
        if len(shapes) != 1:
            raise GraphError("The reference cases give the layer different channel counts; use one model input size.")
        meta = json.dumps({"version": CACHE_VERSION, "ids": ids, "digests": [self.rows[c]["digest"] for c in ids]})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path, "wb") as fh:
            np.savez(fh, meta=np.array(meta), score=np.stack([self.rows[c]["score"] for c in ids]),
                     where=np.stack([self.rows[c]["where"] for c in ids]))
        self.dirty = False


class _Heatmaps:
    """Cached heatmap crops of one channel, by case."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: dict[str, np.ndarray] = {}
        self.dirty = False
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:
                    self.items = {name: data[name] for name in data.files}
            except (OSError, ValueError):
                self.items = {}

    @staticmethod
    def _name(cid: str, digest: str, box: tuple) -> str:
        return "c" + hashlib.sha1(f"{cid}\0{digest}\0{box}".encode()).hexdigest()

    def get(self, cid: str, digest: str, box: tuple) -> np.ndarray | None:
        return self.items.get(self._name(cid, digest, box))

    def put(self, cid: str, digest: str, box: tuple, heat: np.ndarray) -> None:
        self.items[self._name(cid, digest, box)] = heat
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        from viewer.io.atomic import atomic_write

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path, "wb") as fh:
            np.savez(fh, **self.items)
        self.dirty = False


def _cases(cases: Any) -> list[tuple[str, torch.Tensor]]:
    if isinstance(cases, torch.Tensor):
        items = [(str(i), cases[i:i + 1]) for i in range(cases.shape[0])]
    elif isinstance(cases, Mapping):
        items = [(str(k), v) for k, v in cases.items()]
    else:
        items = [(str(c[0]), c[1]) if isinstance(c, tuple) else (str(i), c) for i, c in enumerate(cases)]
    if not items:
        raise GraphError("The reference set is empty; give at least one case.")
    if len({cid for cid, _ in items}) != len(items):
        raise GraphError("Reference case ids must be unique.")
    for cid, x in items:
        if not isinstance(x, torch.Tensor) or x.ndim < 2:
            raise GraphError(f"Reference case {cid!r} is not a model input tensor (B, C, ...).")
    return items


def _box(shape: tuple[int, ...], center: tuple[int, ...] | None, patch: Any) -> tuple[tuple[int, int], ...]:
    """The crop around ``center`` (clipped to the input), or the whole input without a centre."""
    if center is None:
        return tuple((0, int(n)) for n in shape)
    sizes = [patch] * len(shape) if isinstance(patch, int) else list(patch) if patch else [max(8, n // 3) for n in shape]
    if len(sizes) != len(shape):
        raise GraphError(f"patch needs one size per spatial axis ({len(shape)}), got {patch!r}.")
    out = []
    for n, c, s in zip(shape, center, sizes):
        s = min(int(s), int(n))
        start = min(max(0, c - s // 2), n - s)
        out.append((int(start), int(start + s)))
    return tuple(out)


def _digest(x: torch.Tensor) -> str:
    t = x.detach().cpu().contiguous()
    return hashlib.sha1(str((tuple(t.shape), str(t.dtype))).encode() + t.numpy().tobytes()).hexdigest()


def _key(module: nn.Module, layer: str, preset: str, params: Mapping, overrides: Any, target: Any,
         channel_dim: Any) -> str:
    """Identity of a cache table: the weights themselves (not a file name), and the request."""
    h = hashlib.sha1()
    for name, t in list(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(name.encode() + str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    target_key = target.key if hasattr(target, "key") else target
    h.update(repr((CACHE_VERSION, layer, preset, sorted(params.items()), repr(overrides), target_key,
                   channel_dim)).encode())
    return h.hexdigest()[:24]
