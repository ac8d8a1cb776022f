"""Run the desktop viewer for parsed command-line arguments (the GUI half of ``lrp-viewer``)."""

from __future__ import annotations

import argparse
import sys

from PySide6 import QtCore

from viewer.session.session import Session
from viewer.ui.app import make_app
from viewer.ui.dialogs import show_error
from viewer.ui.main_window import MainWindow
from viewer.ui.pending_files import offer_files
from viewer.ui.scripted import FirstOverlayTimer, Screenshotter


def run(args: argparse.Namespace, start_time: float) -> int:
    """Open what the arguments name (the demo when nothing) and run the event loop."""
    app = make_app()
    session = Session()
    window = MainWindow(session)
    window.show()

    def open_inputs() -> None:
        if args.session:
            window.files.open_session(args.session, trust=args.trust)
        elif args.scan:
            if window.files.open_scan(args.scan) and args.model:
                window.files.open_model(args.model, trust=args.trust)
            if args.mask and session.scan is not None:
                window.files.open_mask(args.mask)
        else:
            if args.model or args.mask:
                note = "--model and --mask need a SCAN; opening the demo instead."
                print(f"lrp-viewer: {note}", file=sys.stderr)
                show_error(window, "No scan was given", note)  # started from a desktop, stderr is unseen
            window.open_demo()
        pending = getattr(getattr(args, "files", None), "pending", ())
        if pending:  # several files from the desktop (%F): the first scan opened, the others wait here
            window.pending_files = offer_files(window, pending)

    helpers = []
    if args.benchmark_first_overlay:
        helpers.append(FirstOverlayTimer(window, start_time))
    if args.screenshot or args.screenshot_comparison:
        helpers.append(Screenshotter(window, args.screenshot, args.screenshot_comparison))
    QtCore.QTimer.singleShot(0, open_inputs)
    try:
        rc = app.exec()
    finally:
        window.shutdown()
        session.close()
    return int(rc or 0) if not helpers else max((h.rc for h in helpers), default=0)
