"""The batch command with a tiny real model: outputs, summary, resume, failures, usage errors."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from viewer.cli.batch import main
from viewer.io.export_nifti import read_relevance_metadata


def _summary(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return {row["case"]: row for row in csv.DictReader(fh)}


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_help_documents_everything_as_a_subprocess() -> None:
    done = subprocess.run([sys.executable, "-m", "viewer", "batch", "--help"], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    for flag in ("--model", "--method", "--mask-pattern", "--out", "--device", "--precision", "--trust",
                 "--overwrite", "--batch-size", "--target", "--grid", "examples:", "summary.csv", "exit status",
                 "model_sha256", ".lrp-viewer-batch.lock", "--executor", "--address", "--gpus-per-task",
                 "--cpus-per-task", "--max-retries", "lrp-viewer[cluster]", "WorkerLost"):
        assert flag in done.stdout


def test_cases_are_written_and_failures_recorded(tmp_path: Path, tiny_card: Path, write_case, capsys) -> None:
    inputs = tmp_path / "in"
    write_case(inputs / "a.nii.gz", seed=1, mask=True)
    write_case(inputs / "sub" / "b.nii.gz", seed=2, shape=(20, 16, 12))
    (inputs / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    (inputs / "notes.txt").write_text("not a scan")
    before = _tree(inputs)
    out = tmp_path / "out"

    code = main(["--model", str(tiny_card), "--method", "lrp:epsilon-plus", "--method", "gradcam",
                 "--mask-pattern", "{stem}_mask.nii.gz", str(inputs), "--out", str(out)])

    assert code == 1  # one case failed
    assert _tree(inputs) == before  # input folders are never written
    rows = _summary(out)
    assert set(rows) == {"a", "b", "broken"}
    assert rows["broken"]["status"] == "failed" and "CorruptFileError" in rows["broken"]["error"]
    assert "broken.nii.gz" in rows["broken"]["error"]
    for case, scan_path in (("a", inputs / "a.nii.gz"), ("b", inputs / "sub" / "b.nii.gz")):
        row = rows[case]
        assert row["status"] == "ok" and row["error"] == ""
        probs = [float(row[f"p.{label}"]) for label in ("no lesion", "lesion left", "lesion right")]
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert row["prediction"] == ["no lesion", "lesion left", "lesion right"][int(np.argmax(probs))]
        scan = nib.load(scan_path)
        for tag in ("lrp-epsilon-plus", "gradcam"):
            img = nib.load(out / case / f"{tag}.nii.gz")
            assert img.shape == scan.shape
            np.testing.assert_allclose(img.affine, scan.affine, atol=1e-5)
        # LRP conserves: explained = input_sum + absorbed, per case
        explained = float(row["lrp-epsilon-plus.explained"])
        input_sum = float(row["lrp-epsilon-plus.input_sum"])
        absorbed = float(row["lrp-epsilon-plus.absorbed"])
        assert explained == pytest.approx(input_sum + absorbed, abs=1e-5 * max(1.0, abs(explained)))
        assert abs(float(row["lrp-epsilon-plus.conservation_error"])) < 1e-5
    assert 0.0 <= float(rows["a"]["lrp-epsilon-plus.mass_accuracy"]) <= 1.0
    assert rows["a"]["lrp-epsilon-plus.pointing_game"] in ("0", "1")
    assert rows["b"]["lrp-epsilon-plus.mass_accuracy"] == ""  # no mask for b
    assert "no mask at b_mask.nii.gz" in rows["b"]["note"]
    meta = read_relevance_metadata(out / "a" / "lrp-epsilon-plus.nii.gz")
    assert meta["method"] == "lrp" and meta["preset"] == "epsilon-plus" and meta["model"] == "Tiny 3D test model"
    err = capsys.readouterr().err
    assert "[3/3]" in err and "ETA" in err and "1 failed" in err  # plain lines: stderr is not a TTY


def test_maps_equal_the_engine_on_the_scan_grid(tmp_path: Path, tiny_card: Path, write_case) -> None:
    from viewer.explain import lrp
    from viewer.io import load_scan
    from viewer.models import load_model

    path = write_case(tmp_path / "in" / "c.nii.gz", seed=5, shape=(18, 14, 12))
    assert main(["--model", str(tiny_card), "--quiet", str(path), "--out", str(tmp_path / "out")]) == 0
    model = load_model(tiny_card)
    scan = load_scan(path)
    x, to_scan = model.prepare(scan)
    expected = to_scan(lrp(model.module, x, preset="epsilon-plus").relevance)
    written = np.asarray(nib.load(tmp_path / "out" / "c" / "lrp-epsilon-plus.nii.gz").dataobj)
    np.testing.assert_allclose(written, expected, rtol=1e-5, atol=1e-7 * np.abs(expected).max())


def test_resume_skips_done_cases_and_overwrite_recomputes(tmp_path: Path, tiny_card: Path, write_case) -> None:
    inputs = tmp_path / "in"
    for i in range(2):
        write_case(inputs / f"case{i}.nii.gz", seed=i)
    out = tmp_path / "out"
    args = ["--model", str(tiny_card), "--method", "lrp", "--method", "saliency", str(inputs), "--out", str(out),
            "--quiet"]
    assert main(args) == 0
    first = _tree(out)
    first_rows = _summary(out)

    assert main(args) == 0
    again = _tree(out)
    maps = {k: v for k, v in first.items() if k != "summary.csv"}
    assert {k: v for k, v in again.items() if k != "summary.csv"} == maps
    rows = _summary(out)
    assert {r["status"] for r in rows.values()} == {"skipped"}
    assert rows["case1"]["lrp-epsilon-plus.input_sum"] == first_rows["case1"]["lrp-epsilon-plus.input_sum"]

    # a missing method file makes its case pending again; the others stay skipped
    (out / "case1" / "saliency.nii.gz").unlink()
    assert main(args) == 0
    rows = _summary(out)
    assert rows["case1"]["status"] == "ok" and rows["case0"]["status"] == "skipped"
    assert (out / "case1" / "saliency.nii.gz").exists()

    assert main(args + ["--overwrite"]) == 0
    rows = _summary(out)
    assert {r["status"] for r in rows.values()} == {"ok"}
    assert all(_tree(out)[f"case{i}/lrp-epsilon-plus.nii.gz"][1] > first[f"case{i}/lrp-epsilon-plus.nii.gz"][1]
               for i in range(2))


def test_batched_run_matches_case_by_case(tmp_path: Path, tiny_card: Path, write_case) -> None:
    inputs = tmp_path / "in"
    for i in range(4):
        write_case(inputs / f"c{i}.nii.gz", seed=10 + i, shape=(16, 18, 14) if i < 3 else (12, 12, 12))
    results = {}
    for size in (1, 3):
        out = tmp_path / f"out{size}"
        assert main(["--model", str(tiny_card), "--method", "lrp", "--method", "gradcam", "--batch-size",
                     str(size), str(inputs), "--out", str(out), "--quiet"]) == 0
        results[size] = out
    one, three = _summary(results[1]), _summary(results[3])
    for case in one:
        assert one[case]["prediction"] == three[case]["prediction"]
        for key in ("p.lesion left", "lrp-epsilon-plus.explained", "lrp-epsilon-plus.input_sum",
                    "lrp-epsilon-plus.absorbed"):
            assert float(one[case][key]) == pytest.approx(float(three[case][key]), rel=1e-4, abs=1e-6)
        for tag in ("lrp-epsilon-plus", "gradcam"):
            a = np.asarray(nib.load(results[1] / case / f"{tag}.nii.gz").dataobj)
            b = np.asarray(nib.load(results[3] / case / f"{tag}.nii.gz").dataobj)
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * max(1e-12, np.abs(a).max()))


def test_csv_list_with_ids_masks_and_a_missing_file(tmp_path: Path, tiny_card: Path, write_case) -> None:
    data = tmp_path / "data"
    write_case(data / "x.nii.gz", seed=3, mask=True)
    write_case(data / "y.nii.gz", seed=4)
    listing = tmp_path / "cohort.csv"
    listing.write_text("id,path,mask\nsubject 1,data/x.nii.gz,data/x_mask.nii.gz\n,data/y.nii.gz,\n"
                       "gone,data/missing.nii.gz,\n")
    out = tmp_path / "out"
    assert main(["--model", str(tiny_card), str(listing), "--out", str(out), "--quiet"]) == 1
    rows = _summary(out)
    assert set(rows) == {"subject_1", "y", "gone"}
    assert rows["subject_1"]["mask"].endswith("x_mask.nii.gz") and rows["subject_1"]["lrp-epsilon-plus.mass_accuracy"]
    assert rows["gone"]["status"] == "failed" and "does not exist" in rows["gone"]["error"]
    assert (out / "subject_1" / "lrp-epsilon-plus.nii.gz").exists()


def test_a_scan_the_model_cannot_take_fails_alone(tmp_path: Path, tiny_card: Path, write_case) -> None:
    inputs = tmp_path / "in"
    write_case(inputs / "volume.nii.gz")
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(inputs / "xray.png")
    out = tmp_path / "out"
    assert main(["--model", str(tiny_card), str(inputs), "--out", str(out), "--quiet"]) == 1
    rows = _summary(out)
    assert rows["volume"]["status"] == "ok"
    assert rows["xray"]["status"] == "failed" and "ModelLoadError" in rows["xray"]["error"]
    assert "2D" in rows["xray"]["error"]


def test_masks_beside_cases_are_not_cases(tmp_path: Path, tiny_card: Path, write_case, capsys) -> None:
    inputs = tmp_path / "in"
    write_case(inputs / "p.nii.gz", mask=True)
    out = tmp_path / "out"
    assert main(["--model", str(tiny_card), str(inputs), "--out", str(out)]) == 0
    assert set(_summary(out)) == {"p"}
    assert "look like masks" in capsys.readouterr().err


def test_target_option_is_recorded(tmp_path: Path, tiny_card: Path, write_case) -> None:
    path = write_case(tmp_path / "in" / "t.nii.gz")
    out = tmp_path / "out"
    assert main(["--model", str(tiny_card), "--target", "lesion right,no lesion", str(path), "--out", str(out),
                 "--quiet"]) == 0
    meta = read_relevance_metadata(out / "t" / "lrp-epsilon-plus.nii.gz")
    assert meta["target"]["kind"] == "contrast" and (meta["target"]["index"], meta["target"]["other"]) == (2, 0)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "banana"], "Unknown method 'banana'"),
        (["--method", "lrp:no-such-preset"], "preset"),
        (["--method", "gradcam,layer"], "key=value"),
        (["--target", "tumour"], "neither a class index nor one of the labels"),
        (["--target", "7"], "out of range"),
        (["--batch-size", "0"], "at least 1"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, tiny_card: Path, write_case, capsys, extra, message) -> None:
    path = write_case(tmp_path / "in" / "u.nii.gz")
    out = tmp_path / "out"
    assert main(["--model", str(tiny_card), *extra, str(path), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_setup_errors_exit_2_and_write_nothing(tmp_path: Path, tiny_card: Path, write_case, capsys) -> None:
    inputs = tmp_path / "in"
    write_case(inputs / "a.nii.gz")
    assert main(["--model", str(tiny_card), str(inputs), "--out", str(inputs / "results")]) == 2
    assert "input folders are never written" in capsys.readouterr().err
    assert not (inputs / "results").exists()
    assert main(["--model", str(tmp_path / "nope.toml"), str(inputs), "--out", str(tmp_path / "o")]) == 2
    assert main(["--model", str(tiny_card), str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--model", str(tiny_card), str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "No scans found" in capsys.readouterr().err
    assert main(["--model", str(tiny_card)]) == 2  # argparse: INPUT and --out missing
    assert not (tmp_path / "o").exists()


def test_lrp_batches_cases_when_the_engine_splits_absorbed_relevance(tmp_path: Path, tiny_card: Path, write_case,
                                                                      monkeypatch) -> None:
    """With ``meta["absorbed_per_sample"]`` one LRP call serves several cases, cut back per case exactly."""
    import dataclasses
    import importlib

    engine = importlib.import_module("viewer.explain.lrp")  # the package (viewer.explain.lrp is also a function)

    real = engine.lrp
    shapes = []

    def with_per_sample(model, x, target=None, **kw):
        shapes.append(tuple(x.shape))
        r = real(model, x, target=target, **kw)
        if x.shape[0] == 1:
            return r
        singles = [real(model, x[i:i + 1], target=target, **kw) for i in range(x.shape[0])]  # test oracle
        meta = {**r.meta, "absorbed_per_sample": [s.absorbed for s in singles]}
        return dataclasses.replace(r, meta=meta)

    inputs = tmp_path / "in"
    for i in range(3):
        write_case(inputs / f"c{i}.nii.gz", seed=20 + i)
    base = ["--model", str(tiny_card), "--target", "1", str(inputs), "--quiet"]
    assert main(base + ["--out", str(tmp_path / "single")]) == 0
    monkeypatch.setattr(engine, "lrp", with_per_sample)
    assert main(base + ["--out", str(tmp_path / "batched"), "--batch-size", "3"]) == 0
    assert shapes[0] == (3, 1, 16, 16, 16) and shapes.count((3, 1, 16, 16, 16)) == 1
    single, batched = _summary(tmp_path / "single"), _summary(tmp_path / "batched")
    for case in single:
        for key in ("explained", "input_sum", "absorbed", "conservation_error"):
            a, b = float(single[case][f"lrp-epsilon-plus.{key}"]), float(batched[case][f"lrp-epsilon-plus.{key}"])
            assert a == pytest.approx(b, rel=1e-4, abs=1e-6), (case, key)
        np.testing.assert_allclose(
            np.asarray(nib.load(tmp_path / "batched" / case / "lrp-epsilon-plus.nii.gz").dataobj),
            np.asarray(nib.load(tmp_path / "single" / case / "lrp-epsilon-plus.nii.gz").dataobj),
            rtol=1e-4, atol=1e-9)


def test_2d_model_on_a_volume_runs_per_slice(tmp_path: Path, write_case) -> None:
    from viewer.models.demo import DEMO

    path = write_case(tmp_path / "in" / "v.nii.gz", shape=(12, 14, 4))
    out = tmp_path / "out"
    assert main(["--model", str(DEMO / "demo2d.toml"), "--method", "lrp:epsilon-plus", "--method", "gradcam", str(path),
                 "--out", str(out), "--quiet"]) == 0
    row = _summary(out)["v"]
    assert row["status"] == "ok"
    assert "axial slices" in row["note"]
    # LRP conserves over the whole volume (all slices explained for the case-level class)
    assert abs(float(row["lrp-epsilon-plus.conservation_error"])) < 1e-4
    for tag in ("lrp-epsilon-plus", "gradcam"):
        data = np.asarray(nib.load(out / "v" / f"{tag}.nii.gz").dataobj)
        assert data.shape == (12, 14, 4) and np.abs(data).sum(axis=(0, 1)).min() > 0  # every slice explained


def test_reduced_precision_reports_its_conservation_error(tmp_path: Path, tiny_card: Path, write_case) -> None:
    path = write_case(tmp_path / "in" / "h.nii.gz")
    for precision in ("float32", "bfloat16"):
        out = tmp_path / precision
        assert main(["--model", str(tiny_card), "--precision", precision, "--method", "lrp", "--method", "saliency",
                     str(path), "--out", str(out), "--quiet"]) == 0
    exact, reduced = _summary(tmp_path / "float32")["h"], _summary(tmp_path / "bfloat16")["h"]
    assert reduced["status"] == "ok" and reduced["prediction"] == exact["prediction"]
    error = float(reduced["lrp-epsilon-plus.conservation_error"])
    assert error != 0.0 and abs(error) < 0.05 * abs(float(reduced["lrp-epsilon-plus.explained"]))
    assert float(reduced["lrp-epsilon-plus.explained"]) == pytest.approx(float(exact["lrp-epsilon-plus.explained"]),
                                                                         rel=0.05)


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path: Path, tiny_card: Path, write_case, monkeypatch,
                                                     capsys) -> None:
    from viewer.cli import batch_run

    inputs = tmp_path / "in"
    for i in range(3):
        write_case(inputs / f"k{i}.nii.gz", seed=30 + i)
    out = tmp_path / "out"
    args = ["--model", str(tiny_card), str(inputs), "--out", str(out)]
    real_run = batch_run.Runner.run
    calls = []

    def interrupt_second(self, group):
        calls.append(group[0].case.id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run(self, group)

    monkeypatch.setattr(batch_run.Runner, "run", interrupt_second)
    assert main(args) == 130
    assert "Run the same command again to resume" in capsys.readouterr().err
    rows = _summary(out)
    assert list(rows) == ["k0"] and rows["k0"]["status"] == "ok"  # the summary is complete up to the interruption

    monkeypatch.setattr(batch_run.Runner, "run", real_run)
    assert main(args) == 0
    rows = _summary(out)
    assert [rows[k]["status"] for k in ("k0", "k1", "k2")] == ["skipped", "ok", "ok"]


def test_output_in_a_listed_case_folder_is_refused(tmp_path: Path, tiny_card: Path, write_case, capsys) -> None:
    write_case(tmp_path / "data" / "s.nii.gz")
    listing = tmp_path / "list.csv"
    listing.write_text("path\ndata/s.nii.gz\n")
    assert main(["--model", str(tiny_card), str(listing), "--out", str(tmp_path / "data")]) == 2
    assert "input folders are never written" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["s.nii.gz"]
