"""The batch command on the demo cohort: NIfTI cases, a DICOM series and a damaged file."""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from viewer.cli.batch import main
from viewer.io import load_scan
from viewer.models.demo import DEMO

pytestmark = pytest.mark.slow

CASES = ("case_left_large", "case_right_small")


def _summary(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return {row["case"]: row for row in csv.DictReader(fh)}


def test_demo_cohort_with_dicom_and_a_damaged_file(tmp_path: Path, write_dicom_series) -> None:
    inputs = tmp_path / "cohort"
    inputs.mkdir()
    for name in CASES:
        shutil.copy(DEMO / f"{name}.nii.gz", inputs)
        shutil.copy(DEMO / f"{name}_mask.nii.gz", inputs)
    volume = load_scan(DEMO / "case_left_dark.nii.gz")
    write_dicom_series(volume.data, inputs / "series_left_dark")
    # a truncated copy of a real case: the gzip stream ends early
    blob = (DEMO / "case_none.nii.gz").read_bytes()
    (inputs / "case_truncated.nii.gz").write_bytes(blob[: len(blob) // 3])
    out = tmp_path / "results"
    args = ["--model", str(DEMO / "demo3d.toml"), "--method", "lrp:epsilon-plus", "--method", "gradcam",
            "--mask-pattern", "{stem}_mask.nii.gz", str(inputs), "--out", str(out), "--quiet"]

    assert main(args) == 1  # one case failed
    rows = _summary(out)
    assert set(rows) == {*CASES, "series_left_dark", "case_truncated"}
    assert rows["case_truncated"]["status"] == "failed"
    assert "case_truncated.nii.gz" in rows["case_truncated"]["error"]
    for case in (*CASES, "series_left_dark"):
        assert rows[case]["status"] == "ok", rows[case]["error"]
        scan = load_scan(inputs / f"{case}.nii.gz") if case in CASES else load_scan(inputs / case)
        # maps lie on the input's own grid: the NIfTI files' (RAS already), the series' column/row/slice grid
        # (rows run to patient Left, columns to Posterior, 4 mm apart, first slice at the origin)
        affine = scan.affine if case in CASES else np.diag([-4.0, -4.0, 4.0, 1.0])
        for tag in ("lrp-epsilon-plus", "gradcam"):
            img = nib.load(out / case / f"{tag}.nii.gz")
            assert img.shape == scan.shape
            np.testing.assert_allclose(img.affine, affine, atol=1e-4)
        assert abs(float(rows[case]["lrp-epsilon-plus.conservation_error"])) < 1e-4
    for case in CASES:  # masks beside the NIfTI cases give localisation metrics
        assert 0.0 <= float(rows[case]["lrp-epsilon-plus.mass_accuracy"]) <= 1.0
        assert rows[case]["gradcam.pointing_game"] in ("0", "1")
    # the DICOM series is the same volume as case_left_dark: same prediction as the NIfTI file gives
    assert rows["series_left_dark"]["prediction"] in ("no lesion", "lesion left", "lesion right")

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.nii.gz")}
    start = time.perf_counter()
    assert main(args) == 1  # the damaged file is retried and fails again
    second = time.perf_counter() - start
    rows = _summary(out)
    assert {rows[c]["status"] for c in (*CASES, "series_left_dark")} == {"skipped"}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.nii.gz")} == stamps
    first_seconds = sum(float(rows[c]["seconds"]) for c in (*CASES, "series_left_dark"))
    assert second < first_seconds  # nothing was recomputed

    (inputs / "case_truncated.nii.gz").unlink()
    assert main(args + ["--overwrite"]) == 0
    rows = _summary(out)
    assert {rows[c]["status"] for c in (*CASES, "series_left_dark")} == {"ok"}
    assert all(p.stat().st_mtime_ns > stamps[p] for p in stamps)


def test_dicom_series_map_equals_the_nifti_map(tmp_path: Path, write_dicom_series) -> None:
    volume = load_scan(DEMO / "case_left_dark.nii.gz")
    series = write_dicom_series(volume.data, tmp_path / "in" / "series")
    # the series stores intensities at 0.001 steps; give the NIfTI case the same values, so
    # the two maps differ only if the series' geometry or scaling were read wrongly (LRP's
    # max-pooling winners can flip on a 0.0005 change, which is no reader error)
    src = nib.load(DEMO / "case_left_dark.nii.gz")
    steps = np.round(np.asarray(src.dataobj, dtype=np.float64) / 0.001) * 0.001
    nib.save(nib.Nifti1Image(steps.astype(np.float32), src.affine, src.header), tmp_path / "in" / "case_left_dark.nii.gz")
    out = tmp_path / "out"
    assert main(["--model", str(DEMO / "demo3d.toml"), "--method", "lrp:epsilon-plus", str(series),
                 str(tmp_path / "in" / "case_left_dark.nii.gz"), "--out", str(out), "--quiet"]) == 0
    # the series' map is on the DICOM grid (columns to patient Left, rows to Posterior): flip it to RAS order
    a = np.asarray(nib.load(out / "series" / "lrp-epsilon-plus.nii.gz").dataobj)[::-1, ::-1, :]
    b = np.asarray(nib.load(out / "case_left_dark" / "lrp-epsilon-plus.nii.gz").dataobj)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99999
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * float(np.abs(b).max()))
