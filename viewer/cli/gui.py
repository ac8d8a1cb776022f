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
    from viewer.ui.launch import run  # Qt is imported only once the arguments are valid

    return run(args, _START)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
