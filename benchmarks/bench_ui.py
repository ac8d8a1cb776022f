"""UI speed: slice scrolling with the relevance overlay, and start-up to the first overlay.

Run: ``python benchmarks/bench_ui.py`` (offscreen by default). Prints a table; ratios
are against references measured in the same process:

* scrolling: frames per second when stepping through every axial slice of a
  512 × 512 × 300 scan, each frame painted (``repaint``), scan only (reference) vs.
  scan + overlay (+ mask outline), in one SliceView and in the three-view grid (all
  three repainted, and as Qt schedules it with ``processEvents``);
* start-up: seconds from launching ``lrp-viewer --benchmark-first-overlay`` (demo case,
  demo model) to the first overlay on screen and to the final LRP map, against the
  time to start Python and import the UI without opening anything.
Targets: ≥ 60 frames/s with the overlay; first overlay under 5 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SHAPE = (512, 512, 300)


def _scroll(view, frames: int, paint) -> float:
    """Frames per second stepping one slice per frame."""
    n = view.slice_count
    start = time.perf_counter()
    for f in range(frames):
        view.set_cursor((256, 256, f % n))
        paint()
    return frames / (time.perf_counter() - start)


def bench_scrolling(frames: int = 300) -> list[tuple[str, float]]:
    from viewer.ui.app import make_app
    from viewer.ui.colorbar import overlay_lut
    from viewer.ui.views_grid import ViewsGrid

    app = make_app()
    rng = np.random.default_rng(0)
    scan = rng.normal(size=SHAPE).astype(np.float32)
    rel = (rng.normal(size=SHAPE) * 1e-3).astype(np.float32)
    mask = np.zeros(SHAPE, bool)
    mask[200:300, 180:320, 100:200] = True

    grid = ViewsGrid()
    grid.resize(1200, 1000)
    grid.show()
    grid.set_scan(scan, (0.7, 0.7, 1.0), planar=False, radiological=True)
    grid.set_levels(-2.0, 2.0)
    view = grid.views["axial"]

    def paint_one() -> None:
        view.viewport().repaint()

    def paint_grid() -> None:
        for v in grid.views.values():
            v.viewport().repaint()

    app.processEvents()
    _scroll(view, 20, paint_one)  # warm-up
    rows = [("axial view, scan only (reference)", _scroll(view, frames, paint_one))]
    grid.set_overlay_style(overlay_lut("bwr", 0.6, 0.0), 3e-3, True)
    grid.set_overlay(rel)
    rows.append(("axial view, scan + overlay", _scroll(view, frames, paint_one)))
    grid.set_mask(mask)
    rows.append(("axial view, scan + overlay + mask outline", _scroll(view, frames, paint_one)))
    rows.append(("3-view grid, all repainted, overlay + mask", _scroll(view, frames, paint_grid)))
    rows.append(("3-view grid, Qt's own updates (processEvents)", _scroll(view, frames, app.processEvents)))
    grid.close()
    grid.deleteLater()
    app.processEvents()
    return rows


def bench_startup() -> list[tuple[str, float]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import viewer.ui.main_window, viewer.session.session"],
                   env=env, check=True, cwd=ROOT)
    imports = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "viewer.cli.main", "--benchmark-first-overlay"], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    first = float(values.get("first_overlay_s", "nan"))
    final = float(values.get("final_overlay_s", "nan"))
    return [("python + UI imports only (reference)", imports),
            ("start → first overlay (in-process clock)", first),
            ("start → final LRP overlay (in-process clock)", final),
            ("launch → exit, whole process (wall)", wall)]


def main() -> int:
    print(f"Scrolling {SHAPE[0]}×{SHAPE[1]}×{SHAPE[2]} (offscreen, every frame painted)")
    rows = bench_scrolling()
    ref = rows[0][1]
    print(f"{'case':48s} {'frames/s':>9s} {'ms/frame':>9s} {'vs ref':>7s}")
    for name, fps in rows:
        print(f"{name:48s} {fps:9.1f} {1000 / fps:9.2f} {fps / ref:7.2f}")
    print()
    print("Start-up on the demo")
    rows = bench_startup()
    ref = rows[0][1]
    print(f"{'case':48s} {'seconds':>9s} {'vs ref':>7s}")
    for name, sec in rows:
        print(f"{name:48s} {sec:9.2f} {sec / ref:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
