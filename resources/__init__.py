"""Bundled assets (demo cases, demo models, colormaps, icons), importable as ``viewer.resources``."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEMO = ROOT / "demo"
