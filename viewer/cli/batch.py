"""``lrp-viewer batch``: explain a cohort from the command line.

One NIfTI relevance map per case and method (``<out>/<case>/<method-tag>.nii.gz``, on
the input file's own voxel grid by default, with the method recorded in its header)
and a ``summary.csv`` with the prediction, conservation numbers, mask metrics and
provenance of every case. Runs resume: finished cases are skipped unless
``--overwrite``. One run at a time per output folder (a lock file). Input folders are
never written.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any, Sequence

from viewer.cli.executors import EXECUTOR_HELP, add_executor_arguments

EXIT_OK, EXIT_FAILED_CASES, EXIT_USAGE = 0, 1, 2

EPILOG = """\
inputs:
  FILE       a scan (NIfTI, DICOM file, PNG/JPEG/TIFF) is one case
  FOLDER     searched recursively: each NIfTI/picture file is a case, each folder
             holding DICOM files is one case (a series)
  LIST.csv   one case per row: column 'path' (file or DICOM folder, relative to the
             CSV's folder), optional 'mask' and 'id'

methods (--method, repeatable; default: LRP with the model card's preset):
  lrp:PRESET[,param=value...]    e.g. lrp:epsilon-plus, lrp:epsilon-gamma-box,gamma=0.5
  NAME[,param=value...]          gradcam, gradcampp, saliency, input_x_gradient, smoothgrad,
                                 integrated_gradients, occlusion, kernel_shap, lime

outputs:
  OUT/<case>/<method-tag>.nii.gz  relevance (tag e.g. lrp-epsilon-plus), on the input
                                  file's voxel grid and affine (--grid input, default)
                                  or in RAS+ voxel order (--grid ras); same world space
  OUT/summary.csv                 case, status (ok/failed/skipped), error, input, mask,
                                  prediction, p.<label> per class, and per method:
                                  explained, input_sum, absorbed, conservation_error,
                                  mass_accuracy and pointing_game (with masks), seconds;
                                  then seconds, input_warnings, note, grid, device,
                                  precision, lrp_viewer_version, model_sha256 (weights)
                                  and card_sha256 of each case

A case is skipped when summary.csv says it finished (ok) with the same model files and
grid, and all its method files exist; --overwrite recomputes everything. A case that
fails (damaged file, scan the model cannot take, a map that cannot be written) is
recorded with its error and the run goes on; when summary.csv itself can no longer be
written (disk full) the run stops. Only one run at a time may write to an output folder
(OUT/.lrp-viewer-batch.lock holds its PID); a lock left by a run that died is taken over.
Text cells of summary.csv that a spreadsheet would read as a formula start with a quote.
Rows are in the order of the inputs, whichever executor ran the cases; the same
outputs come from --executor local and ray, and either resumes the other's run. On Ray,
workers read the inputs and write the maps themselves, so the inputs and OUT must be on
a file system every node mounts at the same path (a worker that does not see OUT stops
the run); summary.csv is written by this process. A case whose worker keeps dying is
recorded as failed (WorkerLost).

""" + EXECUTOR_HELP + """
exit status: 0 all cases ok or skipped, 1 some case failed or the output could not be
written (or Ray workers could not run), 2 usage error (including: another run holds OUT).

examples:
  lrp-viewer batch --model demo3d.toml --method lrp:epsilon-plus --method gradcam \\
      scans/ --out results/
  lrp-viewer batch --model card.toml --mask-pattern '{stem}_mask.nii.gz' cases/ --out out/
  lrp-viewer batch --model card.toml --device cuda --precision bfloat16 --batch-size 16 \\
      cohort.csv --out out/
  ray start --head   # then, on any node of that cluster, with OUT on a shared file system:
  lrp-viewer batch --model card.toml --executor ray --address auto --gpus-per-task 1 \\
      /shared/cohort/ --out /shared/results/
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lrp-viewer batch",
        description="Explain a model's predictions for many scans: one relevance NIfTI per case and "
                    "method plus a summary CSV.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="scan files, folders or CSV lists (see below)")
    p.add_argument("--model", required=True, metavar="CARD",
                   help="model card (.toml/.json), MONAI bundle or TorchScript file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; never inside an input folder)")
    p.add_argument("--method", action="append", default=None, metavar="METHOD",
                   help="attribution method, repeatable (default: lrp with the card's preset)")
    p.add_argument("--mask-pattern", metavar="PATTERN",
                   help="mask file next to each input, e.g. '{stem}_mask.nii.gz' ({stem}, {name}, {suffix}); "
                        "enables mass accuracy and pointing game")
    p.add_argument("--grid", choices=("input", "ras"), default="input",
                   help="voxel grid of the written maps: each input file's own grid and orientation (default), "
                        "or RAS+ voxel order as the viewer shows scans")
    p.add_argument("--target", default="predicted",
                   help="what to explain: 'predicted' (default), a class index or label, or 'A,B' for A rather than B")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to run (auto: cuda when available)")
    p.add_argument("--precision", choices=("float32", "bfloat16", "float16"), default="float32",
                   help="compute precision (reduced precision: faster on GPUs, conservation error reported)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="cases of the same prepared shape explained together (default: 8 on cuda, 1 on cpu)")
    p.add_argument("--trust", action="store_true",
                   help="allow model files that execute code (pickled modules, architectures outside the allow-list)")
    p.add_argument("--overwrite", action="store_true", help="recompute cases that are already done")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_executor_arguments(p)
    return p


class UsageError(Exception):
    """Something about the command itself is wrong; exit status 2."""


class RunFailed(Exception):
    """The run could not go on (nothing can be written); exit status 1, the message says what to do."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help (0) and argparse's usage errors (2)
        return int(exc.code or 0)
    try:
        return run(args)
    except UsageError as exc:
        print(f"lrp-viewer batch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailed as exc:
        print(f"lrp-viewer batch: error: {exc}", file=sys.stderr)
        return EXIT_FAILED_CASES


def run(args: argparse.Namespace) -> int:
    from viewer.cli.batch_inputs import InputError, find_cases
    from viewer.cli.executors import ExecutorError, spec_from_args

    try:
        spec = spec_from_args(args)  # a missing Ray is told before anything is loaded
    except ExecutorError as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out).absolute()
    _check_out(out, args.inputs)
    if spec.kind == "local":
        _device(args.device)  # no GPU here for --device cuda: a usage error before the model loads
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}.")
    model = _load_model(args.model, args.trust)
    methods = _methods(args.method, model)
    target = _target(args.target, model)
    try:
        cases, notes = find_cases(args.inputs, args.mask_pattern, exclude=[out])
    except InputError as exc:
        raise UsageError(str(exc)) from None
    if not cases:
        raise UsageError("No scans found in the inputs (NIfTI, DICOM, PNG/JPEG/TIFF, or a CSV list).")
    _check_out(out, [str(c.path) for c in cases])  # CSV lists name folders the command line does not
    for note in notes:
        if not args.quiet:
            print(f"note: {note}", file=sys.stderr)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"Cannot create the output folder {out} ({exc.strerror}).") from None

    from viewer.cli.batch_lock import OutputLocked, output_lock
    from viewer.cli.executors import ExecutorFailed, open_executor

    with contextlib.ExitStack() as held:
        try:
            taken_over = held.enter_context(output_lock(out))
        except OutputLocked as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:  # the lock file itself cannot be written: neither can anything else
            raise RunFailed(f"Cannot write in the output folder {out} ({exc.strerror or exc}). Free disk space or "
                            "choose a writable --out.") from None
        if taken_over and not args.quiet:
            print(f"note: {taken_over}", file=sys.stderr)
        notify = (lambda text: None) if args.quiet else (lambda text: print(f"note: {text}", file=sys.stderr))
        try:
            executor = held.enter_context(open_executor(spec, notify=notify))
            return _run_locked(args, out, cases, model, methods, target, executor)
        except ExecutorError as exc:
            raise UsageError(str(exc)) from None
        except ExecutorFailed as exc:
            raise RunFailed(f"{exc} Finished cases are in {out / 'summary.csv'}; run the same command again to "
                            "resume.") from None


def _run_locked(args: argparse.Namespace, out: Path, cases: list, model: Any, methods: list, target: Any,
                executor: Any) -> int:
    """The run proper, while this process holds the output folder's lock and ``executor`` is open."""
    import torch

    from viewer.cli.batch_driver import BatchWork, OutputUnwritable, run_cases, write_summary
    from viewer.cli.batch_lock import lock_record
    from viewer.cli.batch_run import Runner
    from viewer.cli.batch_summary import Summary
    from viewer.cli.progress_bar import ProgressBar

    device = torch.device(executor.device)
    batch_size = args.batch_size if args.batch_size is not None else (8 if device.type == "cuda" else 1)
    if executor.kind == "local":
        model.module.to(device)  # workers elsewhere move their own copy
    runner = Runner(model, methods, out, device, args.precision, target, batch_size, grid=args.grid,
                    provenance=_provenance(model))
    summary = Summary(out / "summary.csv", order=[c.id for c in cases])
    pending = []
    expected = {"grid": args.grid, **runner.provenance}
    skipped = []
    for case in cases:
        files = [out / case.id / f"{m.tag}.nii.gz" for m in methods]
        if not args.overwrite and summary.is_done(case.id, case.path, files, expected):
            summary.mark_skipped(case.id)
            skipped.append(case.id)
        else:
            pending.append(case)
    if pending and executor.kind != "local" and not args.quiet:
        print(f"note: {executor.description}", file=sys.stderr)
    bar = ProgressBar(len(cases), enabled=not args.quiet)
    for case_id in skipped:
        bar.update(case_id, "skipped")
    try:
        write_summary(summary)
        failed = run_cases(pending, BatchWork(runner, lock_record()), executor, summary, bar, batch_size)
    except KeyboardInterrupt:
        bar.close()
        print(f"\nInterrupted; {summary.path} lists the finished cases. Run the same command again to resume.",
              file=sys.stderr)
        return 130
    except OutputUnwritable as exc:
        bar.close()
        raise RunFailed(str(exc)) from None
    bar.close()
    if not args.quiet:
        print(f"{len(cases)} cases: {len(pending) - failed} ok, {len(skipped)} skipped, {failed} failed; "
              f"summary: {summary.path}", file=sys.stderr)
    return EXIT_FAILED_CASES if failed else EXIT_OK


def _provenance(model: Any) -> dict[str, str]:
    """What every row records about the software and model that produced it."""
    from viewer import __version__
    from viewer.cli.batch_summary import sha256_of

    card = getattr(model, "card", None)
    card_path = getattr(card, "path", None)
    weights = getattr(card, "weights", None)
    source = getattr(model, "source", None)
    if weights is None and source is not None and Path(source).is_file() and source != card_path:
        weights = source  # a TorchScript or pickled model file: the file is the weights
    return {"lrp_viewer_version": __version__, "model_sha256": sha256_of(weights), "card_sha256": sha256_of(card_path)}


def _check_out(out: Path, inputs: Sequence[str]) -> None:
    """Refuse an output folder inside a searched input folder or equal to an input file's folder."""
    resolved = out.resolve()
    for raw in inputs:
        p = Path(raw).resolve()
        if p.is_dir() and (resolved == p or resolved.is_relative_to(p)):
            raise UsageError(f"--out {out} is inside the input folder {raw}; input folders are never written. "
                             "Choose an output folder elsewhere.")
        if p.is_file() and resolved == p.parent:
            raise UsageError(f"--out {out} is the folder of the input {raw}; input folders are never written. "
                             "Choose another output folder.")


def _device(name: str) -> Any:
    """This process's torch device for ``--device`` (auto: cuda when available); no GPU for cuda is a usage error."""
    import torch

    from viewer.cli.executors import ExecutorError, local_device

    try:
        return torch.device(local_device(name))
    except ExecutorError as exc:
        raise UsageError(str(exc)) from None


def _load_model(path: str, trust: bool) -> Any:
    from viewer.models import ModelLoadError, load_model

    try:
        return load_model(path, trust=trust)
    except ModelLoadError as exc:
        raise UsageError(str(exc)) from None


def _methods(texts: list[str] | None, model: Any) -> list:
    from viewer.cli.batch_run import parse_method
    from viewer.explain.registry import METHODS

    default_preset = getattr(model, "preset", None) or "epsilon-plus"
    specs = []
    for text in texts or ["lrp"]:
        try:
            spec = parse_method(text, default_preset)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if METHODS[spec.method].needs_structure and not getattr(model, "structured", True):
            reason = getattr(model, "unavailable_reason", "") or "the model file hides its layers"
            raise UsageError(f"{METHODS[spec.method].label} cannot run on this model: {reason}")
        if spec.tag in {s.tag for s in specs}:
            raise UsageError(f"--method {text!r} is given twice.")
        specs.append(spec)
    return specs


def _target(text: str, model: Any) -> Any:
    """None (predicted), a class index or an (a, b) contrast, from a number or a label."""
    labels = [str(x) for x in (getattr(model, "labels", None) or [])]

    def one(item: str) -> int:
        item = item.strip()
        if item.lstrip("-").isdigit():
            index = int(item)
        elif item in labels:
            index = labels.index(item)
        else:
            raise UsageError(f"--target {text!r}: {item!r} is neither a class index nor one of the labels "
                             f"({', '.join(labels) or 'the model has no labels'}).")
        if labels and not 0 <= index < len(labels):
            raise UsageError(f"--target {text!r}: class {index} is out of range (0 to {len(labels) - 1}).")
        return index

    if text.strip().lower() in ("", "predicted", "none"):
        return None
    parts = text.split(",")
    if len(parts) == 2:
        return (one(parts[0]), one(parts[1]))
    if len(parts) == 1:
        return one(parts[0])
    raise UsageError(f"--target {text!r}: give one class or two separated by a comma.")
