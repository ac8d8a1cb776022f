"""UI speed: slice scrolling with the relevance overlay, and start-up to the first overlay.

Run: ``python benchmarks/bench_ui.py [scrolling] [lateness] [graph] [startup]`` (offscreen by default; all
sections when none is named). Prints a table; ratios
are against references measured in the same process:

* scrolling: frames per second when stepping through every axial slice of a
  512 × 512 × 300 scan, each frame painted (``repaint``), scan only (reference) vs.
  scan + overlay (+ mask outline), in one SliceView and in the three-view grid (all
  three repainted, and as Qt schedules it with ``processEvents``);
* start-up: seconds from launching ``lrp-viewer --benchmark-first-overlay`` (demo case,
  demo model) to the first overlay on screen and to the final LRP map, against the
  time to start Python and import the UI without opening anything;
* lateness: how late a 10 ms timer on the GUI thread fires (p50/p99/max) in the real
  main window on the demo, idle (reference) vs. while the user scrolls, hovers and the
  status bar follows, vs. the same while a long occlusion explanation runs on the worker,
  while the attribution graph is built (pane open, G), and with a graph node's map on the views;
* graph: milliseconds to draw the graph pane (layout + items + one paint) for 16, 151
  and 601 nodes, the 16-node graph being the reference, and to restyle after a click.
Targets: ≥ 60 frames/s with the overlay; first overlay under 5 s; p99 lateness under 50 ms.
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
LATENESS_BUDGET_MS = 50.0  # p99 of the GUI timer's lateness; tests/ui/test_responsiveness.py


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


def _lateness(app, seconds: float, action) -> np.ndarray:
    """Lateness (ms) of every tick of a 10 ms precise timer while ``action(step)`` runs every 40 ms."""
    from PySide6 import QtCore

    late: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        late.append(max(0.0, now - last[0] - 0.010))
        last[0] = now

    timer = QtCore.QTimer(interval=10)
    timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
    timer.timeout.connect(tick)
    last[0] = time.perf_counter()
    timer.start()
    end, step, next_action = time.perf_counter() + seconds, 0, 0.0
    while time.perf_counter() < end:
        now = time.perf_counter()
        if action is not None and now >= next_action:
            action(step)
            step += 1
            next_action = now + 0.040
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 5)
    timer.stop()
    return 1000.0 * np.asarray(late)


def bench_lateness(seconds: float = 4.0) -> list[tuple[str, np.ndarray]]:
    """GUI-thread lateness in the real window on the demo (see the module docstring)."""
    from PySide6 import QtCore

    from viewer.session.session import Session
    from viewer.ui.app import make_app
    from viewer.ui.main_window import MainWindow

    app = make_app()
    session = Session()
    window = MainWindow(session)
    window.resize(1400, 900)
    window.show()
    try:
        if not window.open_demo():
            raise SystemExit("the demo did not open")
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            app.processEvents()
            r = session.result(0)
            if r is not None and not r.preview and not session.is_busy(0):
                break
            time.sleep(0.01)
        ax = window.views.views["axial"]
        centre = ax.viewport().rect().center()

        def user(step: int) -> None:  # a wheel-like slice step and a mouse move over the axial view
            session.move_cursor(2, 1 if (step // 8) % 2 == 0 else -1)
            pos = QtCore.QPointF(ax.mapToScene(centre + QtCore.QPoint(step % 20, step % 15)))
            ax.scene().sigMouseMoved.emit(pos)

        rows = [("idle window (reference)", _lateness(app, seconds, None)),
                ("scrolling + hovering", _lateness(app, seconds, user))]
        session.set_panel_method(0, "occlusion", patch=4, stride=2, batch_size=8)
        rows.append(("scrolling + hovering while occlusion runs", _lateness(app, seconds, user)))
        session.cancel_all()
        session.wait_idle(60)
        rows += _graph_lateness(app, window, session, seconds, user)
        return rows
    finally:
        window.shutdown()
        window.close()
        session.close()
        window.deleteLater()
        app.processEvents()


def _wait(app, predicate, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        app.processEvents()
        if predicate():
            return True
        time.sleep(0.01)
    return False


def _graph_lateness(app, window, session, seconds: float, user) -> list[tuple[str, np.ndarray]]:
    """Lateness while the worker builds the attribution graph, then with a node's map shown."""
    session.set_panel_method(0, "lrp")
    _wait(app, lambda: session.result(0) is not None and not session.is_busy(0), 300)
    window.graph.set_open(True)
    _wait(app, session.graph_busy_now, 30)
    late = _lateness(app, seconds, user)
    name = "scrolling + hovering while the graph builds" + ("" if session.graph_busy_now() else " (ended early)")
    rows = [(name, late)]
    if _wait(app, lambda: session.graph() is not None, 600):
        session.select_graph_nodes([session.graph().graph.level(1)[0].id])
        rows.append(("scrolling + hovering, a graph node's map shown", _lateness(app, seconds, user)))
    window.graph.set_open(False)
    return rows


