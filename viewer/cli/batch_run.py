"""Running the engine over cases: load, prepare, predict, explain, map back, write.

Cases whose prepared inputs have the same shape are stacked into one batch (per
predicted class, since a target applies to every batch element) and explained in one
call where the method allows it, so a GPU sees a few large passes instead of many
small ones. Most methods explain one input at a time, and LRP's ``absorbed``
relevance can be split per case only when the engine reports
``meta["absorbed_per_sample"]``; :class:`Runner` learns this on the first batch and
otherwise runs case by case, with no extra cost after that.

Every failure is tied to its case: loading and preparing happen per case, and when a
batched pass fails its cases are retried one by one, so a single bad case cannot take
its neighbours down. A map that cannot be written (full disk, read-only folder) fails
its case with an :class:`~viewer.io.ExportError` naming the file and the reason.

:meth:`Runner.chunk_rows` (and :meth:`Runner.case_row` for one case) is the whole work
for a few cases — cases in, their summary rows out, never raising — so any executor
(this process, a Ray worker) can call it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from viewer.cli.batch_grid import InputGrid, input_grid
from viewer.cli.batch_inputs import Case
from viewer.cli.batch_methods import CaseMap, MethodSpec, parse_method
from viewer.io.errors import ExportError
from viewer.io.export_nifti import export_relevance

__all__ = ["CaseMap", "MethodSpec", "Prepared", "Runner", "failed_row", "group_key", "parse_method", "write_reason"]

Row = dict[str, Any]


@dataclass
class Prepared:
    """A case loaded and turned into model input, waiting for its batch."""

    case: Case
    scan: Any
    x: torch.Tensor
    to_scan: Callable[[Any], np.ndarray]
    mask: np.ndarray | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    grid: InputGrid | None = None  # None: maps are written on the scan's (RAS) grid
    warnings: tuple[str, ...] = ()  # the prepared input's out-of-distribution warnings


@dataclass
class Runner:
    """Explains prepared cases with one model and writes ``<out>/<case>/<tag>.nii.gz``.

    ``batchable[method]`` is learnt on first use: False when the method refuses a batch
    of several inputs (most methods explain one input at a time) or, for LRP, when the
    engine reports ``absorbed`` only for the whole batch. Methods that cannot batch run
    case by case, and a case with several rows (a 2D model on a volume) row by row.
    ``grid`` is ``"input"`` (maps on each input file's own voxel grid) or ``"ras"``;
    ``provenance`` holds the run's columns (version, model hashes) copied into every row.
    """

    model: Any
    methods: Sequence[MethodSpec]
    out: Path
    device: torch.device
    precision: str = "float32"
    target: Any = None
    batch_size: int = 1
    grid: str = "input"
    provenance: dict[str, Any] = field(default_factory=dict)
    batchable: dict[str, bool] = field(default_factory=dict)

    # -- cases, start to end (what an executor calls) ---------------------------------
    def chunk_rows(self, cases: Sequence[Case]) -> Iterator[Row]:
        """Load, prepare, explain and write a few cases; each row as soon as it is known, never raising.

        Cases of the same prepared shape are explained together (up to all of ``cases``),
        so the caller's chunk size is the batch size.
        """
        prepared = []
        for case in cases:
            start = time.perf_counter()
            try:
                prepared.append(self.prepare(case))
            except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                yield self.failed_row(case, exc, time.perf_counter() - start)
        groups: dict[Any, list[Prepared]] = {}
        for p in prepared:
            groups.setdefault(group_key(p), []).append(p)
        for group in groups.values():
            for p, row, error in self.run(group):
                yield self.row_of(p, row, error)

    def case_row(self, case: Case) -> Row:
        """Load, prepare, explain and write one case; its summary row (status ok or failed)."""
        start = time.perf_counter()
        try:
            p = self.prepare(case)
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            return self.failed_row(case, exc, time.perf_counter() - start)
        return self.row_of(*self._run_one(p))

    def row_of(self, p: Prepared, row: Row | None, error: BaseException | None) -> Row:
        """The summary row of a case :meth:`run` returned."""
        if error is not None:
            return self.failed_row(p.case, error, p.seconds)
        return {"case": p.case.id, "status": "ok", "error": "", "input": str(p.case.path),
                "mask": str(p.case.mask or ""), **row, "input_warnings": "; ".join(p.warnings),
                **self.run_columns()}

    def failed_row(self, case: Case, exc: BaseException, seconds: float) -> Row:
        return {**failed_row(case, exc, seconds), **self.run_columns()}

    def run_columns(self) -> Row:
        """What produced a row: output grid, device, precision, plus the run's provenance."""
        device = str(self.device)
        if self.device.type == "cuda" and torch.cuda.is_available():
            device += f" ({torch.cuda.get_device_name(self.device)})"
        return {"grid": self.grid, "device": device, "precision": self.precision, **self.provenance}

    # -- per case ---------------------------------------------------------------------
    def prepare(self, case: Case) -> Prepared:
        """Load the scan (and mask) and make the model input; raises on any problem."""
        from viewer.io import load_scan

        start = time.perf_counter()
        scan = load_scan(case.path)
        x, to_scan = self.model.prepare(scan)
        notes = list(getattr(to_scan, "notes", []) or [])
        warnings = tuple(str(w) for w in (getattr(to_scan, "warnings", ()) or ()))
        grid = None
        if self.grid == "input":
            grid, note = input_grid(scan)
            if note:
                notes.append(note)
        mask = None
        if case.mask is not None:
            mask_scan = load_scan(case.mask)
            if mask_scan.shape != scan.shape:
                notes.append(f"mask {case.mask.name} has shape {mask_scan.shape}, the scan {scan.shape}: "
                             "mask metrics skipped")
            else:
                mask = np.asarray(mask_scan.data) > 0.5
                if not mask.any():
                    notes.append(f"mask {case.mask.name} is empty: mask metrics skipped")
                    mask = None
        elif case.mask_missing is not None:
            notes.append(f"no mask at {case.mask_missing.name}")
        return Prepared(case, scan, x, to_scan, mask, time.perf_counter() - start, notes, grid, warnings)

    # -- batches ----------------------------------------------------------------------
    def may_batch(self) -> bool:
        """Whether stacking cases can still pay off (some method not yet known to refuse)."""
        return self.batch_size > 1 and any(self.batchable.get(m.method, True) for m in self.methods)

    def run(self, group: list[Prepared]) -> list[tuple[Prepared, Row | None, BaseException | None]]:
        """Explain a group of same-shaped cases; one (prepared, row, error) per case, in order."""
        if len(group) == 1 or not self.may_batch():
            return [self._run_one(p) for p in group]
        try:
            x = torch.cat([p.x for p in group]).to(self.device)
            probabilities = self._predict(x, _slices([p.x.shape[0] for p in group]))
            by_target: dict[Any, list[int]] = {}
            for i, probs in enumerate(probabilities):
                by_target.setdefault(self._target_for(probs), []).append(i)
            outcome: dict[int, tuple[Prepared, Row | None, BaseException | None]] = {}
            for members in by_target.values():
                sub = [group[i] for i in members]
                rows = self._explain(sub, [probabilities[i] for i in members])
                outcome.update({i: (group[i], row, None) for i, row in zip(members, rows)})
            return [outcome[i] for i in range(len(group))]
        except Exception:  # noqa: BLE001 - isolate the failing case by running each alone
            return [self._run_one(p) for p in group]

    def _run_one(self, p: Prepared) -> tuple[Prepared, Row | None, BaseException | None]:
        try:
            return p, self._explain([p])[0], None
        except Exception as exc:  # noqa: BLE001 - recorded in the summary, the run goes on
            return p, None, exc

    def _explain(self, group: list[Prepared], probabilities: list[np.ndarray] | None = None) -> list[Row]:
        """Run every method on the cases of ``group`` (which share one target)."""
        start = time.perf_counter()
        x = torch.cat([p.x for p in group]).to(self.device)
        per_case = _slices([p.x.shape[0] for p in group])
        rows: list[Row] = [{} for _ in group]
        if probabilities is None and (x.shape[0] > 1 or not self.methods):
            probabilities = self._predict(x, per_case)  # several slices: the case-level prediction decides
        target = self.target if probabilities is None else self._target_for(probabilities[0])
        for spec in self.methods:
            m_start = time.perf_counter()
            maps = self._batched(spec, x, per_case, target) if len(group) > 1 else None
            if maps is None:
                maps = [self._case_map(spec, x[s], target) for s in per_case]
            if probabilities is None:  # one single-row case: read the prediction off the output
                probabilities = [self._probabilities(maps[0].output)]
            target = maps[0].target  # every method explains the same target
            seconds = (time.perf_counter() - m_start) / len(group)
            for i, (p, case_map) in enumerate(zip(group, maps)):
                rows[i].update(self._write(p, spec, case_map, seconds))
        for i in range(len(group)):
            rows[i].update(self._prediction(probabilities[i]))
        elapsed = (time.perf_counter() - start) / len(group)
        for p, row in zip(group, rows):
            row["seconds"] = round(p.seconds + elapsed, 4)
            if p.notes:
                row["note"] = "; ".join(p.notes)
        return rows

    def _batched(self, spec: MethodSpec, x: torch.Tensor, per_case: list[slice], target: Any) -> list[CaseMap] | None:
        """One call for all cases, cut per case; None when the method cannot batch (learnt once)."""
        if not self.batchable.get(spec.method, True):
            return None
        try:
            r = self._call(spec, x, target)
        except ValueError:
            self.batchable[spec.method] = False
            return None
        per_sample = (r.meta or {}).get("absorbed_per_sample")
        if r.absorbed is not None and per_sample is None:
            self.batchable[spec.method] = False  # absorbed relevance cannot be split per case
            return None
        self.batchable[spec.method] = True
        return [CaseMap.of(r, s, None if per_sample is None else float(sum(per_sample[s]))) for s in per_case]

    def _case_map(self, spec: MethodSpec, x: torch.Tensor, target: Any) -> CaseMap:
        """One case: all its rows in one call, or row by row for methods that take one input."""
        if x.shape[0] == 1 or self.batchable.get(spec.method, True) or spec.method == "lrp":
            try:
                return CaseMap.of(self._call(spec, x, target))
            except ValueError:
                if x.shape[0] == 1:
                    raise
                self.batchable[spec.method] = False
        return CaseMap.combine([CaseMap.of(self._call(spec, x[i:i + 1], target)) for i in range(x.shape[0])])

    # -- engine calls -----------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=getattr(torch, self.precision))

    def _call(self, spec: MethodSpec, x: torch.Tensor, target: Any) -> Any:
        kwargs = spec.kwargs
        if spec.method == "lrp":
            from viewer.explain.lrp import lrp

            return lrp(self.model.module, x, target=target, precision=self.precision, **kwargs)
        from viewer.explain import explain

        if spec.method in ("gradcam", "gradcampp") and kwargs.get("layer") is None:
            kwargs["layer"] = getattr(self.model, "gradcam_layer", None)
        with self._autocast():
            return explain(self.model.module, x, method=spec.method, target=target, **kwargs)

    def _predict(self, x: torch.Tensor, per_case: list[slice]) -> list[np.ndarray]:
        with torch.no_grad(), self._autocast():
            probs = self.model.predict(x)
        probs = torch.as_tensor(probs).detach().float().cpu()
        probs = probs.reshape(probs.shape[0], -1) if probs.ndim <= 2 else probs.flatten(2).mean(2)
        return [probs[s].mean(0).numpy() for s in per_case]

    def _probabilities(self, output: torch.Tensor) -> np.ndarray:
        """The model's probabilities from its output, as ``LoadedModel.predict`` computes them."""
        out = output.detach().float().cpu()
        if out.ndim >= 2 and out.shape[1] == 1 and getattr(self.model, "task", "") == "segmentation":
            probs = torch.sigmoid(out)
        else:
            probs = torch.softmax(out, dim=1)
        probs = probs.reshape(probs.shape[0], -1) if probs.ndim <= 2 else probs.flatten(2).mean(2)
        return probs.mean(0).numpy()

    def _target_for(self, probabilities: np.ndarray) -> Any:
        """The user's target, or for classifiers the case's predicted class (from all its rows)."""
        if self.target is not None or getattr(self.model, "task", "classification") != "classification":
            return self.target
        from viewer.explain.target import Target

        return Target.cls(int(np.argmax(probabilities)))

    # -- results ----------------------------------------------------------------------
    def _write(self, p: Prepared, spec: MethodSpec, case_map: CaseMap, seconds: float) -> Row:
        on_scan = p.to_scan(case_map.relevance.detach().float().cpu())
        path = self.out / p.case.id / f"{spec.tag}.nii.gz"
        data, like = on_scan, p.scan
        if p.grid is not None:
            data = p.grid.apply(np.reshape(on_scan, p.scan.shape))
            like = p.grid.like(p.scan, data)
        labels = list(getattr(self.model, "labels", []) or [])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            export_relevance(data, like, case_map, self.model_name, path, overwrite=True, labels=labels or None)
        except (OSError, ExportError) as exc:
            raise ExportError(f"{path} could not be written ({write_reason(exc)}). Free disk space or fix the "
                              "output folder's permissions, then run the same command again.") from exc
        row: Row = {
            f"{spec.tag}.explained": case_map.explained,
            f"{spec.tag}.input_sum": case_map.input_sum,
            f"{spec.tag}.absorbed": case_map.absorbed,
            f"{spec.tag}.conservation_error": case_map.conservation_error,
        }
        if p.mask is not None:
            from viewer.explain.metrics import pointing_game, relevance_mass_accuracy

            row[f"{spec.tag}.mass_accuracy"] = relevance_mass_accuracy(on_scan, p.mask)
            row[f"{spec.tag}.pointing_game"] = int(pointing_game(on_scan, p.mask))
        row[f"{spec.tag}.seconds"] = round(seconds, 4)
        return row

    @property
    def model_name(self) -> str:
        return str(getattr(self.model, "name", None) or "model")

    def _prediction(self, probs: np.ndarray) -> Row:
        labels = list(getattr(self.model, "labels", []) or [])
        names = [labels[i] if i < len(labels) else f"class {i}" for i in range(len(probs))]
        row: Row = {"prediction": names[int(np.argmax(probs))] if len(probs) else ""}
        row.update({f"p.{n}": float(v) for n, v in zip(names, probs)})
        return row


def failed_row(case: Case, exc: BaseException, seconds: float) -> Row:
    """The summary row of a case that failed: the error type and its message on one line."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return {"case": case.id, "status": "failed", "error": f"{type(exc).__name__}: {message}",
            "input": str(case.path), "mask": str(case.mask or ""), "seconds": round(seconds, 4)}


def write_reason(exc: BaseException) -> str:
    """The operating system's reason behind a write error (``No space left on device``), or its message."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
        error = error.__cause__ or error.__context__
    return " ".join(str(exc).split()) or type(exc).__name__


def _slices(counts: list[int]) -> list[slice]:
    edges = np.cumsum([0] + counts)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def group_key(p: Prepared) -> tuple:
    """Cases batch together when their inputs stack: same shape and dtype."""
    return (tuple(p.x.shape[1:]), p.x.dtype)
