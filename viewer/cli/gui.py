"""``lrp-viewer [SCAN ...] [--model ...] [--mask ...]``: start the desktop viewer.

With no arguments the bundled 3D demo case and demo model open and the LRP overlay is
shown, so a first-time user sees what the tool does without finding data first.

A desktop environment starts the program as ``lrp-viewer %F``: every file the user
selected, in any order, maybe with a model among them. :func:`launch_files` decides what
opens at once (the first scan, the first model) and what is only offered (the rest),
so selecting twenty scans opens one window with one scan, not twenty loads in a row.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

_START = time.perf_counter()

MODEL_SUFFIXES = (".toml", ".safetensors", ".pt", ".pth", ".ts")
SESSION_SUFFIXES = (".lrpv",)


@dataclass(frozen=True)
class LaunchFiles:
    """What the command line opens: at most one scan, model, mask or session, and the files offered."""

    scan: str | None = None
    model: str | None = None
    mask: str | None = None
    session: str | None = None
    pending: tuple[str, ...] = ()


def launch_files(paths: Sequence[str], model: str | None = None, mask: str | None = None,
                 session: str | None = None) -> LaunchFiles:
    """Split the positional paths: the first scan and first model open; the rest are offered.

    A lone session file (.lrpv) given as a path reopens that session. Folders count as
    scans (a DICOM series; the app asks which series when the folder holds several).
    """
    scans = [p for p in paths if not _is_model(p) and not _is_session(p)]
    models = [p for p in paths if _is_model(p)]
    sessions = [p for p in paths if _is_session(p)]
    if session is None and sessions and not scans:
        session, sessions = sessions[0], sessions[1:]
    if model is None and models and (scans or session is None):
        model, models = models[0], models[1:]
    first = scans[0] if scans and session is None else None
    rest = [p for p in paths if p != first and p != model and p != session]
    return LaunchFiles(scan=first, model=model, mask=mask, session=session, pending=tuple(rest))


def _is_model(path: str) -> bool:
    return path.lower().endswith(MODEL_SUFFIXES) and not Path(path).is_dir()


def _is_session(path: str) -> bool:
    return path.lower().endswith(SESSION_SUFFIXES)


def build_parser() -> argparse.ArgumentParser:
    from viewer.cli.main import commands_help, version_text

    p = argparse.ArgumentParser(
        prog="lrp-viewer",
        description="Explain medical-imaging networks with Layer-wise Relevance Propagation, slice by slice.\n"
                    "Without arguments the demo case and demo model open.",
        epilog=commands_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scans", nargs="*", metavar="SCAN",
                   help="scan to open: NIfTI file, DICOM file or folder, PNG/JPEG/TIFF; with several, the first "
                        "opens and the others are listed to open next (a model file among them is loaded)")
    p.add_argument("--model", help="model card (.toml), MONAI bundle or TorchScript file")
    p.add_argument("--mask", help="ground-truth / annotation mask on the scan's grid (NIfTI)")
    p.add_argument("--trust", action="store_true",
                   help="allow the model file to execute code (pickled modules); only for files you trust")
    p.add_argument("--session", help="session file to reopen (scan, model, panels, view)")
    p.add_argument("--version", action="version", version=version_text())
    p.add_argument("--benchmark-first-overlay", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--screenshot", help=argparse.SUPPRESS)
    p.add_argument("--screenshot-comparison", help=argparse.SUPPRESS)
    return p


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parsed arguments plus ``files`` (:class:`LaunchFiles`) and ``scan`` (the scan that opens first)."""
    args = build_parser().parse_args(list(argv))
    args.files = launch_files(args.scans, model=args.model, mask=args.mask, session=args.session)
    args.scan, args.model, args.session = args.files.scan, args.files.model, args.files.session
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    from viewer.ui.launch import run  # Qt is imported only once the arguments are valid

    return run(args, _START)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
