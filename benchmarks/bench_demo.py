"""Time from a cold process start to a finished LRP map for the bundled 3D demo.

    python benchmarks/bench_demo.py [--repeats 3] [--threads N]

Each repeat runs in a fresh ``python -c`` subprocess so imports are cold (as when a
user starts ``lrp-viewer``). Stages: interpreter start, ``import viewer.explain`` (torch
included), ``load_scan`` + ``load_model``, ``prepare`` + ``lrp``. The reference, measured
in the same subprocess, is one input-gradient pass (forward + backward) of the same
model on the same input; the table shows each stage as a ratio to it. Target for the
whole path: under 5 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
if {threads}:
    torch.set_num_threads({threads})
import viewer.explain
from viewer.explain import lrp
t_import = time.perf_counter()
from viewer.io import load_scan
from viewer.models import load_model
from viewer.models.demo import demo_paths
paths = demo_paths()
scan = load_scan(paths.scan)
model = load_model(paths.model3d)
t_load = time.perf_counter()
x, to_scan = model.prepare(scan)
low, high = model.input_range
r = lrp(model.module, x, target=None, preset=model.preset, low=low, high=high)
relevance = to_scan(r.relevance)
t_lrp = time.perf_counter()
# reference: one input-gradient pass of the same model on the same input (after warm-up above)
g = []
for _ in range(3):
    s = time.perf_counter()
    xi = x.clone().requires_grad_(True)
    model.module(xi).max().backward()
    g.append(time.perf_counter() - s)
w = []
for _ in range(3):  # warm LRP, for the per-map cost once the app runs
    s = time.perf_counter()
    lrp(model.module, x, target=None, preset=model.preset, low=low, high=high)
    w.append(time.perf_counter() - s)
print(json.dumps(dict(t0=t0, t_map=t_lrp, imports=t_import - t0, load=t_load - t_import, explain=t_lrp - t_load,
                      gradient=min(g), lrp_warm=min(w), shape=list(relevance.shape))))
"""


def run_once(threads: int) -> dict:
    start = time.perf_counter()  # monotonic: comparable with the child's perf_counter on Linux
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(threads=threads)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    total = time.perf_counter() - start
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # perf_counter is CLOCK_MONOTONIC on Linux, shared by parent and child, so the child's
    # stamps measure from the moment the parent launched it
    result["startup"] = result.pop("t0") - start
    result["total"] = result.pop("t_map") - start
    result["process"] = total
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads in the child (0: torch's default)")
    args = parser.parse_args(argv)
    runs = [run_once(args.threads) for _ in range(args.repeats)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "shape"}
    ref = med["gradient"]
    print(f"3D demo, cold process to first LRP map, median of {args.repeats} runs "
          f"(reference: one input-gradient pass = {ref * 1000:.1f} ms)")
    print(f"{'stage':44s} {'seconds':>9s} {'× gradient':>11s}")
    rows = [
        ("interpreter start (to first line)", med["startup"]),
        ("import viewer.explain (torch included)", med["imports"]),
        ("load_scan + load_model", med["load"]),
        ("prepare + lrp + to_scan (first, cold)", med["explain"]),
        ("total, process start to LRP map", med["total"]),
        ("lrp once warm (per map in a running app)", med["lrp_warm"]),
        ("reference: input gradient", ref),
    ]
    for name, value in rows:
        print(f"{name:44s} {value:9.3f} {value / ref:11.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
