"""The batch's per-case entry point: a case in, its summary row out, never an exception."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from viewer.cli.batch_inputs import Case
from viewer.cli.batch_run import Runner, parse_method


def test_case_row_does_one_case_start_to_end(tmp_path: Path, tiny_card: Path, write_case) -> None:
    from viewer.models import load_model

    model = load_model(tiny_card)
    out = tmp_path / "out"
    out.mkdir()
    runner = Runner(model, [parse_method("lrp", model.preset)], out, torch.device("cpu"), grid="ras",
                    provenance={"lrp_viewer_version": "9.9", "model_sha256": "ab", "card_sha256": "cd"})
    path = write_case(tmp_path / "in" / "one.nii.gz", mask=True)
    row = runner.case_row(Case("one", path, tmp_path / "in" / "one_mask.nii.gz"))
    assert (row["case"], row["status"], row["error"], row["input"]) == ("one", "ok", "", str(path))
    assert (row["grid"], row["device"], row["precision"]) == ("ras", "cpu", "float32")
    assert (row["lrp_viewer_version"], row["model_sha256"], row["card_sha256"]) == ("9.9", "ab", "cd")
    assert row["input_warnings"] == ""
    assert 0.0 <= row["lrp-epsilon-plus.mass_accuracy"] <= 1.0
    assert abs(row["lrp-epsilon-plus.conservation_error"]) < 1e-5
    written = np.asarray(nib.load(out / "one" / "lrp-epsilon-plus.nii.gz").dataobj)
    from viewer.explain import lrp
    from viewer.io import load_scan

    x, to_scan = model.prepare(load_scan(path))
    expected = to_scan(lrp(model.module, x, preset="epsilon-plus").relevance)
    np.testing.assert_allclose(written, expected, rtol=1e-5, atol=1e-7 * np.abs(expected).max())

    missing = runner.case_row(Case("gone", tmp_path / "in" / "gone.nii.gz"))
    assert missing["status"] == "failed" and missing["error"].startswith("ScanLoadError: ")
    assert "gone.nii.gz does not exist" in missing["error"]
    assert missing["grid"] == "ras" and missing["model_sha256"] == "ab"
