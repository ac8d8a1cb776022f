"""``lrp-viewer``: the GUI by default, ``lrp-viewer <command> ...`` for the headless tools.

:data:`COMMANDS` is the one list of subcommands: dispatch and ``lrp-viewer --help`` both
read it, so a new command is one row (name, module with a ``main(argv) -> int``, one
line of help).
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple


class Command(NamedTuple):
    name: str
    module: str  # defines main(argv: list[str]) -> int
    summary: str


COMMANDS: tuple[Command, ...] = (
    Command("batch", "viewer.cli.batch", "explain a cohort of scans headless: relevance maps + summary.csv"),
    Command("notices", "viewer.cli.notices", "licences of lrp-viewer and of the software it includes"),
    Command("graph", "viewer.cli.graph", "attribution graph of one scan: graph.json, graph.png, node heatmaps"),
    Command("revise", "viewer.cli.revise", "retrain, freeze or prune the channels attribution singles out"),
)


def commands_help() -> str:
    """The subcommand list as ``--help`` shows it (below the GUI's options)."""
    width = max(len(c.name) for c in COMMANDS) + 2
    rows = "\n".join(f"  {c.name:<{width}}{c.summary}" for c in COMMANDS)
    return f"commands (lrp-viewer COMMAND --help for each):\n{rows}"


def version_text() -> str:
    from viewer import __version__

    return f"lrp-viewer {__version__}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for command in COMMANDS:
        if argv and argv[0] == command.name:
            return int(importlib.import_module(command.module).main(argv[1:]) or 0)
    from viewer.cli.gui import main as gui_main

    return gui_main(argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
