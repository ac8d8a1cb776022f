"""What the File menu, drag-and-drop and the recent-files list do.

Opening is synchronous in the session (reading a file is quick compared with explaining
it); failures come back through the session's ``error`` signal and are shown in a dialog
while everything already open stays as it was. Exports call the io layer's writers with
the session's current data; they never overwrite without the file dialog's confirmation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6 import QtWidgets

from viewer.ui.dialogs import SeriesDialog, current_series_text, show_error
from viewer.ui.trust_dialog import ask_trust

SCAN_FILTER = ("Scans (*.nii *.nii.gz *.hdr *.img *.mgh *.mgz *.dcm *.DCM *.ima *.IMA *.png *.jpg *.jpeg *.tif *.tiff "
               "*.bmp);;DICOM files with any name, e.g. IM0001 (*);;All files (*)")
MAP_FILTER = "Relevance maps (*.nii *.nii.gz *.hdr *.img *.mgh *.mgz);;All files (*)"
MODEL_FILTER = "Models (*.toml *.safetensors *.pt *.pth *.ts *.zip *.json);;All files (*)"
SESSION_FILTER = "lrp-viewer sessions (*.json *.lrpv);;All files (*)"
MODEL_SUFFIXES = (".toml", ".safetensors", ".pt", ".pth", ".ts", ".zip")
SESSION_SUFFIXES = (".lrpv",)
MASK_WORDS = ("mask", "seg", "label", "annot")


class FileActions:
    """File operations of one main window (owner of dialogs' parent and the session)."""

    def __init__(self, window: QtWidgets.QMainWindow, session: Any) -> None:
        self.window = window
        self.session = session
        self.ask_series = True  # tests switch the series dialog off
        session.trust_prompt = lambda path, reason: ask_trust(self.window, path, reason)

    # -- opening -----------------------------------------------------------------------
    def open_scan(self, path: str | None = None, series: str | None = None) -> bool:
        if path is None:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self.window, "Open scan", "", SCAN_FILTER)
            if not path:
                return False
        ok = bool(self.session.open_scan(path, series=series))
        if ok and series is None:
            self._offer_series(path)
        return ok

    def open_dicom_folder(self, path: str | None = None) -> bool:
        if path is None:
            path = QtWidgets.QFileDialog.getExistingDirectory(self.window, "Open DICOM folder")
            if not path:
                return False
        return self.open_scan(path)

    def _offer_series(self, path: str) -> None:
        scan = self.session.scan
        others = (scan.meta or {}).get("other_series") if scan is not None else None
        if not others or not self.ask_series:
            return
        current = current_series_text(scan.meta, scan.modality) or Path(path).name
        dialog = SeriesDialog(str(current), others, self.window)
        if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            uid = dialog.chosen_uid()
            if uid:
                self.session.open_scan(path, series=uid)

    def open_model(self, path: str | None = None, trust: bool = False) -> bool:
        if path is None:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self.window, "Open model", "", MODEL_FILTER)
            if not path:
                return False
        return bool(self.session.open_model(path, trust=trust))

    def open_mask(self, path: str | None = None) -> bool:
        if path is None:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self.window, "Open mask", "", SCAN_FILTER)
            if not path:
                return False
        return bool(self.session.open_mask(path))

    def open_relevance_map(self, path: str | None = None) -> bool:
        """A signed map on the scan's grid (e.g. exported earlier) as an extra overlay layer."""
        if path is None:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self.window, "Open relevance map as a layer", "",
                                                            MAP_FILTER)
            if not path:
                return False
        return bool(self.session.open_relevance_map(path))

    def open_session(self, path: str | None = None, trust: bool = False) -> bool:
        if path is None:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(self.window, "Open session", "", SESSION_FILTER)
            if not path:
                return False
        problems = self.session.open_session(path, trust=trust)
        if problems:
            show_error(self.window, "Session opened with problems", "\n".join(problems))
        return not problems

    def save_session(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self.window, "Save session",
                                                        self.default_name("session", ".lrpv"), SESSION_FILTER)
        if path:
            self._guard("Could not save the session", lambda: self.session.save_session(path, overwrite=True))

    def open_any(self, path: str) -> bool:
        """Drag-and-drop / recent files: guess what a path is from its name."""
        p = Path(path)
        name = p.name.lower()
        if p.is_dir():
            return self.open_scan(str(p))
        if name.endswith(MODEL_SUFFIXES):
            return self.open_model(str(p))
        if name.endswith(SESSION_SUFFIXES):
            return self.open_session(str(p))
        if self.session.scan is not None and any(w in name for w in MASK_WORDS):
            return self.open_mask(str(p))
        return self.open_scan(str(p))

    def open_recent(self, path: str, kind: str) -> bool:
        handlers = {"scan": self.open_scan, "model": self.open_model, "mask": self.open_mask,
                    "session": self.open_session}
        return handlers.get(kind, self.open_any)(path)

    # -- exports ---------------------------------------------------------------------------
    def _guard(self, title: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - any failure is reported, the app carries on
            show_error(self.window, title, str(exc))
            return None

    def default_name(self, what: str, suffix: str) -> str:
        """``<case>_<method>_<what><suffix>``: export names that say which case they belong to."""
        s = self.session
        parts = [s.case_name or "scan"]
        if what not in ("metrics", "session") and s.panels:
            panel = s.panels[0]
            parts.append(panel.method + (f"-{panel.preset}" if panel.preset else ""))
        parts.append(what)
        name = "_".join(parts)
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) + suffix

    def _main_result(self) -> Any:
        res = self.session.result(0)
        if res is None or self.session.scan is None:
            show_error(self.window, "Nothing to export", "Open a scan and a model and wait for the explanation.")
        return res

    def export_nifti(self, path: str | None = None) -> None:
        res = self._main_result()
        if res is None:
            return
        if path is None:
            path, _ = QtWidgets.QFileDialog.getSaveFileName(self.window, "Export relevance",
                                                            self.default_name("relevance", ".nii.gz"),
                                                            "NIfTI (*.nii.gz *.nii)")
            if not path:
                return
        from viewer.io.export_nifti import export_relevance

        model = self.session.model
        self._guard("Could not export the relevance map", lambda: export_relevance(
            res.on_scan, self.session.scan, res.relevance, getattr(model, "name", "model"), path, overwrite=True,
            labels=getattr(model, "labels", None)))

    def export_figure(self, path: str | None = None) -> None:
        res = self._main_result()
        if res is None:
            return
        if path is None:
            path, _ = QtWidgets.QFileDialog.getSaveFileName(self.window, "Export figure",
                                                            self.default_name("figure", ".png"), "PNG (*.png)")
            if not path:
                return
        from viewer.io.figure import FigureOptions, describe, save_figure

        s = self.session
        ov = s.panels[0].overlay
        model = s.model
        pred = s.prediction
        options = FigureOptions(
            radiological=s.view.radiological, window=(s.window.centre, s.window.width) if s.window else None,
            colormap=ov.colormap, limit=s.panel_limit(0), opacity=ov.opacity, threshold=ov.threshold,
            sign=ov.sign, show_overlay=ov.visible, mask_outline=s.view.mask_outline,
            cursor=s.cursor.ijk if s.cursor else None,
            caption=describe(res.relevance, getattr(model, "labels", None),
                             None if pred is None else pred.probabilities))
        self._guard("Could not export the figure", lambda: save_figure(
            path, s.scan, res.on_scan, options, mask=s.mask, overwrite=True))

    def export_metrics(self, path: str | None = None) -> None:
        s = self.session
        if path is None:
            path, _ = QtWidgets.QFileDialog.getSaveFileName(self.window, "Export metrics",
                                                            self.default_name("metrics", ".csv"),
                                                            "CSV (*.csv);;JSON (*.json)")
            if not path:
                return
        rows = []
        metrics = getattr(s, "metrics", None)
        for i, panel in enumerate(s.panels):
            res = s.result(i)
            row: dict[str, Any] = {"panel": i, "method": panel.method, "preset": dict(panel.params).get("preset")}
            if getattr(s, "compare_model", None) is not None:  # two models: say which one each row explains
                row.update(model=panel.model, model_name=s.model_label(panel.model))
            if res is not None:
                row.update({k: v for k, v in res.relevance.summary().items() if k not in ("method", "preset")})
            per = metrics.per_panel[i] if metrics is not None and i < len(metrics.per_panel) else None
            if per is not None:
                row.update({k: v for k, v in vars(per).items() if k != "method"} if not isinstance(per, dict)
                           else per)
            curve = s.perturbation(i)
            if curve is not None:
                row.update(aopc_morf=getattr(curve, "aopc_morf", None), aopc_random=getattr(curve, "aopc_random", None))
            rows.append(row)
        from viewer.io.report import write_metrics

        self._guard("Could not export the metrics", lambda: write_metrics(rows, path, overwrite=True))
