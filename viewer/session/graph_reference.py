"""Reference cases: what a graph node responds to across other scans.

The reference set is a folder of scans (by default the bundled demo cases). Each is
read and prepared for the model once per model (kept in memory on the worker), and
:func:`viewer.explain.graph.feature_examples` ranks their regions by the node's
conditional relevance, with its per-(model, layer, preset) tables cached on disk, so
looking at another node of the same layer, or at the same node again, costs no new
pass over the reference set. Each example carries the voxel of *its own scan* where the
node's relevance peaks, so clicking it can open that case right there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from viewer.explain.progress import Progress
from viewer.session.graph_requests import ExamplesRequest, ExamplesResult, ReferenceExample

MAX_CASES = 64
SCAN_SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm")
NOT_SCANS = ("_mask", "_seg", "_label")


def demo_folder() -> Path:
    from viewer.models.demo import DEMO

    return Path(DEMO)


def list_cases(folder: str | os.PathLike | None) -> list[tuple[str, str, int, int]]:
    """``(name, path, size, mtime_ns)`` of the scans in ``folder`` (None: the demo cases),
    sorted by name; masks and label maps are left out, and at most :data:`MAX_CASES`."""
    if folder is None:
        from viewer.models.demo import demo_cases

        paths = [demo_folder() / f"{name}.nii.gz" for name in demo_cases()]
    else:
        root = Path(folder)
        if not root.is_dir():
            raise ValueError(f"The reference folder {root} does not exist or is not a folder; choose a folder of "
                             "scans (File → Set reference cases…).")
        paths = sorted(p for p in root.iterdir() if p.is_file() and _is_scan(p.name))
    out = []
    for p in paths[:MAX_CASES]:
        st = p.stat()
        out.append((_stem(p.name), str(p.absolute()), int(st.st_size), int(st.st_mtime_ns)))
    if not out:
        raise ValueError(f"No scans in {folder}; reference cases are NIfTI, MGH, DICOM or picture files.")
    return out


def _is_scan(name: str) -> bool:
    low = name.lower()
    return low.endswith(SCAN_SUFFIXES) and not any(tag in _stem(low) for tag in NOT_SCANS)


def _stem(name: str) -> str:
    low = name.lower()
    for suffix in SCAN_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


class PreparedCases:
    """Reference scans prepared for one model (worker thread only): ``{name: (x, to_scan)}``."""

    def __init__(self) -> None:
        self.model_token: str | None = None
        self.items: dict[tuple, tuple[torch.Tensor, Any] | str] = {}

    def get(self, model: Any, model_token: str, cases: tuple, progress: Progress
            ) -> tuple[dict[str, tuple[torch.Tensor, Any, str]], list[str]]:
        from viewer.io import load_scan

        if model_token != self.model_token:
            self.model_token, self.items = model_token, {}
        ready: dict[str, tuple[torch.Tensor, Any, str]] = {}
        skipped: list[str] = []
        for i, case in enumerate(cases):
            progress.step(i, len(cases))
            if case not in self.items:
                try:
                    scan = load_scan(case[1])
                    if getattr(model, "spatial_dims", None) == 3 and scan.shape[2] == 1:
                        raise ValueError("a 2D image; this model takes volumes")
                    x, to_scan = model.prepare(scan)
                    self.items[case] = (x.detach().to(device="cpu", dtype=torch.float32), to_scan)
                except Exception as exc:  # noqa: BLE001 - one unreadable case must not hide the others
                    self.items[case] = f"{case[0]}: {exc}"
            item = self.items[case]
            if isinstance(item, str):
                skipped.append(item)
            else:
                ready[case[0]] = (item[0], item[1], case[1])
        shapes = {tuple(v[0].shape[1:]) for v in ready.values()}
        if len(shapes) > 1:  # the table needs one input size; keep the most common
            common = max(shapes, key=lambda s: sum(tuple(v[0].shape[1:]) == s for v in ready.values()))
            for name in [n for n, v in ready.items() if tuple(v[0].shape[1:]) != common]:
                skipped.append(f"{name}: prepared to another input size than the other cases")
                del ready[name]
        return ready, skipped


def scan_position(x: torch.Tensor, to_scan: Any, row: int, center: tuple[int, ...] | None) -> tuple[int, int, int]:
    """The voxel of the case's scan that model-input position ``(row, *center)`` maps to."""
    if center is None:
        scan_shape = getattr(to_scan, "scan_shape", None)
        return tuple(int(s) // 2 for s in scan_shape) if scan_shape else (0, 0, 0)  # type: ignore[return-value]
    probe = torch.zeros((x.shape[0], 1, *x.shape[2:]), dtype=torch.float32)
    probe[(row, 0, *center)] = 1.0
    on_scan = np.asarray(to_scan(probe))
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(np.abs(on_scan))), on_scan.shape))  # type: ignore


def _plane(crop: np.ndarray | None, center: tuple[int, ...] | None, box: tuple) -> np.ndarray | None:
    """A 2D picture of a crop: the crop itself, or for 3D crops the plane through the centre."""
    if crop is None:
        return None
    if crop.ndim == 2:
        return np.asarray(crop, dtype=np.float32)
    if crop.ndim == 3:
        k = (center[-1] - box[-1][0]) if center is not None else crop.shape[2] // 2
        return np.asarray(crop[:, :, int(np.clip(k, 0, crop.shape[2] - 1))], dtype=np.float32)
    return None


def run_examples(module: torch.nn.Module, request: ExamplesRequest, cases: dict[str, tuple[torch.Tensor, Any, str]],
                 skipped: list[str], progress: Progress, cache_dir: str | None = None) -> ExamplesResult:
    """The request's top crops over the prepared ``cases``, with their scan positions."""
    from viewer.explain.graph import feature_examples

    if not cases:
        raise ValueError("None of the reference cases could be prepared for this model:\n" + "\n".join(skipped))
    found = feature_examples(module, request.layer, request.channel, {n: v[0] for n, v in cases.items()},
                             k=request.k, target=request.target, preset=request.preset,
                             channel_dim=request.channel_dim, cache_dir=cache_dir, progress=progress,
                             **dict(request.params))
    out = []
    for e in found:
        x, to_scan, path = cases[e.case]
        out.append(ReferenceExample(
            name=e.case, path=path, rank=e.rank, score=float(e.score),
            scan_ijk=scan_position(x, to_scan, e.row, e.center), slice_index=e.slice_index, box=e.box,
            image=_plane(e.image, e.center, e.box), heatmap=_plane(e.heatmap, e.center, e.box),
        ))
    return ExamplesResult(request, tuple(out), tuple(skipped))
