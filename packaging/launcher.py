"""Entry script of the frozen build (PyInstaller analyses the installed ``viewer`` package from here)."""

from viewer.cli.main import main

raise SystemExit(main())
