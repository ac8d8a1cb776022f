"""``lrp-viewer revise``: attribution-guided training from the command line.

Ranks the model's channels by relevance on reference cases (optionally only the
relevance that lands in an unwanted region such as a burned-in marker), then trains
only the top ones (``correct``), freezes them and trains the rest (``preserve``) or
switches them off (``prune``); ``full`` and ``rrr`` are the baselines, ``--selection
random`` the control. Writes a new model card with its weights and a
``revise_report.json`` beside them. An interrupted run continues where it stopped
when started again with the same arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from viewer.cli.executors import EXECUTOR_HELP, ExecutorFailed, WorkerLost, add_executor_arguments
from viewer.revise.errors import ReviseError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
REPORT = "revise_report.json"

EPILOG = """\
modes (--mode):
  correct    train only the top --fraction channels by relevance inside the region
             (the shortcut's carriers); all else frozen
  preserve   freeze the top --fraction channels by relevance for the task to keep
             (--reference cases, whole input); train all the rest on --data
  prune      zero the top --fraction channels by relevance inside the region; no training
  full       fine-tune every parameter (baseline)
  rrr        fine-tune every parameter with an input-gradient penalty inside the region

selections (--selection, for correct/preserve/prune):
  relevance  LRP relevance per channel (the method)
  random     as many channels per layer as 'relevance' picks, at random (the control)
  taylor     |sum of weight x gradient| per channel;  magnitude  mean |weight|

data (--data, --reference, --test NAME=...): a folder whose class subfolders hold the
scans (data/lesion right/x.nii.gz) or a CSV list with columns path, label (a label of
the card or a class number) and optional mask, id. One model input per case.

outputs: OUT (card), OUT's stem + .safetensors, revise_report.json beside them.

example:
  lrp-viewer revise --model demo2d_shortcut.toml --data shortcut2d/reference.csv \\
      --test decorrelated=shortcut2d/decorrelated.csv --region-pattern '{stem}_marker.nii.gz' \\
      --mode correct --fraction 0.05 --epochs 10 --out revised/demo2d_corrected.toml
"""


def build_parser() -> argparse.ArgumentParser:
    from viewer.revise.revise import MODES, SELECTIONS

    p = argparse.ArgumentParser(
        prog="lrp-viewer revise",
        description="Revise a model by updating, freezing or pruning the channels that attribution singles out.",
        epilog=EPILOG + "\n" + EXECUTOR_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="CARD", help="model card (.toml/.json) with an architecture")
    p.add_argument("--data", required=True, metavar="DIR_OR_CSV", help="labelled cases to train on")
    p.add_argument("--out", required=True, metavar="NEW_CARD", help="the revised model card to write (.toml/.json)")
    p.add_argument("--mode", choices=MODES, default="correct")
    p.add_argument("--selection", choices=SELECTIONS, default="relevance")
    p.add_argument("--fraction", type=float, default=0.05, help="share of channels in (0, 1] (default 0.05)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--region-pattern", metavar="PATTERN",
                   help="the unwanted region beside each case, e.g. '{stem}_marker.nii.gz' ({stem}, {name}, {suffix})")
    p.add_argument("--reference", metavar="DIR_OR_CSV",
                   help="cases to rank channels on (default: --data); for preserve, the task to keep")
    p.add_argument("--test", action="append", default=[], metavar="NAME=DIR_OR_CSV",
                   help="a labelled test set, scored before and after (repeatable)")
    p.add_argument("--layers", metavar="A,B", help="channel layers to select from (default: all but the output)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--rrr-weight", type=float, default=0.03, help="penalty weight of mode rrr (default 0.03)")
    p.add_argument("--seed", type=int, default=0, help="order of the training cases")
    p.add_argument("--selection-seed", type=int, default=0, help="draw of the random selection")
    p.add_argument("--target", metavar="CLASS",
                   help="whose relevance ranks the channels: 'predicted', 'label' (the true class), or a class "
                        "name or number (default: predicted for correct/prune, label for preserve)")
    p.add_argument("--trust", action="store_true", help="allow architectures outside the allow-list")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs, start afresh")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_executor_arguments(p)  # where the relevance ranking on the reference cases runs; training stays here
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return run(args)
    except ReviseError as exc:
        print(f"lrp-viewer revise: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ExecutorFailed, WorkerLost) as exc:  # Ray workers could not rank the channels
        print(f"lrp-viewer revise: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def _load(args: argparse.Namespace):
    from viewer.models import ModelLoadError, load_model

    try:
        model = load_model(args.model, trust=args.trust)
    except ModelLoadError as exc:
        raise ReviseError(str(exc)) from None
    if model.kind != "card" or not model.card.architecture or model.card.path is None:
        raise ReviseError(f"{args.model} is a {model.kind} model; revise writes a new model card, so it needs a "
                          "model card (.toml/.json) that names an architecture and a weights file.")
    return model


def _outputs(args: argparse.Namespace) -> tuple[Path, Path]:
    out = Path(args.out).absolute()
    if out.suffix.lower() not in (".toml", ".json"):
        raise ReviseError(f"--out {args.out} must be a model card name ending in .toml or .json.")
    if out.resolve() == Path(args.model).resolve() or out.with_suffix(".safetensors").exists() and \
            out.with_suffix(".safetensors").resolve() == Path(args.model).with_suffix(".safetensors").resolve():
        raise ReviseError("--out names the input model; choose a new name (the input is never overwritten).")
    if not out.parent.is_dir():
        raise ReviseError(f"The folder of --out ({out.parent}) does not exist; create it first.")
    report = out.parent / REPORT
    if not args.overwrite:
        taken = [p for p in (out, out.with_suffix(".safetensors")) if p.exists()]
        if report.exists():
            try:
                owner = json.loads(report.read_text()).get("revised", {}).get("card")
            except (OSError, ValueError, AttributeError):
                owner = None
            if owner != out.name:
                taken.append(report)
        if taken:
            raise ReviseError(f"{', '.join(p.name for p in taken)} already exist(s) in {out.parent}; "
                              "pass --overwrite or choose another --out.")
    return out, report


def run(args: argparse.Namespace) -> int:
    from viewer.cli.executors import ExecutorError, spec_from_args
    from viewer.cli.revise_data import read_cases
    from viewer.cli.revise_output import checkpoint_path, load_checkpoint, save_checkpoint, sha256
    from viewer.cli.revise_report import evaluate, render_table, report_fields, write_outputs
    from viewer.cli.revise_scores import relevance_scorer
    from viewer.revise.channels import channel_map
    from viewer.revise.revise import MASKED_MODES, REGION_MODES, RevisePlan, revise, select_channels
    from viewer.revise.selection import ChannelMask, check_fraction
    from viewer.revise.train import TrainConfig

    started = time.perf_counter()
    try:
        spec = spec_from_args(args)
    except ExecutorError as exc:
        raise ReviseError(str(exc)) from None
    check_fraction(args.fraction)
    if args.epochs < 0 or args.batch_size < 1:
        raise ReviseError("--epochs must be 0 or more and --batch-size at least 1.")
    if args.mode in REGION_MODES and not args.region_pattern:
        raise ReviseError(f"Mode {args.mode} acts on an unwanted region: give --region-pattern, "
                          "e.g. '{stem}_marker.nii.gz'.")
    if args.mode == "preserve" and not args.reference:
        raise ReviseError("Mode preserve freezes the channels of the task to keep: give its cases with --reference "
                          "(--data holds the new task to train on).")
    out, report_path = _outputs(args)
    model = _load(args)
    tests = dict(_test_arg(t) for t in args.test)
    data, data_info = read_cases("data", args.data, model, args.region_pattern)
    reference, ref_info = (data, data_info) if not args.reference else \
        read_cases("reference", args.reference, model, args.region_pattern)
    sets = {"data": data}
    infos = {"data": data_info, "reference": ref_info}
    for name, source in tests.items():
        sets[name], infos[name] = read_cases(name, source, model, args.region_pattern)
    for info in infos.values():
        for note in info.notes:
            _say(args, f"note: {note}")
    train = data.labelled() if args.mode != "prune" else None
    if train is not None and len(train) == 0:
        raise ReviseError(f"None of the {len(data)} cases of --data has a label; give a CSV list with a 'label' "
                          "column or a folder with one subfolder per class.")
    if args.mode == "preserve":
        reference = reference.labelled()
        if len(reference) == 0:
            raise ReviseError("Mode preserve ranks channels by relevance for the true class: the --reference cases "
                              "need labels.")
    low_high = model.card.input.input_range or (None, None)
    plan = RevisePlan(
        mode=args.mode, fraction=args.fraction, selection=args.selection,
        layers=tuple(s.strip() for s in args.layers.split(",")) if args.layers else None,
        train=TrainConfig(epochs=args.epochs, lr=args.lr, batch=args.batch_size, weight_decay=args.weight_decay,
                          seed=args.seed, rrr_weight=args.rrr_weight if args.mode == "rrr" else 0.0),
        preset=model.preset, lrp={"low": low_high[0], "high": low_high[1]}, selection_seed=args.selection_seed,
        target=_target_arg(args.target, model.labels),
    )
    fingerprint = _fingerprint(args, model, sets, reference, sha256)
    ckpt = checkpoint_path(out)
    state = None if args.overwrite else load_checkpoint(ckpt, fingerprint)
    if args.overwrite and ckpt.exists():
        ckpt.unlink()
    module = model.module
    original = {k: v.detach().clone() for k, v in module.state_dict().items()}
    _say(args, f"scoring {len(sets)} set(s) before the revision …")
    before = state["extra"]["before"] if state else evaluate(module, sets, plan)
    mask, selection_seconds = None, 0.0
    if state and state["mask"] is not None:
        mask = ChannelMask({k: v.bool() for k, v in state["mask"].items()})
        selection_seconds = float(state["extra"]["selection_seconds"])
    elif plan.mode in MASKED_MODES:
        _say(args, f"ranking channels by {plan.selection} on {len(reference)} reference case(s) …")
        t0 = time.perf_counter()
        with relevance_scorer(spec, plan.selection in ("relevance", "random"), lambda t: _say(args, f"note: {t}")) \
                as scores:
            mask = select_channels(module, channel_map(module, reference.x, list(plan.layers or []) or None), plan,
                                   reference, scores=scores)
        selection_seconds = time.perf_counter() - t0
        _say(args, f"selected {mask.count} of {mask.total} channels: {mask.counts()}")
    resume = state["training"] if state and state["training"] else None
    if resume:
        _say(args, f"continuing from epoch {resume['epoch']} of {args.epochs} ({ckpt.name})")
    extra = {"before": before, "selection_seconds": selection_seconds}

    def on_epoch(epoch: int, checkpoint: dict[str, Any]) -> None:
        save_checkpoint(ckpt, fingerprint, mask.selected if mask else None, checkpoint, extra)
        _say(args, f"epoch {epoch}/{args.epochs}: loss {last_loss[0]:.4f} ({checkpoint['seconds']:.1f} s)")

    last_loss = [float("nan")]

    def progress(step: int, steps: int, loss: float) -> None:
        last_loss[0] = loss

    revision = revise(module, plan, reference, train, on_epoch=on_epoch, resume=resume, progress=progress, mask=mask)
    _say(args, "scoring after the revision …")
    after = evaluate(module, sets, plan)
    report = report_fields(args, model, plan, revision, original, module.state_dict(), before, after, infos,
                           selection_seconds, time.perf_counter() - started, resumed=resume is not None)
    write_outputs(out, report_path, module, model, report)
    if ckpt.exists():
        ckpt.unlink()
    if not args.quiet:
        print(render_table(report))
    return EXIT_OK


def _target_arg(text: str | None, labels: list[str]) -> str | int | None:
    from viewer.cli.revise_data import label_index

    if text is None or text.strip().lower() in ("predicted", "label"):
        return None if text is None else text.strip().lower()
    return label_index(text, labels, "--target")


def _test_arg(text: str) -> tuple[str, str]:
    name, sep, source = text.partition("=")
    if not sep or not name.strip() or not source.strip():
        raise ReviseError(f"--test {text!r}: write NAME=DIR_OR_CSV, e.g. decorrelated=cases/decorrelated.csv.")
    if name.strip() in ("data", "reference"):
        raise ReviseError(f"--test name {name!r} is reserved; choose another name.")
    return name.strip(), source.strip()


def _fingerprint(args: argparse.Namespace, model, sets: dict, reference, sha256) -> str:
    """Everything an interrupted run must share with this one to be continued by it."""
    digest = hashlib.sha256()
    fields = {k: getattr(args, k) for k in ("mode", "selection", "fraction", "epochs", "region_pattern", "layers",
                                          "lr", "batch_size", "weight_decay", "rrr_weight", "seed", "selection_seed",
                                          "target")}
    digest.update(json.dumps(fields, sort_keys=True).encode())
    digest.update(sha256(model.card.weights).encode())
    for case_set in [*sets.values(), reference]:
        digest.update(case_set.x.numpy().tobytes())
        digest.update(case_set.y.numpy().tobytes())
        if case_set.region is not None:
            digest.update(case_set.region.numpy().tobytes())
    return digest.hexdigest()
