"""Cost of each attribution method relative to one input gradient, same process.

Runs every registered method on MONAI's DenseNet121 (3D, 1 channel, 3 classes, eval
mode, random weights) and prints each method's best wall time and its ratio to one plain
input gradient (forward + full backward to the input) timed just before it, the median
over ``--repeats`` such pairs. Multi-pass settings are printed next to each method, because their cost
scales with them (IG ≈ steps / batch gradients of a batch, occlusion ≈ windows /
batch forward passes of a batch). Times are this process's CPU time on one thread by
default, so other jobs on a shared machine disturb the ratios little; on a GPU use
``--clock wall``.

    python benchmarks/bench_methods.py                 # 96³, the issue's setting
    python benchmarks/bench_methods.py --size 48 --repeats 2
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import torch


CLOCK = time.process_time


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = CLOCK()
        fn()
        best = min(best, CLOCK() - start)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="edge of the cubic input (default 96)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ig-steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4, help="batch size of multi-pass methods")
    parser.add_argument("--smoothgrad-samples", type=int, default=8)
    parser.add_argument("--occlusion-patch", type=int, default=0, help="default: size / 2")
    parser.add_argument("--surrogate-samples", type=int, default=16)
    parser.add_argument("--skip", nargs="*", default=[], help="method names to leave out")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: this process's CPU time (robust on a shared machine; default); wall: wall clock")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)

    from monai.networks.nets import DenseNet121

    from viewer.explain import METHODS, explain
    from viewer.explain.passes import forward, frozen_parameters, input_gradients
    from viewer.explain.target import Target

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = DenseNet121(spatial_dims=3, in_channels=1, out_channels=3).eval().to(device)
    x = torch.randn(1, 1, args.size, args.size, args.size, device=device)
    target = Target.cls(0)
    patch = args.occlusion_patch or args.size // 2
    region = max(1, args.size // 4)
    settings: dict[str, dict[str, Any]] = {
        "gradcam": {"layer": "class_layers.relu"},
        "gradcampp": {"layer": "class_layers.relu"},
        "smoothgrad": {"samples": args.smoothgrad_samples, "batch_size": args.batch},
        "integrated_gradients": {"steps": args.ig_steps, "batch_size": args.batch},
        "occlusion": {"patch": patch, "stride": patch, "batch_size": args.batch},
        "kernel_shap": {"samples": args.surrogate_samples, "region_size": region, "batch_size": args.batch},
        "lime": {"samples": args.surrogate_samples, "region_size": region, "batch_size": args.batch},
    }

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def gradient() -> None:
        with frozen_parameters(model):
            input_gradients(model, x, target)
        sync()

    def plain_forward() -> None:
        with torch.no_grad():
            forward(model, x)
        sync()

    gradient()  # warm-up (allocator, kernels)

    def paired(fn: Callable[[], Any]) -> tuple[float, float]:
        """Best time of ``fn`` and its median ratio to a gradient timed just before it.

        Pairing each run with an adjacent reference keeps the ratio meaningful on a
        machine whose load changes while the benchmark runs.
        """
        times, ratios = [], []
        for _ in range(args.repeats):
            ref = best_time(gradient, 1)
            t = best_time(fn, 1)
            times.append(t)
            ratios.append(t / ref)
        ratios.sort()
        return min(times), ratios[len(ratios) // 2]

    reference = best_time(gradient, args.repeats)
    rows = [("forward only", *paired(plain_forward), "no_grad")]
    for name in METHODS:
        if name in args.skip:
            continue
        params = settings.get(name, {})

        def run(name: str = name, params: dict[str, Any] = params) -> None:
            explain(model, x, name, target=0, **params)
            sync()

        try:
            run()  # warm-up, and a check that the method is available
        except (ImportError, NotImplementedError) as exc:
            rows.append((name, float("nan"), float("nan"), f"unavailable: {exc}"))
            continue
        rows.append((name, *paired(run), ", ".join(f"{k}={v}" for k, v in params.items())))

    print(f"DenseNet121 3D, input {args.size}³, {device}, torch threads {torch.get_num_threads()}, {args.clock} time, "
          f"{args.repeats} paired run(s); reference: one input gradient = {reference * 1000:.0f} ms (best)")
    print(f"{'method':<22} {'ms (best)':>10} {'× gradient':>11}  settings")
    print(f"{'input gradient':<22} {reference * 1000:10.0f} {1.0:11.2f}  reference")
    for name, seconds, ratio, note in rows:
        print(f"{name:<22} {seconds * 1000:10.0f} {ratio:11.2f}  {note}")


if __name__ == "__main__":
    main()
