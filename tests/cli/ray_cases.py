"""The batch on Ray: same outputs as the local executor, killed workers retried, resumes, clear errors.

Run by test_batch_ray.py in a pytest process of its own (see there). One local Ray
instance (2 CPUs, no dashboard) serves the whole module: starting Ray
costs seconds. The batch command finds it initialised and uses it, as it would in a
notebook. Tests that need no Ray run without it; the others skip when Ray is missing
(``pip install "lrp-viewer[cluster]"``).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from viewer.cli.batch import main
from viewer.cli.executor_ray import FAULT_ENV
from viewer.cli.executors import ExecutorFailed, ExecutorSpec, LocalExecutor, open_executor
from viewer.models.demo import DEMO

DEMO_CASES = ("case_left_large", "case_right_small", "case_none")


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 << 20,
             logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()


def _table(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _summary(out: Path) -> dict[str, dict[str, str]]:
    return {row["case"]: row for row in _table(out)}


def _stamps(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in out.rglob("*.nii.gz")}


def _without_timings(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "seconds" and not k.endswith(".seconds")} for row in rows]


def _metadata(path: Path) -> dict:
    [extension] = nib.load(path).header.extensions
    meta = json.loads(extension.get_content())["lrp-viewer"]
    meta.pop("created")  # the time the file was written
    return meta


# -- without Ray -------------------------------------------------------------------------


def test_missing_ray_is_a_usage_error_that_says_how_to_install(tmp_path: Path, tiny_card: Path, write_case,
                                                               monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the package
    path = write_case(tmp_path / "in" / "a.nii.gz")
    out = tmp_path / "out"
    args = ["--model", str(tiny_card), "--method", "saliency", str(path), "--out", str(out), "--quiet"]

    assert main(args + ["--executor", "ray", "--address", "auto"]) == 2
    err = capsys.readouterr().err
    assert "--executor ray needs Ray, which is not installed" in err
    assert 'pip install "lrp-viewer[cluster]"' in err
    assert not out.exists()  # told before anything was loaded or written

    assert main(args + ["--workers", "2"]) == 2  # Ray's options without Ray's executor
    assert "--workers only apply to --executor ray" in capsys.readouterr().err
    assert main(args) == 0  # the local executor, the default, needs no Ray
    assert _summary(out)["a"]["status"] == "ok"


def test_a_worker_that_does_not_see_the_output_folder_refuses_to_start(tmp_path: Path, tiny_card: Path) -> None:
    from viewer.cli.batch_driver import BatchWork, WorkerSetupError
    from viewer.cli.batch_lock import lock_record, output_lock
    from viewer.cli.batch_run import Runner, parse_method
    from viewer.models import load_model

    model = load_model(tiny_card)
    runner = Runner(model, [parse_method("saliency")], tmp_path, torch.device("cpu"))
    with output_lock(tmp_path):
        BatchWork(runner, lock_record()).on_worker("cpu")  # same folder: ready
        with pytest.raises(WorkerSetupError, match="does not see the output folder .* every node mounts"):
            BatchWork(runner, "1 another-host\n").on_worker("cpu")  # another machine's folder of that name


def test_local_executor_streams_each_chunk_through_the_work() -> None:
    work = Squares(torch.arange(4.0))
    executor = LocalExecutor(ExecutorSpec(device="cpu"))
    outcomes = list(executor.map(work, list(range(5)), chunk=2))
    assert [o.result[0] for o in outcomes] == [0, 1, 2, 3, 4]
    assert [o.result[1] for o in outcomes] == [0.0, 6.0, 24.0, 54.0, 96.0]  # item² · sum(weights)
    assert {o.attempt for o in outcomes} == {1} and all(o.ok for o in outcomes)
    assert work.calls == [[0, 1], [2, 3], [4]]


# -- the generic executor on Ray ---------------------------------------------------------


class Squares:
    """A work object like the batch's: heavy shared state (``weights``), one result per item.

    ``__setstate__`` counts, per process, how often a copy arrived: the Ray executor must
    ship it once per worker, not once per item.
    """

    def __init__(self, weights: torch.Tensor, fail_setup: bool = False) -> None:
        self.weights = weights
        self.fail_setup = fail_setup
        self.calls: list[list[int]] = []

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        os.environ["LRP_TEST_WORK_COPIES"] = str(int(os.environ.get("LRP_TEST_WORK_COPIES", "0")) + 1)

    def on_worker(self, device: str) -> None:
        if self.fail_setup:
            raise RuntimeError("this node has no scratch space")
        self.weights = self.weights.to(device)

    def __call__(self, items: list[int]):
        self.calls.append(list(items))
        for item in items:
            yield item, float(item * item * self.weights.sum()), os.getpid(), os.environ.get("LRP_TEST_WORK_COPIES")


@pytest.fixture
def by_value(ray_instance):
    """Ship this test module's classes by value: Ray workers cannot import a test file."""
    ray_instance.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray_instance.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.slow
