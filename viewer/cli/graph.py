"""``lrp-viewer graph``: the attribution graph of one scan's prediction, written to a folder.

``graph.json`` (nodes, edges, parameters, model and scan identifiers, versions),
``graph.png`` (a layered drawing) and ``nodes/<layer>_<channel>.nii.gz`` (each node's
conditional relevance on the scan's grid). The scan is never written.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any, Sequence

from viewer.cli.executors import EXECUTOR_HELP, add_executor_arguments

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

EPILOG = """\
outputs:
  OUT/graph.json                  nodes (layer, channel, relevance, share, conservation residual),
                                  edges (relevance flowing between them), parameters, identifiers
  OUT/graph.png                   the graph drawn level by level, with each node's heatmap
  OUT/nodes/<layer>_<channel>.nii.gz
                                  relevance of the target through that channel, on the scan's grid

examples:
  lrp-viewer graph --model demo3d.toml case_left_large.nii.gz --out graph/
  lrp-viewer graph --model card.toml scan.nii.gz --layers features.3,features.2 --width 8,4 --keep 0.8 --out g/
"""


class UsageError(Exception):
    """Something about the command is wrong; exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lrp-viewer graph",
        description="Which internal features (channels) of a model carry its decision for one scan, and how "
                    "relevance flows between them: an attribution graph built with LRP.",
        epilog=EPILOG + "\n" + EXECUTOR_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scan", metavar="SCAN", help="the scan (NIfTI, DICOM file or folder, PNG/JPEG/TIFF)")
    p.add_argument("--model", required=True, metavar="CARD", help="model card (.toml/.json), MONAI bundle or TorchScript")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--layers", metavar="A,B", help="layer names, nearest the output first (default: the last blocks)")
    p.add_argument("--width", default="6,3", metavar="W1,W2",
                   help="nodes at level 1, then children per node at each further level (default 6,3)")
    p.add_argument("--keep", type=float, metavar="F", help="prune to the nodes carrying this share of the flow (0-1)")
    p.add_argument("--target", default="predicted",
                   help="what to explain: 'predicted' (default), a class index or label, or 'A,B' for A rather than B")
    p.add_argument("--preset", metavar="NAME", help="LRP preset (default: the model card's)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to run")
    p.add_argument("--trust", action="store_true", help="allow model files that execute code")
    add_executor_arguments(p)  # the graph is built where the executor runs (a Ray worker's GPU), written here
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help (0) and argparse's usage errors (2)
        return int(exc.code or 0)
    try:
        return run(args)
    except UsageError as exc:
        print(f"lrp-viewer graph: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    from viewer.cli.batch import UsageError as BatchUsage
    from viewer.cli.batch import _device, _load_model, _target
    from viewer.cli.executors import ExecutorError, ExecutorFailed, WorkerLost, spec_from_args
    from viewer.explain.graph import GraphError, attribution_graph, export_graph
    from viewer.io import ExportError, ScanLoadError, load_scan
    from viewer.models import ModelLoadError

    widths = _numbers(args.width, "--width")
    layers = [s.strip() for s in args.layers.split(",") if s.strip()] if args.layers else None
    if args.keep is not None and not 0 < args.keep <= 1:
        raise UsageError(f"--keep must be between 0 and 1 (a share of the relevance flow), got {args.keep}.")
    try:
        spec = spec_from_args(args)
    except ExecutorError as exc:
        raise UsageError(str(exc)) from None
    try:
        device = _device(args.device if spec.kind == "local" else "cpu")  # Ray workers pick their own
        model = _load_model(args.model, args.trust)
        target = _target(args.target, model)
    except BatchUsage as exc:
        raise UsageError(str(exc)) from None
    scan_path = Path(args.scan)
    out = Path(args.out)
    if scan_path.resolve().parent == out.resolve() and scan_path.name in ("graph.json", "graph.png"):
        raise UsageError(f"{scan_path} would be overwritten by the output; choose another --out.")
    try:
        scan = load_scan(scan_path)
        x, to_scan = model.prepare(scan)
    except (ScanLoadError, ModelLoadError) as exc:
        raise UsageError(str(exc)) from None
    model.module.to(device)
    x = x.to(device)
    if target is None and getattr(model, "task", "classification") == "classification":
        target = int(model.predict(x).mean(0).argmax())  # a case's prediction over all its slices
    preset = args.preset or getattr(model, "preset", None) or "epsilon-plus"
    params = {}
    bounds = getattr(model, "input_range", None)  # ZBox bounds, used by the presets that have that rule
    if bounds is not None:
        params = {"low": float(bounds[0]), "high": float(bounds[1])}
    graph_args = dict(target=target, layers=layers, width=widths, preset=preset, keep=args.keep, **params)
    try:
        if spec.kind == "local":
            graph = attribution_graph(model.module, x, **graph_args)
        else:
            graph = _on_executor(spec, model.module, x, graph_args)
    except (GraphError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except (ExecutorFailed, WorkerLost) as exc:
        print(f"lrp-viewer graph: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    about = {
        "model": {"name": model.name, "card": str(Path(args.model).name)},
        "scan": {"file": scan_path.name, "sha256": _sha256(scan_path), "shape": list(scan.shape)},
    }
    try:
        written = export_graph(graph, out, scan, to_scan, labels=list(model.labels or []) or None, about=about)
    except (GraphError, ExportError, OSError) as exc:
        print(f"lrp-viewer graph: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    _report(graph, written, list(model.labels or []))
    return EXIT_OK


class GraphWork:
    """Builds the graph of each model input on an executor's worker. The graph comes back with its
    heatmaps and input on the CPU and without the worker's model (this process has its own), to be
    drawn and written here."""

    def __init__(self, module: Any, graph_args: dict[str, Any]) -> None:
        self.module, self.graph_args, self.device = module, graph_args, "cpu"

    def on_worker(self, device: str) -> None:
        self.device = device
        self.module.to(device)

    def __call__(self, inputs: list[Any]) -> Any:
        import copy
        from dataclasses import replace

        from viewer.explain.graph import attribution_graph

        for x in inputs:
            graph = attribution_graph(self.module, x.to(self.device), **self.graph_args)
            source = copy.copy(graph.source)  # what expand() and the drawing's background need
            source.module, source.x = None, x.cpu()
            yield replace(graph, source=source, heatmaps={k: v.detach().cpu() for k, v in graph.heatmaps.items()})


def _on_executor(spec: Any, module: Any, x: Any, graph_args: dict[str, Any]) -> Any:
    from viewer.cli.executors import ExecutorError, open_executor

    try:
        with open_executor(spec, notify=lambda text: print(f"note: {text}", file=sys.stderr)) as executor:
            [outcome] = list(executor.map(GraphWork(module, graph_args), [x.cpu()]))
    except ExecutorError as exc:
        raise UsageError(str(exc)) from None
    if not outcome.ok:
        raise outcome.error
    outcome.result.source.module = module  # the graph can grow here, as one built in this process
    return outcome.result


def _numbers(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: give whole numbers separated by commas, e.g. 6,3.") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"{flag} {text!r}: every width must be at least 1.")
    return values


def _sha256(path: Path) -> str | None:
    """Identifies the input file (a folder, e.g. a DICOM series, gets none)."""
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _report(graph: Any, written: dict, labels: list[str]) -> None:
    print(f"target: {graph.target.describe(labels or None)} (value {graph.explained:.4g}); "
          f"layers: {', '.join(graph.layers)}")
    for level in range(1, graph.depth + 1):
        nodes = sorted(graph.level(level), key=lambda n: -abs(n.relevance))
        text = ", ".join(f"{n.channel} ({100 * n.share:+.0f}%)" for n in nodes)
        print(f"  {graph.layers[level - 1]}: {text}")
    print(f"wrote {written['json']}, {written['png']} and {len(written) - 2} node maps")
