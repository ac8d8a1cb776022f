"""Opening scans, models and masks. Mixed into :class:`viewer.session.session.Session`.

Opening is plain file I/O and runs on the caller's thread; the forward pass and the
explanations that follow go to the worker. A file that fails to open is reported on
the ``error`` signal and leaves what was open before in place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from viewer.session.cursor import Cursor
from viewer.session.display import DEFAULT_PRESET, WindowLevel
from viewer.session.panels import with_method


class MaskShapeError(ValueError):
    """A mask that does not lie on the scan's voxel grid."""


class OpeningMixin:
    def open_scan(self, path: str | os.PathLike, series: str | None = None) -> bool:
        """Open a scan (NIfTI, DICOM file/folder, PNG, ...); True on success."""
        from viewer.io import load_scan
        from viewer.io.errors import ScanLoadError

        try:
            scan = load_scan(path, series=series) if series is not None else load_scan(path)
        except ScanLoadError as exc:
            self._report("Cannot open scan", str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - an unexpected reader failure must not close the app
            self._report("Cannot open scan", f"{Path(path).name}: {type(exc).__name__}: {exc}")
            return False
        self.set_scan(scan, path=str(Path(path).absolute()), series_uid=series)
        self.recent.add(path, "scan")
        return True

    def set_scan(self, scan: Any, path: str | None = None, series_uid: str | None = None) -> None:
        """Use an in-memory :class:`~viewer.io.Scan` (tests, the batch command, demo cases)."""
        with self._lock:
            self.scan, self.scan_path, self.series_uid = scan, path, series_uid
            self._scan_token = self._new_token("scan")
        self.cursor = Cursor.centre(scan.shape)
        self.window, self.window_preset = WindowLevel.for_scan(scan), DEFAULT_PRESET
        if self.mask is not None:  # a mask annotates one scan; never carry it over to another
            self._set_mask(None, None)
        self._clear_maps()
        self._rebuild_context()
        self.scan_changed.emit()
        self.cursor_changed.emit(self.cursor.ijk)
        self.window_changed.emit(self.window)
        self.refresh()

    # Asked when a model would run code from its file: ``(model path, what would run) -> trust?``.
    # None (headless use, the batch) refuses; the app sets a confirmation dialog.
    trust_prompt: Callable[[str, str], bool] | None = None

    @property
    def case_name(self) -> str:
        """The open scan's name as the window title and export file names show it: the file
        name without its image suffix, or the DICOM folder's name ("" without a scan)."""
        if self.scan is None:
            return ""
        name = Path(self.scan_path or getattr(self.scan, "path", None) or "scan").name
        for suffix in (".nii.gz", ".nii", ".mgz", ".mgh", ".hdr", ".img", ".dcm", ".png", ".jpg", ".jpeg",
                       ".tif", ".tiff", ".bmp"):
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
        return name

    def open_model(self, path: str | os.PathLike, trust: bool = False) -> bool:
        """Load a model (model card .toml, bundle folder, TorchScript, ...); True on success.

        A model that needs trust is loaded only when ``trust`` is given or
        :attr:`trust_prompt` says yes — the same decision for File → Open model, the
        command line and models named by session files.
        """
        model = self._load_model_file(path, trust)
        if model is None:
            return False
        self.set_model(model, path=str(Path(path).absolute()))
        self.recent.add(path, "model")
        return True

    def _load_model_file(self, path: str | os.PathLike, trust: bool, what: str = "model") -> Any | None:
        """The loaded model, or None after reporting why not: the one trust decision for
        every model the session opens (the main model and the second one to compare)."""
        from viewer.models import ModelLoadError, load_model
        from viewer.models.errors import UntrustedModelError

        shown = str(Path(path).absolute())
        try:
            try:
                return load_model(path, trust=trust)
            except UntrustedModelError as exc:
                prompt = self.trust_prompt
                if trust or prompt is None or not prompt(shown, str(exc)):
                    title = f"{what[:1].upper()}{what[1:]} not opened: it needs your trust"
                    self._report(title, f"{shown}\n\n{exc}")
                    return None
                return load_model(path, trust=True)
        except ModelLoadError as exc:
            self._report(f"Cannot open {what}", str(exc))
        except Exception as exc:  # noqa: BLE001
            self._report(f"Cannot open {what}", f"{Path(path).name}: {type(exc).__name__}: {exc}")
        return None

    def set_model(self, model: Any, path: str | None = None, keep_panels: bool = False) -> None:
        """Use a loaded model. LRP panels switch to the model's recommended preset, and
        methods that need the model's layers fall back to saliency when it hides them."""
        with self._lock:
            self.model, self.model_path = model, path
            self._model_token = self._new_token("model")
        if not keep_panels:
            structured = getattr(model, "structured", True)
            for i, panel in enumerate(self._panel_states):
                if not structured and panel.method in ("lrp", "gradcam", "gradcampp"):
                    self._panel_states[i] = with_method(panel, "saliency", {})
                elif panel.method in ("lrp", "gradcam", "gradcampp"):
                    self._panel_states[i] = panel.with_(params=self.default_params(panel.method))
        if self.target is not None and not keep_panels:
            self.target = None
            self.settings_changed.emit()
        self._rebuild_context()
        self.model_changed.emit()
        self.panels_changed.emit()
        self.refresh()

    def open_mask(self, path: str | os.PathLike) -> bool:
        """A NIfTI label (or any scan) of the scan's shape; nonzero voxels are inside."""
        from viewer.io import load_scan
        from viewer.io.errors import ScanLoadError

        if self.scan is None:
            self._report("Cannot open mask", "Open a scan first; a mask is drawn on the scan's voxel grid.")
            return False
        try:
            data = load_scan(path).data
            self.set_mask(data, path=str(Path(path).absolute()))
        except (ScanLoadError, MaskShapeError) as exc:
            self._report("Cannot open mask", str(exc))
            return False
        except Exception as exc:  # noqa: BLE001
            self._report("Cannot open mask", f"{Path(path).name}: {type(exc).__name__}: {exc}")
            return False
        self.recent.add(path, "mask")
        return True

    def set_mask(self, data: np.ndarray, path: str | None = None) -> None:
        """Use an array on the scan grid as mask (nonzero = inside); MaskShapeError otherwise."""
        data = np.asarray(data)
        if self.scan is None or data.shape != tuple(self.scan.shape):
            have = "no scan" if self.scan is None else f"the scan's {tuple(self.scan.shape)}"
            raise MaskShapeError(
                f"The mask has shape {data.shape} but {have}; a mask must lie on the scan's voxel grid "
                "(same shape). Resample it to the scan first, e.g. with the scan as reference."
            )
        self._set_mask(np.ascontiguousarray(data != 0), path)
        self._resubmit_region_panels()
        self._schedule_metrics()

    def clear_mask(self) -> None:
        if self.mask is not None:
            self._set_mask(None, None)
            self._resubmit_region_panels()
            self._schedule_metrics()

    def _set_mask(self, mask: np.ndarray | None, path: str | None) -> None:
        with self._lock:
            self.mask, self.mask_path = mask, path
            self._mask_token = None if mask is None else self._new_token("mask")
        self.mask_changed.emit()

    def _resubmit_region_panels(self) -> None:
        if isinstance(self.target, tuple) and self.target[:1] == ("region",):
            self._resubmit_panels()

    def open_demo(self, three_d: bool = True, case: str | None = None) -> bool:
        """The bundled demo: a case with its mask and the 3D demo model, or with
        ``three_d=False`` the 2D case (when shipped) and the 2D model."""
        from viewer.models.demo import demo_cases, demo_paths

        try:
            if case is None and not three_d and "case2d_right" in demo_cases():
                case = "case2d_right"
            paths = demo_paths(case) if case is not None else demo_paths()
        except Exception as exc:  # noqa: BLE001 - missing demo assets in a broken install
            self._report("Cannot open the demo", str(exc))
            return False
        with self.batch():
            ok = self.open_scan(paths.scan)
            ok = ok and self.open_model(paths.model3d if three_d else paths.model2d)
            if ok and paths.mask is not None:
                ok = self.open_mask(paths.mask)
            if ok and self.mask is not None and self.mask.any():
                # open on the lesion, not on the volume's centre, so the evidence is in view
                self.set_cursor(np.round(np.argwhere(self.mask).mean(axis=0)))
        return ok