def test_ray_executor_ships_the_work_once_per_worker(ray_instance, by_value) -> None:
    weights = torch.ones(1 << 20)  # 4 MiB of "model"
    with open_executor(ExecutorSpec(kind="ray", device="auto")) as executor:
        assert (executor.device, executor.workers) == ("cpu", 2)  # 2 CPUs, no GPUs: two CPU workers
        outcomes = list(executor.map(Squares(weights), list(range(12)), chunk=1))
    assert sorted(o.result[0] for o in outcomes) == list(range(12))
    assert all(o.result[1] == float(o.result[0] ** 2 * (1 << 20)) for o in outcomes)
    assert {o.result[3] for o in outcomes} == {"1"}  # each worker process took exactly one copy
    assert os.getpid() not in {o.result[2] for o in outcomes}
    assert ray_instance.is_initialized()  # the executor leaves a Ray instance it did not start running


@pytest.mark.slow
def test_ray_executor_stops_when_workers_cannot_get_ready(ray_instance, by_value) -> None:
    with open_executor(ExecutorSpec(kind="ray", workers=1)) as executor:
        with pytest.raises(ExecutorFailed, match="could not get ready: this node has no scratch space"):
            list(executor.map(Squares(torch.ones(4), fail_setup=True), [1, 2, 3]))


# -- the batch command on Ray ------------------------------------------------------------


