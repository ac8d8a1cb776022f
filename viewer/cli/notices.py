"""``lrp-viewer notices``: licences of lrp-viewer and of everything it runs with.

In the installed build this prints the THIRD_PARTY_NOTICES file made at build time
(the build carries no package metadata for most dependencies); in a pip install it
is generated from the installed packages. ``--check`` exits 1 if any runtime
dependency is GPL/AGPL-only (the build script runs it before packaging).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lrp-viewer notices", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--output", help="write the notices to this file instead of printing them")
    p.add_argument("--build", default="", help="what build the notices describe (written in the heading)")
    p.add_argument("--check", action="store_true", help="fail if a runtime dependency is GPL/AGPL-only")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.check or args.output:
        from viewer.notices import notices_text, runtime_packages

        packages = runtime_packages()
        bad = [f"{q.name} {q.version} ({q.licence})" for q in packages if q.strong_copyleft]
        if bad:
            print("lrp-viewer notices: GPL/AGPL runtime dependencies would make the build GPL; remove them: "
                  + ", ".join(bad), file=sys.stderr)
            return 1
        text = notices_text(packages, build=args.build)
    else:
        from viewer.notices import current_notices

        text = current_notices()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output} ({text.count(chr(10))} lines)")
    else:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # `lrp-viewer notices | head`: the reader has what it wanted
            sys.stdout = None  # type: ignore[assignment] - nothing left to flush at exit
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
