"""Cost of LRP relative to one input gradient, measured in the same process.

    python benchmarks/bench_lrp.py [--size 96] [--repeats 3] [--models densenet121,resnet18]

For each model: median wall time and peak memory of one input gradient (parameters
frozen, input requires grad), of our ``epsilon``, ``epsilon-plus`` and
``epsilon-gamma-box`` presets, and of zennit's EpsilonPlus / EpsilonGammaBox when
zennit is installed; printed as ratios to the gradient.

Time: wall clock and process CPU time (the second is steadier on a machine shared
with other work). After one warm-up gradient and one LRP call that prepares the
cached model copy, the methods are run
in turn, ``--repeats`` rounds, and the median per method is taken, so load from
other processes hits all methods alike.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the level before the
call.  On CPU torch's allocations are invisible to tracemalloc, so each method runs
in a fresh subprocess with ``MALLOC_MMAP_THRESHOLD_=65536`` (large blocks are
returned to the system when freed, so RSS follows live tensors) and a thread
samples the RSS every millisecond during the second call; the figure is the peak
above the RSS just before that call.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from viewer.explain.lrp import lrp  # noqa: E402


class PeakRSS:
    """Peak resident memory above the starting level, sampled in a thread."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        gc.collect()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def used(self) -> int:
        return self.peak - self.base


def peak_memory(fn, device: torch.device) -> int:
    """Peak bytes of one call of ``fn`` above the level just before it."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with PeakRSS() as mem:
        fn()
    return mem.used


def build(name: str, size: int):
    from monai.networks import nets

    if name == "densenet121":
        model = nets.DenseNet121(spatial_dims=3, in_channels=1, out_channels=3)
    elif name == "resnet18":
        model = nets.resnet18(spatial_dims=3, n_input_channels=1, num_classes=3)
    elif name == "smallcnn":
        model = torch.nn.Sequential(
            torch.nn.Conv3d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool3d(2),
            torch.nn.Conv3d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool3d(1),
            torch.nn.Flatten(), torch.nn.Linear(32, 3))
    else:
        raise SystemExit(f"unknown model {name}")
    x = torch.randn(2, 1, size, size, size)
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval(), x[:1].clone()


def methods(model, x, device, use_zennit: bool) -> dict:
    frozen = copy.deepcopy(model)
    for p in frozen.parameters():
        p.requires_grad_(False)

    def gradient():
        xx = x.clone().requires_grad_(True)
        out = frozen(xx)
        (g,) = torch.autograd.grad(out[:, 0].sum(), xx)
        return g

    runs = {"input gradient": gradient}
    for preset in ("epsilon", "epsilon-plus", "epsilon-gamma-box"):
        runs[f"lrp {preset}"] = (lambda p=preset: lrp(model, x, target=0, preset=p))
    if use_zennit:
        import zennit.attribution
        import zennit.composites

        zmodel = copy.deepcopy(model)
        for p in zmodel.parameters():
            p.requires_grad_(False)
        for label, make in (
            # no canonizer: zennit's SequentialMergeBatchNorm pairs the wrong layers in
            # MONAI's DenseNet (shape error); without it BatchNorm gets zennit's Pass rule
            ("zennit EpsilonPlus", lambda: zennit.composites.EpsilonPlus()),
            ("zennit EpsilonGammaBox", lambda: zennit.composites.EpsilonGammaBox(low=-3.0, high=3.0)),
        ):
            def run(make=make):
                with zennit.attribution.Gradient(model=zmodel, composite=make()) as attr:
                    onehot = torch.zeros(1, 3, device=device)
                    onehot[:, 0] = 1
                    attr(x.clone(), attr_output=lambda o: onehot * o)
            runs[label] = run
    return runs


def worker(name: str, label: str, size: int, device: torch.device) -> None:
    """Subprocess entry: print the peak memory of the second call of one method."""
    torch.manual_seed(0)
    model, x = build(name, size)
    fn = methods(model.to(device), x.to(device), device, label.startswith("zennit"))[label]
    fn()
    print(peak_memory(fn, device))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="densenet121,resnet18")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-zennit", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--worker", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.worker:
        worker(args.worker[0], args.worker[1], args.size, device)
        return
    try:
        import zennit  # noqa: F401
        use_zennit = not args.no_zennit
    except ImportError:
        use_zennit = False

    print(f"device={device} size={args.size}^3 repeats={args.repeats} threads={torch.get_num_threads()}")
    print(f"{'model':<12} {'method':<24} {'wall s':>8} {'x grad':>7} {'cpu s':>8} {'x grad':>7} "
          f"{'peak MiB':>9} {'x grad':>7}")
    for name in args.models.split(","):
        torch.manual_seed(0)
        model, x = build(name, args.size)
        model, x = model.to(device), x.to(device)
        runs = methods(model, x, device, use_zennit)
        times: dict[str, list[float]] = {k: [] for k in runs}
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        runs["input gradient"]()  # warm-up: allocator and convolution kernels
        runs["lrp epsilon"]()  # warm-up: also prepares LRP's cached model copy (shared by all presets)
        for _ in range(args.repeats):
            for label, fn in runs.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[label].append(time.perf_counter() - t0)
                cpu[label].append(time.process_time() - c0)
        peaks = {}
        for label, fn in runs.items():
            if args.no_memory:
                peaks[label] = float("nan")
            elif device.type == "cuda":
                peaks[label] = peak_memory(fn, device)
            else:
                env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
                res = subprocess.run(
                    [sys.executable, __file__, "--worker", name, label, "--size", str(args.size), "--device", "cpu"],
                    capture_output=True, text=True, env=env, check=True)
                peaks[label] = int(res.stdout.strip().splitlines()[-1])
        t_ref = statistics.median(times["input gradient"])
        c_ref = statistics.median(cpu["input gradient"])
        m_ref = max(peaks["input gradient"], 1)
        for label in runs:
            t, c = statistics.median(times[label]), statistics.median(cpu[label])
            m = peaks[label]
            print(f"{name:<12} {label:<24} {t:8.3f} {t / t_ref:6.2f}x {c:8.3f} {c / c_ref:6.2f}x "
                  f"{m / 2**20:9.1f} {m / m_ref:6.2f}x", flush=True)


if __name__ == "__main__":
    main()
