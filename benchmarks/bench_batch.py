"""Throughput of ``lrp-viewer batch`` against a plain Python loop over the same engine.

Writes 20 NIfTI cases (the demo cases with added noise) to a temporary folder, then
explains them with the 3D demo model twice, alternating, in the same process:

* loop:  load_model once; per case load_scan + prepare + lrp + save_nifti;
* batch: ``viewer.cli.batch.main([...])`` in-process (model loading, case discovery,
  prediction, NIfTI with metadata, summary.csv rewritten after every case, resume
  bookkeeping).

Prints cases per second and the batch command's overhead relative to the loop (the
target is under 10 %). ``--lps`` stores the cases in LPS voxel order, so the batch's
default ``--grid input`` puts every map back on the input's grid (header re-read,
transposed and flipped copy); the ``--grid ras`` variant shows what that costs.
Run: ``python benchmarks/bench_batch.py [--cases 20] [--repeats 3] [--card CARD] [--lps]``.

``--ray`` compares the executors instead (needs ``pip install "lrp-viewer[cluster]"``):
the batch command on one local Ray instance (started once, its start time reported
apart) with 1 and 2 workers of one CPU each, against the local executor with torch's
default threads and with one thread (what one Ray worker of one CPU computes with).
Each Ray run's time includes starting its workers and shipping them the model; the
overhead per case is (Ray with 1 worker - local with 1 thread) / cases. ``--gpus N``
gives each Ray worker N GPUs (0.5: two workers share one GPU).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from viewer.cli.batch import main as batch_main  # noqa: E402
from viewer.explain import lrp  # noqa: E402
from viewer.io import load_scan, save_nifti  # noqa: E402
from viewer.models import load_model  # noqa: E402
from viewer.models.demo import DEMO, demo_cases  # noqa: E402


def make_cases(folder: Path, n: int, lps: bool = False) -> list[Path]:
    """``n`` demo volumes with independent Gaussian noise (5 % of the intensity range), optionally stored LPS."""
    rng = np.random.default_rng(0)
    sources = [nib.load(DEMO / f"{name}.nii.gz") for name in demo_cases() if not name.startswith("case2d")]
    paths = []
    for i in range(n):
        src = sources[i % len(sources)]
        data = np.asarray(src.dataobj, dtype=np.float32)
        data = data + rng.normal(0, 0.05 * float(np.ptp(data)), data.shape).astype(np.float32)
        path = folder / f"case{i:03d}.nii.gz"
        img = nib.Nifti1Image(data, src.affine)
        if lps:
            current = nib.orientations.io_orientation(src.affine)
            img = img.as_reoriented(nib.orientations.ornt_transform(current, nib.orientations.axcodes2ornt("LPS")))
        nib.save(img, path)
        paths.append(path)
    return paths


def plain_loop(card: Path, cases: list[Path], out: Path) -> None:
    model = load_model(card)
    for path in cases:
        scan = load_scan(path)
        x, to_scan = model.prepare(scan)
        r = lrp(model.module, x, preset="epsilon-plus")
        folder = out / path.name.split(".")[0]
        folder.mkdir(parents=True, exist_ok=True)
        save_nifti(to_scan(r.relevance), like=scan, path=folder / "lrp-epsilon-plus.nii.gz")


def batch_command(card: Path, inputs: Path, out: Path, extra: list[str]) -> None:
    code = batch_main(["--model", str(card), "--method", "lrp:epsilon-plus", "--device", "cpu", "--quiet",
                       *extra, str(inputs), "--out", str(out)])
    if code != 0:
        raise SystemExit(f"batch exited with {code}")


def timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): CPU time is steadier on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def one_thread(fn: Callable, *args) -> None:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fn(*args)
    finally:
        torch.set_num_threads(threads)


def executors(args: argparse.Namespace) -> None:
    """Local vs Ray (1 and 2 workers) on the same machine, one Ray instance for all runs."""
    import logging
    import os

    import ray
    import torch

    cpus = os.cpu_count() or 2
    start = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level=logging.ERROR)
    ray_start = time.perf_counter() - start
    device = ["--device", "cuda", "--gpus-per-task", str(args.gpus)] if args.gpus else ["--device", "cpu"]
    on_ray = ["--executor", "ray", "--cpus-per-task", "1", *device]
    local = ["--device", "cuda"] if args.gpus else ["--device", "cpu"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            cohort, single = root / "cases", root / "one"
            cohort.mkdir()
            single.mkdir()
            paths = make_cases(cohort, args.cases, args.lps)
            shutil.copy(paths[0], single)
            batch_command(args.card, cohort, root / "warmup", local)

            def variant(inputs: Path, extra: list[str], threads: int | None = None) -> Callable[[Path], None]:
                if threads == 1:
                    return lambda out: one_thread(batch_command, args.card, inputs, out, extra)
                return lambda out: batch_command(args.card, inputs, out, extra)

            variants = {
                f"local ({torch.get_num_threads()} threads)": variant(cohort, local),
                "local (1 thread)": variant(cohort, local, 1),
                "ray, 1 worker": variant(cohort, [*on_ray, "--workers", "1"]),
                "ray, 2 workers": variant(cohort, [*on_ray, "--workers", "2"]),
                "one case: local (1 thread)": variant(single, local, 1),
                "one case: ray, 1 worker": variant(single, [*on_ray, "--workers", "1"]),
            }
            times: dict[str, list[float]] = {name: [] for name in variants}
            for r in range(args.repeats):  # alternate, so drifting machine load hits every variant alike
                for i, (name, run) in enumerate(variants.items()):
                    out = root / f"run{r}_{i}"
                    wall = time.perf_counter()
                    run(out)
                    times[name].append(time.perf_counter() - wall)
                    shutil.rmtree(out)
    finally:
        ray.shutdown()
    best = {name: min(values) for name, values in times.items()}
    print(f"{args.cases} cases, {args.card.name}, LRP epsilon-plus, {'GPU' if args.gpus else 'CPU'}, {cpus} CPUs; "
          f"best of {args.repeats} (median in brackets); Ray instance started once in {ray_start:.1f} s")
    print(f"{'executor':<28}{'wall s':>9}{'cases/s':>9}{'(median s)':>12}")
    for name, values in times.items():
        n = 1 if name.startswith("one case") else args.cases
        print(f"{name:<28}{best[name]:>9.2f}{n / best[name]:>9.2f}{statistics.median(values):>12.2f}")
    fixed = best["one case: ray, 1 worker"] - best["one case: local (1 thread)"]
    per_case = (best["ray, 1 worker"] - best["local (1 thread)"] - fixed) / max(1, args.cases - 1)
    local_case = best["local (1 thread)"] / args.cases
    print(f"Ray fixed cost per run (start a worker, ship it the model): {fixed:.2f} s")
    print(f"Ray overhead per case after that: {per_case * 1000:+.0f} ms ({per_case / local_case:+.0%} of a case's "
          f"{local_case * 1000:.0f} ms on one local thread)")
    print(f"2 workers vs 1: {best['ray, 1 worker'] / best['ray, 2 workers']:.2f}x the cases/s; without the fixed "
          f"cost {(best['ray, 1 worker'] - fixed) / (best['ray, 2 workers'] - fixed):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--card", type=Path, default=DEMO / "demo3d.toml", help="model card (default: 3D demo)")
    parser.add_argument("--lps", action="store_true", help="store the cases in LPS voxel order")
    parser.add_argument("--ray", action="store_true", help="compare the local and Ray executors instead")
    parser.add_argument("--gpus", type=float, default=0.0, help="with --ray: GPUs per Ray worker")
    args = parser.parse_args()
    if args.ray:
        executors(args)
        return
    card = args.card
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inputs = root / "cases"
        inputs.mkdir()
        cases = make_cases(inputs, args.cases, args.lps)
        plain_loop(card, cases[:2], root / "warmup")  # imports, allocator, LRP copy cache
        times: dict[str, list[tuple[float, float]]] = {
            "loop": [], "batch": [], "batch --grid ras": [], "batch --batch-size 4": [],
            "batch (resume, all done)": []}
        for r in range(args.repeats):  # alternate, so drifting machine load hits every variant alike
            times["loop"].append(timed(plain_loop, card, cases, root / f"loop{r}"))
            times["batch"].append(timed(batch_command, card, inputs, root / f"batch{r}", []))
            times["batch --grid ras"].append(timed(batch_command, card, inputs, root / f"ras{r}", ["--grid", "ras"]))
            times["batch --batch-size 4"].append(
                timed(batch_command, card, inputs, root / f"b4_{r}", ["--batch-size", "4"]))
            times["batch (resume, all done)"].append(timed(batch_command, card, inputs, root / f"batch{r}", []))
            for name in (f"loop{r}", f"batch{r}", f"ras{r}", f"b4_{r}"):
                shutil.rmtree(root / name)
    ref_wall = min(w for w, _ in times["loop"])
    ref_cpu = min(c for _, c in times["loop"])
    order = "LPS" if args.lps else "RAS"
    print(f"{args.cases} {order} cases, {card.name}, LRP epsilon-plus, CPU; best of {args.repeats} "
          "(median wall in brackets)")
    print(f"{'variant':<26}{'wall s':>9}{'cases/s':>9}{'vs loop':>9}{'CPU s':>9}{'vs loop':>9}  {'(median wall)':>14}")
    for name, values in times.items():
        wall = min(w for w, _ in values)
        cpu = min(c for _, c in values)
        median = statistics.median(w for w, _ in values)
        print(f"{name:<26}{wall:>9.2f}{args.cases / wall:>9.2f}{wall / ref_wall:>8.2f}x"
              f"{cpu:>9.2f}{cpu / ref_cpu:>8.2f}x  {median:>14.2f}")
    wall = min(w for w, _ in times["batch"]) / ref_wall - 1
    cpu = min(c for _, c in times["batch"]) / ref_cpu - 1
    print(f"batch command overhead vs plain loop: {wall:+.1%} wall, {cpu:+.1%} CPU (target < +10%)")


if __name__ == "__main__":
    main()
