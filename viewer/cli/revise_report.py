"""The numbers of a revision: scoring case sets, the report's fields, the table printed.

The report is meant to be checked: every accuracy and relevance share in it is what
:func:`evaluate` computes from the saved model on the same cases, and
``parameters_changed`` counts the values that differ bitwise between the original
and the saved weights.
"""

from __future__ import annotations

import argparse
import math
import platform
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from viewer.revise.measures import accuracy, parameters_changed, region_share
from viewer.revise.revise import CaseSet, RevisePlan, Revision

REPORT_FORMAT = "lrp-viewer revise report"


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def evaluate(module: nn.Module, sets: Mapping[str, CaseSet], plan: RevisePlan) -> dict[str, dict[str, Any]]:
    """Per set: accuracy on its labelled cases, relevance share on its regions (None where
    a set has no labels or no regions)."""
    out = {}
    for name, cases in sets.items():
        labelled = cases.labelled()
        marked = cases.with_region()
        out[name] = {
            "cases": len(cases),
            "labelled": len(labelled),
            "accuracy": _number(accuracy(module, labelled.x, labelled.y)) if len(labelled) else None,
            "with_region": len(marked),
            "region_share": _number(region_share(module, marked.x, marked.region, plan.preset, **plan.lrp))
            if len(marked) else None,
        }
    return out


def report_fields(args: argparse.Namespace, model, plan: RevisePlan, revision: Revision,
                  original: Mapping[str, torch.Tensor], revised: Mapping[str, torch.Tensor],
                  before: Mapping[str, Any], after: Mapping[str, Any], infos: Mapping[str, Any],
                  selection_seconds: float, total_seconds: float, resumed: bool) -> dict[str, Any]:
    from viewer import __version__
    from viewer.cli.revise_output import sha256

    outcome = revision.outcome
    mask = revision.mask
    return {
        "format": REPORT_FORMAT,
        "format_version": 1,
        "mode": plan.mode,
        "selection": plan.selection if mask is not None else None,
        "ranking_target": None if mask is None or plan.selection not in ("relevance", "random") else (
            plan.target if plan.target is not None else "label" if plan.mode == "preserve" else "predicted"),
        "fraction": plan.fraction,
        "layers": revision.cmap.names,
        "channels": None if mask is None else {
            "selected": mask.count, "total": mask.total, "per_layer": mask.indices(),
            "role": {"correct": "updated", "preserve": "frozen", "prune": "zeroed"}[plan.mode],
        },
        "parameters_updated": revision.zeroed if plan.mode == "prune" else outcome.parameters_updated,
        "parameters_total": sum(v.numel() for k, v in original.items() if v.is_floating_point()
                                and "running" not in k),
        "parameters_changed": parameters_changed(original, revised),
        "epochs": 0 if outcome is None else outcome.epochs,
        "steps": 0 if outcome is None else outcome.steps,
        "lr": plan.train.lr, "batch_size": plan.train.batch, "weight_decay": plan.train.weight_decay,
        "rrr_weight": plan.train.rrr_weight,
        "seeds": {"training": plan.train.seed, "selection": plan.selection_seed},
        "wall_time_s": {"selection": round(selection_seconds, 3),
                        "training": round(outcome.seconds, 3) if outcome else 0.0,
                        "total": round(total_seconds, 3)},
        "optimizer_state_bytes": 0 if outcome is None else outcome.optimizer_state_bytes,
        "macs": {"before": revision.macs_before, "after": revision.macs_after},
        "region_pattern": args.region_pattern,
        "preset": plan.preset,
        "lrp": dict(plan.lrp),
        "model": {"card": str(Path(args.model).absolute()), "weights_sha256": sha256(model.card.weights)},
        "data": {name: {"source": info.source, "cases": info.cases, "labelled": info.labelled,
                        "with_region": info.with_region} for name, info in infos.items()},
        "before": dict(before),
        "after": dict(after),
        "resumed": resumed,
        "versions": {"lrp-viewer": __version__, "torch": torch.__version__, "python": platform.python_version()},
    }


def write_outputs(out: Path, report_path: Path, module: nn.Module, model, report: dict[str, Any]) -> None:
    """The revised card and weights, then the report that names them."""
    from viewer.cli.revise_output import read_raw_card, revised_card, sha256, write_model, write_report

    raw = read_raw_card(model.card.path)
    pct = f"{100 * report['fraction']:g} %"
    what = {"correct": f"updated the {pct} channels with most relevance on the region",
            "preserve": f"froze the {pct} channels with most task relevance, trained the rest",
            "prune": f"zeroed the {pct} channels with most relevance on the region",
            "full": "fine-tuned every parameter", "rrr": "fine-tuned with an input-gradient penalty on the region"}
    note = (f"Revised by lrp-viewer revise (mode {report['mode']}: {what[report['mode']]}"
            + (f", selection {report['selection']}" if report["selection"] else "") + "); see " + report_path.name + ".")
    name = f"{raw.get('name', model.name)} — revised ({report['mode']})"
    weights = write_model(out, module, revised_card(raw, out.with_suffix(".safetensors").name, name, note),
                          {"format": "pt", "built_by": "lrp-viewer revise"})
    report["revised"] = {"card": out.name, "weights": weights.name, "weights_sha256": sha256(weights)}
    write_report(report_path, report)


def render_table(report: Mapping[str, Any]) -> str:
    """Before → after per case set, for the terminal."""
    lines = [f"{'set':16s} {'accuracy':>18s} {'region share':>18s}"]
    for name, b in report["before"].items():
        a = report["after"][name]
        lines.append(f"{name:16s} {_pair(b['accuracy'], a['accuracy']):>18s} "
                     f"{_pair(b['region_share'], a['region_share']):>18s}")
    changed = report["parameters_changed"]
    lines.append(f"parameters changed: {changed} of {report['parameters_total']}; "
                 f"optimiser state {report['optimizer_state_bytes']} bytes; "
                 f"{report['wall_time_s']['total']:.1f} s")
    return "\n".join(lines)


def _pair(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "-"
    return f"{before:.3f} → {after:.3f}"
