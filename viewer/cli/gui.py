"""``lrp-viewer [SCAN] [--model ...] [--mask ...]``: start the desktop viewer.

With no arguments the bundled 3D demo case and demo model open and the LRP overlay is
shown, so a first-time user sees what the tool does without finding data first.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

_START = time.perf_counter()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lrp-viewer",
        description="Explain medical-imaging networks with Layer-wise Relevance Propagation, slice by slice. "
                    "Without arguments the demo case and demo model open.",
    )
    p.add_argument("scan", nargs="?", help="scan to open: NIfTI file, DICOM file or folder, PNG/JPEG/TIFF")
    p.add_argument("--model", help="model card (.toml), MONAI bundle or TorchScript file")
    p.add_argument("--mask", help="ground-truth / annotation mask on the scan's grid (NIfTI)")
    p.add_argument("--trust", action="store_true",
                   help="allow the model file to execute code (pickled modules); only for files you trust")
    p.add_argument("--session", help="session file to reopen (scan, model, panels, view)")
    p.add_argument("--benchmark-first-overlay", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--screenshot", help=argparse.SUPPRESS)
    p.add_argument("--screenshot-comparison", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))

    from PySide6 import QtCore

    from viewer.session.session import Session
    from viewer.ui.app import make_app
    from viewer.ui.main_window import MainWindow
    from viewer.ui.scripted import FirstOverlayTimer, Screenshotter

    app = make_app()
    session = Session()
    window = MainWindow(session)
    window.show()

    def open_inputs() -> None:
        if args.session:
            window.files.open_session(args.session)
        elif args.scan:
            if window.files.open_scan(args.scan) and args.model:
                window.files.open_model(args.model, trust=args.trust)
            if args.mask and session.scan is not None:
                window.files.open_mask(args.mask)
        else:
            if args.model or args.mask:
                print("lrp-viewer: --model and --mask need a SCAN; opening the demo instead.", file=sys.stderr)
            window.open_demo()

    helpers = []
    if args.benchmark_first_overlay:
        helpers.append(FirstOverlayTimer(window, _START))
    if args.screenshot or args.screenshot_comparison:
        helpers.append(Screenshotter(window, args.screenshot, args.screenshot_comparison))
    QtCore.QTimer.singleShot(0, open_inputs)
    try:
        rc = app.exec()
    finally:
        window.shutdown()
        session.close()
    return int(rc or 0) if not helpers else max((h.rc for h in helpers), default=0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
