"""The menu bar and every keyboard shortcut, declared once.

Help → Shortcuts reads :data:`SHORTCUT_HELP`, which lists the menu shortcuts plus the
gestures handled by the slice views themselves, so the dialog cannot drift from the code.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6 import QtGui, QtWidgets

# Gestures implemented by SliceView (not menu actions)
VIEW_GESTURES: tuple[tuple[str, str], ...] = (
    ("Left click / drag", "Move the crosshair (all views follow)"),
    ("Mouse wheel", "Next / previous slice"),
    ("Ctrl + wheel", "Zoom"),
    ("Middle drag", "Pan"),
    ("Right drag", "Window: horizontal = width, vertical = level"),
    ("Click on the profile plot", "Go to that slice"),
    ("Up / Right arrow", "Next slice (focused view)"),
    ("Down / Left arrow", "Previous slice (focused view)"),
    ("Page Up / Page Down", "Ten slices forward / back"),
)


def _action(window: QtWidgets.QMainWindow, menu: QtWidgets.QMenu, text: str, slot: Callable[[], Any],
            shortcut: str | QtGui.QKeySequence.StandardKey | None = None, checkable: bool = False,
            registry: list | None = None) -> QtGui.QAction:
    act = QtGui.QAction(text, window)
    if shortcut is not None:
        act.setShortcut(QtGui.QKeySequence(shortcut))
    act.setCheckable(checkable)
    if checkable:
        act.toggled.connect(lambda _checked: slot())
    else:
        act.triggered.connect(lambda _checked=False: slot())
    menu.addAction(act)
    window.addAction(act)  # shortcuts work in full screen and with the menu bar hidden
    if registry is not None and shortcut is not None:
        key = act.shortcut().toString(QtGui.QKeySequence.SequenceFormat.NativeText)
        registry.append((key, text.replace("&", "").replace("…", "")))
    return act


def build_menus(w: Any) -> dict[str, QtGui.QAction]:
    """Create the window's menus; ``w`` is the MainWindow (its ``files`` are FileActions)."""
    bar = w.menuBar()
    help_rows: list[tuple[str, str]] = []
    acts: dict[str, QtGui.QAction] = {}
    f = w.files

    m = bar.addMenu("&File")
    acts["open_scan"] = _action(w, m, "Open &scan…", f.open_scan, QtGui.QKeySequence.StandardKey.Open, registry=help_rows)
    acts["open_dicom"] = _action(w, m, "Open &DICOM folder…", f.open_dicom_folder, "Ctrl+Shift+O", registry=help_rows)
    acts["open_model"] = _action(w, m, "Open &model…", f.open_model, "Ctrl+M", registry=help_rows)
    acts["open_mask"] = _action(w, m, "Open m&ask…", f.open_mask, "Ctrl+K", registry=help_rows)
    acts["open_map"] = _action(w, m, "Open relevance map as a &layer…", f.open_relevance_map)
    acts["open_demo"] = _action(w, m, "Open d&emo case", w.open_demo)
    acts["scan_info"] = _action(w, m, "Scan &info…", w.show_scan_info, "Ctrl+I", registry=help_rows)
    m.addSeparator()
    acts["open_session"] = _action(w, m, "Open session…", f.open_session)
    acts["save_session"] = _action(w, m, "Save session…", f.save_session, QtGui.QKeySequence.StandardKey.Save,
                                   registry=help_rows)
    export = m.addMenu("&Export")
    acts["export_nifti"] = _action(w, export, "Relevance map (NIfTI)…", f.export_nifti, "Ctrl+E", registry=help_rows)
    acts["export_figure"] = _action(w, export, "Figure (PNG)…", f.export_figure, "Ctrl+Shift+E", registry=help_rows)
    acts["export_metrics"] = _action(w, export, "Metrics (CSV / JSON)…", f.export_metrics)
    w.recent_menu = m.addMenu("&Recent files")
    m.addSeparator()
    acts["quit"] = _action(w, m, "&Quit", w.close, QtGui.QKeySequence.StandardKey.Quit, registry=help_rows)

    m = bar.addMenu("&View")
    acts["overlay"] = _action(w, m, "Show &overlay", w.toggle_overlay, "O", registry=help_rows)
    acts["comparison"] = _action(w, m, "&Comparison pane", w.toggle_comparison, "C", registry=help_rows)
    acts["reset_view"] = _action(w, m, "&Reset zoom and pan", w.reset_views, "Home", registry=help_rows)
    acts["reset_window"] = _action(w, m, "Reset &window", lambda: w.session.reset_window(), "W", registry=help_rows)
    acts["window_dialog"] = _action(w, m, "Window / &level (histogram)…", w.show_window_dialog, "Ctrl+L",
                                    registry=help_rows)
    acts["link_zoom"] = _action(w, m, "Lin&k zoom across views", w.toggle_link_zoom, "Z", registry=help_rows)
    acts["radiological"] = _action(w, m, "Radiological convention (R on left)", w.toggle_radiological, "Ctrl+R",
                                   registry=help_rows)
    layout = m.addMenu("&Layout")
    for key, (name, text) in zip(("1", "2", "3"), (("grid", "2 × 2 grid"), ("one-large", "One large, two small"),
                                                   ("row", "Row"))):
        acts[f"layout_{name}"] = _action(w, layout, text, lambda n=name: w.session.set_view(layout=n),
                                         f"Ctrl+{key}", registry=help_rows)
    acts["fullscreen"] = _action(w, m, "&Full screen", w.toggle_fullscreen, "F11", registry=help_rows)

    m = bar.addMenu("&Explain")
    acts["cancel"] = _action(w, m, "&Cancel running explanation", lambda: w.session.cancel_all(), "Esc",
                             registry=help_rows)
    acts["refresh"] = _action(w, m, "&Explain again", lambda: w.session.refresh(), "F5", registry=help_rows)
    acts["perturbation"] = _action(w, m, "&Perturbation curves", w.request_perturbation, "Ctrl+P",
                                   registry=help_rows)

    m = bar.addMenu("&Help")
    acts["shortcuts"] = _action(w, m, "&Shortcuts…", w.show_shortcuts, "F1", registry=help_rows)
    acts["about"] = _action(w, m, "&About lrp-viewer", w.show_about)
    w.shortcut_rows = help_rows + list(VIEW_GESTURES)
    return acts


def rebuild_recent(w: Any) -> None:
    """Refill File → Recent files from the session's list (newest first)."""
    menu: QtWidgets.QMenu = w.recent_menu
    menu.clear()
    entries = list(getattr(w.session.recent, "entries", []) or [])
    if not entries:
        a = menu.addAction("(none)")
        a.setEnabled(False)
        return
    for e in entries:
        a = menu.addAction(f"{e.path}  [{e.kind}]")
        a.triggered.connect(lambda _c=False, p=e.path, k=e.kind: w.files.open_recent(p, k))
    menu.addSeparator()
    menu.addAction("Clear list").triggered.connect(lambda _c=False: w.session.recent.clear())
