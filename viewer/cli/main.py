"""``lrp-viewer``: the GUI by default, ``lrp-viewer batch ...`` for cohorts."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "batch":
        from viewer.cli.batch import main as batch_main

        return batch_main(argv[1:])
    from viewer.cli.gui import main as gui_main

    return gui_main(argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
