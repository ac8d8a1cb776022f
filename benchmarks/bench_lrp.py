"""Cost of LRP relative to one input gradient, measured in the same process.

    python benchmarks/bench_lrp.py [--size 96] [--repeats 3] [--models densenet121,resnet18]
    python benchmarks/bench_lrp.py --models resnet50,vit_b_16,swin_t,efficientnet_b0 --size 224
    python benchmarks/bench_lrp.py --models swinunetr --size 64 --precision float32,bfloat16

Models: ``densenet121``, ``resnet18``, ``swinunetr`` (3D, ``--size``³ voxels, one
channel), ``resnet50``, ``vit_b_16``, ``swin_t``, ``efficientnet_b0`` (torchvision,
2D, ``--size``² pixels, three channels), ``smallcnn``; random weights with BatchNorm
statistics from a few training-mode passes.

For each model: median wall time and peak memory of one input gradient (parameters
frozen, input requires grad), of our ``epsilon``, ``epsilon-plus`` and
``epsilon-gamma-box`` presets (plus ``attn-lrp`` for models with attention, and each
of them once per ``--precision``), and of zennit's EpsilonPlus / EpsilonGammaBox when
zennit is installed; printed as ratios to the gradient, with the share of the explained
value that LRP's ledger reports as absorbed (biases and stabilisers).

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


TWO_D = {"resnet50", "vgg16", "vit_b_16", "swin_t", "efficientnet_b0"}


def build(name: str, size: int):
    from monai.networks import nets

    if name in TWO_D:
        import torchvision.models as tv

        kw = {"image_size": size} if name == "vit_b_16" else {}
        model = getattr(tv, name)(num_classes=3, **kw)
        for m in model.modules():  # torchvision's ViT starts with an all-zero head
            if isinstance(m, torch.nn.Linear) and not m.weight.any():
                torch.nn.init.normal_(m.weight, std=0.05)
        x = torch.randn(2, 3, size, size)
        model.train()
        with torch.no_grad():
            model(x)
        return model.eval(), x[:1].clone()
    if name == "swinunetr":
        model = nets.SwinUNETR(in_channels=1, out_channels=2, feature_size=48, spatial_dims=3)
        return model.eval(), torch.randn(1, 1, size, size, size)
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


def _target(model, x):
    """Class 0 of a classifier; channel 1 over the whole output of a segmentation model."""
    from viewer.explain.target import Target

    with torch.no_grad():
        out = model(x)
    if out.ndim <= 2:
        return 0, lambda o: o[:, 0].sum()
    return Target.region(1, torch.ones(out.shape[2:], dtype=torch.bool).cpu().numpy()), lambda o: o[:, 1].sum()


def methods(model, x, device, use_zennit: bool, precisions=("float32",)) -> dict:
    from viewer.explain.lrp import has_attention

    frozen = copy.deepcopy(model)
    for p in frozen.parameters():
        p.requires_grad_(False)
    target, score = _target(frozen, x)

    def gradient():
        xx = x.clone().requires_grad_(True)
        out = frozen(xx)
        (g,) = torch.autograd.grad(score(out), xx)
        return g

    runs = {"input gradient": gradient}
    presets = ["epsilon", "epsilon-plus", "epsilon-gamma-box"] + (["attn-lrp"] if has_attention(model) else [])
    for precision in precisions:
        tag = "" if precision == "float32" else f" {precision}"
        for preset in presets:
            runs[f"lrp {preset}{tag}"] = (
                lambda p=preset, q=precision: lrp(model, x, target=target, preset=p, precision=q))
    if use_zennit and not has_attention(model):  # zennit's rules do not cover attention
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
                    attr(x.clone(), attr_output=lambda o: torch.zeros_like(o).index_fill_(1, torch.tensor([0]), 1) * o)
            runs[label] = run
    return runs


def worker(name: str, label: str, size: int, device: torch.device, precisions) -> None:
    """Subprocess entry: print the peak memory of the second call of one method."""
    torch.manual_seed(0)
    model, x = build(name, size)
    fn = methods(model.to(device), x.to(device), device, label.startswith("zennit"), precisions)[label]
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
    ap.add_argument("--precision", default="float32", help="comma-separated: float32,bfloat16,float16")
    ap.add_argument("--worker", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    precisions = tuple(args.precision.split(","))
    if args.worker:
        worker(args.worker[0], args.worker[1], args.size, device, precisions)
        return
    try:
        import zennit  # noqa: F401
        use_zennit = not args.no_zennit
    except ImportError:
        use_zennit = False

    print(f"device={device} size={args.size} repeats={args.repeats} threads={torch.get_num_threads()}")
    print(f"{'model':<16} {'method':<28} {'wall s':>8} {'x grad':>7} {'cpu s':>8} {'x grad':>7} "
          f"{'peak MiB':>9} {'x grad':>7} {'absorbed':>9}")
    for name in args.models.split(","):
        torch.manual_seed(0)
        model, x = build(name, args.size)
        model, x = model.to(device), x.to(device)
        runs = methods(model, x, device, use_zennit, precisions)
        times: dict[str, list[float]] = {k: [] for k in runs}
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        absorbed: dict[str, float] = {}
        runs["input gradient"]()  # warm-up: allocator and convolution kernels
        runs["lrp epsilon"]()  # warm-up: also prepares LRP's cached model copy (shared by all presets)
        for _ in range(args.repeats):
            for label, fn in runs.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0, c0 = time.perf_counter(), time.process_time()
                res = fn()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[label].append(time.perf_counter() - t0)
                cpu[label].append(time.process_time() - c0)
                if label.startswith("lrp"):
                    absorbed[label] = res.absorbed / res.explained
        peaks = {}
        for label, fn in runs.items():
            if args.no_memory:
                peaks[label] = float("nan")
            elif device.type == "cuda":
                peaks[label] = peak_memory(fn, device)
            else:
                env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
                res = subprocess.run(
                    [sys.executable, __file__, "--worker", name, label, "--size", str(args.size), "--device", "cpu",
                     "--precision", args.precision], capture_output=True, text=True, env=env, check=True)
                peaks[label] = int(res.stdout.strip().splitlines()[-1])
        t_ref = statistics.median(times["input gradient"])
        c_ref = statistics.median(cpu["input gradient"])
        m_ref = max(peaks["input gradient"], 1)
        for label in runs:
            t, c = statistics.median(times[label]), statistics.median(cpu[label])
            m = peaks[label]
            share = f"{absorbed[label]:9.3f}" if label in absorbed else f"{'':9s}"
            print(f"{name:<16} {label:<28} {t:8.3f} {t / t_ref:6.2f}x {c:8.3f} {c / c_ref:6.2f}x "
                  f"{m / 2**20:9.1f} {m / m_ref:6.2f}x {share}", flush=True)


if __name__ == "__main__":
    main()