@pytest.mark.slow
def test_ray_gives_the_local_executors_results_bit_for_bit(ray_instance, tmp_path: Path, capsys) -> None:
    inputs = tmp_path / "cohort"
    inputs.mkdir()
    for name in DEMO_CASES:
        shutil.copy(DEMO / f"{name}.nii.gz", inputs)
        shutil.copy(DEMO / f"{name}_mask.nii.gz", inputs)
    blob = (DEMO / "case_none.nii.gz").read_bytes()
    (inputs / "case_truncated.nii.gz").write_bytes(blob[: len(blob) // 3])
    args = ["--model", str(DEMO / "demo3d.toml"), "--method", "lrp:epsilon-plus", "--method", "gradcam",
            "--mask-pattern", "{stem}_mask.nii.gz", str(inputs), "--device", "cpu"]
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    # a Ray worker computes with --cpus-per-task (1) threads; torch's float32 sums (the LRP ledger's
    # 'absorbed') round differently with another thread count, so the reference uses one thread too
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(args + ["--out", str(local), "--quiet"]) == 1  # the truncated case fails
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()
    assert main(args + ["--out", str(on_ray), "--executor", "ray", "--workers", "2", "--cpus-per-task", "1"]) == 1
    err = capsys.readouterr().err
    assert "Ray: up to 2 worker(s) with 1 CPU each" in err
    assert "4 cases: 3 ok, 0 skipped, 1 failed" in err

    ray_rows, local_rows = _table(on_ray), _table(local)
    assert [r["case"] for r in ray_rows] == [r["case"] for r in local_rows]  # input order, not finishing order
    assert list(ray_rows[0]) == list(local_rows[0])  # the same columns
    assert _without_timings(ray_rows) == _without_timings(local_rows)  # every number, every text, exactly
    assert {r["case"]: r["status"] for r in ray_rows}["case_truncated"] == "failed"
    maps = sorted(p.relative_to(local) for p in local.rglob("*.nii.gz"))
    assert maps == sorted(p.relative_to(on_ray) for p in on_ray.rglob("*.nii.gz"))
    assert len(maps) == 6
    for rel in maps:
        a, b = nib.load(local / rel), nib.load(on_ray / rel)
        assert np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
        assert a.header.binaryblock == b.header.binaryblock  # same grid, affine, data type
        assert _metadata(local / rel) == _metadata(on_ray / rel)
    assert not list(on_ray.rglob(".lrpv-*"))  # no temporary file left by a worker

    stamps = _stamps(local)  # a local run's finished cases are finished for Ray too
    assert main(args + ["--out", str(local), "--executor", "ray", "--quiet"]) == 1  # the truncated case again
    rows = _summary(local)
    assert [rows[c]["status"] for c in DEMO_CASES] == ["skipped"] * 3
    assert _stamps(local) == stamps


@pytest.mark.slow
def test_a_killed_workers_case_is_retried_and_a_resumed_run_skips_finished_cases(
        ray_instance, tmp_path: Path, tiny_card: Path, write_case, monkeypatch, capsys) -> None:
    for i, name in enumerate(("a", "victim", "doomed", "z")):
        write_case(tmp_path / "in" / f"{name}.nii.gz", seed=40 + i)
    out = tmp_path / "out"
    args = ["--model", str(tiny_card), "--method", "lrp", str(tmp_path / "in"), "--out", str(out),
            "--executor", "ray", "--workers", "2", "--max-retries", "1"]
    # the worker that takes 'victim' kills itself (SIGKILL) on the first attempt; 'doomed' on every attempt
    monkeypatch.setenv(FAULT_ENV, "victim,doomed:9")

    assert main(args) == 1
    err = capsys.readouterr().err
    assert "4 cases: 3 ok, 0 skipped, 1 failed" in err
    rows = _summary(out)
    assert list(rows) == ["a", "doomed", "victim", "z"]  # input order (the folder's, sorted)
    assert rows["victim"]["status"] == "ok" and "attempt 2: the worker running it before died" in rows["victim"]["note"]
    assert nib.load(out / "victim" / "lrp-epsilon-plus.nii.gz").shape == (16, 18, 14)
    assert rows["doomed"]["status"] == "failed"
    assert rows["doomed"]["error"].startswith("WorkerLost: its Ray worker died on each of 2 attempt(s); last: ")
    assert not (out / "doomed").exists()
    for case in ("a", "z"):
        assert rows[case]["status"] == "ok" and "attempt" not in rows[case]["note"]
        assert abs(float(rows[case]["lrp-epsilon-plus.conservation_error"])) < 1e-5

    stamps = _stamps(out)
    monkeypatch.delenv(FAULT_ENV)
    assert main(args) == 0  # resumed: only the failed case runs again
    rows = _summary(out)
    assert [rows[c]["status"] for c in ("a", "doomed", "victim", "z")] == ["skipped", "ok", "skipped", "skipped"]
    assert {p: t for p, t in _stamps(out).items() if p.parent.name != "doomed"} == stamps  # untouched
    capsys.readouterr()
    assert main(args) == 0  # all done: no worker is started
    assert "Ray: up to" not in capsys.readouterr().err
    assert {r["status"] for r in _table(out)} == {"skipped"}


@pytest.mark.slow
def test_gpu_requests_a_cluster_cannot_meet_are_usage_errors(ray_instance, tmp_path: Path, tiny_card: Path,
                                                             write_case, capsys) -> None:
    path = write_case(tmp_path / "in" / "g.nii.gz")
    base = ["--model", str(tiny_card), str(path), "--out", str(tmp_path / "out"), "--executor", "ray"]
    assert main(base + ["--device", "cuda"]) == 2
    assert "--device cuda, but the Ray cluster has no GPUs" in capsys.readouterr().err
    assert main(base + ["--gpus-per-task", "1"]) == 2
    assert "--gpus-per-task 1, but the Ray cluster has 0 GPUs" in capsys.readouterr().err
    assert main(base + ["--device", "cpu", "--gpus-per-task", "0.5"]) == 2
    assert "would hold GPUs nobody uses" in capsys.readouterr().err
    assert not (tmp_path / "out" / "summary.csv").exists()
    assert ray_instance.is_initialized()


# -- the graph and revise commands on Ray ------------------------------------------------


@pytest.mark.slow
def test_graph_built_on_a_ray_worker_is_the_local_graph(ray_instance, tmp_path: Path) -> None:
    from viewer.cli.graph import main as graph_main
    from viewer.models.demo import demo_paths

    paths = demo_paths("case_right_small")
    args = ["--model", str(paths.model3d), str(paths.scan), "--width", "3,2", "--device", "cpu"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a worker with one CPU computes
    try:
        assert graph_main(args + ["--out", str(tmp_path / "local")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert graph_main(args + ["--out", str(tmp_path / "ray"), "--executor", "ray", "--workers", "1"]) == 0
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    graphs = [json.loads((folder / "graph.json").read_text()) for folder in (local, on_ray)]
    assert [g.pop("created") for g in graphs] != [None, None]  # when each was written: all else is equal
    assert graphs[1] == graphs[0] and graphs[0]["target"]["description"] == "lesion right"
    assert (on_ray / "graph.png").read_bytes() == (local / "graph.png").read_bytes()  # drawn over the same input
    maps = sorted(p.relative_to(local) for p in local.rglob("*.nii.gz"))
    assert maps and maps == sorted(p.relative_to(on_ray) for p in on_ray.rglob("*.nii.gz"))
    for rel in maps:
        assert np.array_equal(np.asarray(nib.load(local / rel).dataobj), np.asarray(nib.load(on_ray / rel).dataobj))


@pytest.mark.slow
def test_revise_ranks_channels_on_ray_as_it_does_locally(ray_instance, tmp_path: Path, monkeypatch, capsys) -> None:
    from safetensors.torch import load_file

    from viewer.cli import revise_scores
    from viewer.cli.revise import main as revise_main

    monkeypatch.setattr(revise_scores, "CHUNK", 2)  # five reference cases in three tasks: 2, 2 and 1
    cases = DEMO / "shortcut2d"
    with open(cases / "reference.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[:5]  # all five carry the marker
    listing = tmp_path / "data.csv"
    listing.write_text("path,label\n" + "".join(f"{cases / r['path']},{r['label']}\n" for r in rows))
    args = ["--model", str(DEMO / "demo2d_shortcut.toml"), "--data", str(listing), "--region-pattern",
            "{stem}_marker.nii.gz", "--mode", "prune", "--fraction", "0.1"]
    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a worker with one CPU computes
    try:
        assert revise_main(args + ["--out", str(tmp_path / "local" / "pruned.toml"), "--quiet"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert revise_main(args + ["--out", str(tmp_path / "ray" / "pruned.toml"), "--executor", "ray"]) == 0
    err = capsys.readouterr().err
    assert "note: Ray: up to 2 worker(s)" in err and "ranking channels by relevance on 5 reference case(s)" in err
    local = json.loads((tmp_path / "local" / "revise_report.json").read_text())
    on_ray = json.loads((tmp_path / "ray" / "revise_report.json").read_text())
    assert on_ray["channels"] == local["channels"] and local["channels"]["selected"] > 0
    a = load_file(tmp_path / "local" / "pruned.safetensors")
    b = load_file(tmp_path / "ray" / "pruned.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same channels switched off
