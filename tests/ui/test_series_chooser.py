"""The DICOM series chooser on a real folder of two generated series: each row says the
series number and time the reader found (and never a patient field)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from tests.io.dicom_writer import PATIENT_ID, PATIENT_NAME, write_series
from viewer.io import load_scan
from viewer.ui.dialogs import SeriesDialog, current_series_text


def _series(folder: Path, uid: str, n: int, number: int, time: str, description: str) -> None:
    rng = np.random.default_rng(n)
    positions = np.array([[0.0, 0.0, 2.5 * k] for k in range(n)])
    for p in write_series(folder, rng.integers(0, 4000, size=(n, 5, 7)).astype(np.uint16), positions,
                          series_uid=uid, description=description):
        ds = pydicom.dcmread(p)
        ds.SeriesNumber, ds.SeriesTime = number, time
        ds.save_as(p, enforce_file_format=True)


def test_the_chooser_names_each_series_by_number_and_time(qtbot: Any, tmp_path: Path) -> None:
    _series(tmp_path / "a", "1.2.826.0.1.3680043.8.498.100", 6, 3, "101503.25", "head")
    _series(tmp_path / "b", "1.2.826.0.1.3680043.8.498.200", 3, 7, "142233", "head")  # same description
    scan = load_scan(tmp_path)
    dlg = SeriesDialog(current_series_text(scan.meta, scan.modality), scan.meta["other_series"])
    qtbot.addWidget(dlg)
    rows = [dlg.list.item(r).text() for r in range(dlg.list.count())]
    assert rows[0].startswith("#3 — 10:15:03 — CT — head — ") and rows[0].endswith("(opened)")
    assert rows[1].startswith("#7 — 14:22:33 — CT — head — 3 images — 7 × 5 — UID ")
    assert not any(PATIENT_NAME in r or PATIENT_ID in r for r in rows)
    dlg.list.setCurrentRow(1)
    assert dlg.chosen_uid() == scan.meta["other_series"][0]["uid"]