def _synthetic_graph(top: int, fan: int):
    """A two-level graph with ``top`` nodes of ``fan`` children each (numbers from a fixed seed)."""
    from viewer.explain.graph import AttributionGraph, GraphEdge, GraphNode
    from viewer.explain.target import Target
    from viewer.session.graph_requests import GraphRequest, GraphResult, GraphSettings

    rng = np.random.default_rng(0)
    nodes, edges = [GraphNode("output", "output", 0, 0, 10.0, 1.0)], []
    for a in range(top):
        nodes.append(GraphNode(f"top:{a}", "top", a, 1, float(rng.normal()), float(rng.uniform(-0.2, 0.2))))
        edges.append(GraphEdge("output", f"top:{a}", nodes[-1].relevance, 0.1))
        for b in range(fan):
            c = a * fan + b
            nodes.append(GraphNode(f"low:{c}", "low", c, 2, float(rng.normal()), float(rng.uniform(-0.1, 0.1))))
            edges.append(GraphEdge(f"top:{a}", f"low:{c}", float(rng.normal()), float(rng.uniform(-1, 1))))
    graph = AttributionGraph(tuple(nodes), tuple(edges), ("top", "low"), (top, fan), Target.cls(0), 10.0,
                             "epsilon-plus", {}, {"top": 1, "low": 1})
    return GraphResult(GraphRequest.make("s", "m", "epsilon-plus", {}, None, GraphSettings()), graph, {}, {})


def bench_graph_drawing(repeats: int = 5) -> list[tuple[str, float]]:
    """Milliseconds (best of ``repeats``) to draw and to restyle the graph pane."""
    from viewer.session.session import Session
    from viewer.ui.app import make_app
    from viewer.ui.graph_pane import GraphPane

    app = make_app()
    session = Session()
    pane = GraphPane(session)
    pane.resize(1000, 380)
    pane.show()
    rows = []
    try:
        for top, fan in ((5, 2), (15, 9), (40, 14)):
            result = _synthetic_graph(top, fan)
            best = best_style = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                pane._draw(result)
                pane.view.viewport().repaint()
                best = min(best, time.perf_counter() - t0)
                session._graph_selected = ("top:0",)
                t0 = time.perf_counter()
                pane._restyle()
                pane.view.viewport().repaint()
                best_style = min(best_style, time.perf_counter() - t0)
                session._graph_selected = ()
            n = len(result.graph.nodes)
            rows.append((f"draw {n} nodes, {len(result.graph.edges)} edges", 1000 * best))
            rows.append((f"restyle {n} nodes after a click", 1000 * best_style))
            app.processEvents()
    finally:
        pane.close()
        pane.deleteLater()
        session.close()
        app.processEvents()
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every section, or only those named: ``scrolling``, ``lateness``, ``graph``, ``startup``."""
    wanted = set(sys.argv[1:] if argv is None else argv) or {"scrolling", "lateness", "graph", "startup"}
    if "scrolling" in wanted:
        print(f"Scrolling {SHAPE[0]}×{SHAPE[1]}×{SHAPE[2]} (offscreen, every frame painted)")
        rows = bench_scrolling()
        ref = rows[0][1]
        print(f"{'case':48s} {'frames/s':>9s} {'ms/frame':>9s} {'vs ref':>7s}")
        for name, fps in rows:
            print(f"{name:48s} {fps:9.1f} {1000 / fps:9.2f} {fps / ref:7.2f}")
        print()
    if "lateness" in wanted:
        print("GUI-thread lateness of a 10 ms timer, real window on the demo")
        lat = bench_lateness()
        ref99 = float(np.percentile(lat[0][1], 99))
        print(f"{'case':48s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'ticks':>6s} {'p99-ref':>8s} "
              f"{'/budget':>8s}")
        for name, ms in lat:
            p50, p99 = np.percentile(ms, [50, 99])
            print(f"{name:48s} {p50:8.1f} {p99:8.1f} {ms.max():8.1f} {len(ms):6d} {p99 - ref99:8.1f} "
                  f"{p99 / LATENESS_BUDGET_MS:8.2f}")
        print()
    if "graph" in wanted:
        print("Graph pane drawing (offscreen; reference: the 16-node graph)")
        rows = bench_graph_drawing()
        ref = rows[0][1]
        print(f"{'case':48s} {'ms':>9s} {'vs ref':>7s}")
        for name, ms in rows:
            print(f"{name:48s} {ms:9.2f} {ms / ref:7.2f}")
        print()
    if "startup" in wanted:
        print("Start-up on the demo")
        rows = bench_startup()
        ref = rows[0][1]
        print(f"{'case':48s} {'seconds':>9s} {'vs ref':>7s}")
        for name, sec in rows:
            print(f"{name:48s} {sec:9.2f} {sec / ref:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
