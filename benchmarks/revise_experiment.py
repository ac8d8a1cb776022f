"""Attribution-guided training against backpropagation, measured (results: docs/revise.md).

    python benchmarks/revise_experiment.py                 # the full experiment (~30-40 min, 1 thread)
    python benchmarks/revise_experiment.py --seeds 2 --quick   # a smoke run

Three settings on the 2D shortcut demo task (viewer.revise.shortcut_demo):

1. **correct** — the shipped shortcut model (demo2d_shortcut) is revised on a small
   decorrelated set (marker at random; a fresh draw of 60 slices per seed) with every
   arm: the top-p channels by relevance on the marker, the same number of random
   channels in each layer (the control), the top-p by Taylor score, full fine-tuning
   (p = 100 %), and full fine-tuning with the input-gradient penalty (RRR). Same
   cases, same order, same epochs, same optimiser for every arm. Scored on 300 fresh
   decorrelated and 300 fresh original-distribution slices.
2. **prune** — the same model, the top-p channels by marker relevance (or random /
   magnitude) zeroed, no training: accuracy and marker share against fraction pruned
   and MACs saved.
3. **preserve** — task A (dark lesions only) then task B (bright lesions only): a
   model trained on A (as the demo models are trained) is fine-tuned on 150 slices of
   B with the top-p channels by relevance for A frozen (or random / Taylor ones), or
   with nothing frozen; accuracy kept on A against accuracy reached on B.

Prints markdown tables (mean ± sd over seeds) and the cost of one training step split
into forward+backward and optimiser step; writes the raw numbers as JSON and the plot.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "resources"))

from build_demo import train as train_from_scratch  # noqa: E402

from viewer.models import load_model  # noqa: E402
from viewer.models.architectures import LesionSideNet  # noqa: E402
from viewer.models.demo import DEMO  # noqa: E402
from viewer.models.demo_cases import SIDES, Template, make_case, random_lesion  # noqa: E402
from viewer.models.prepare import prepare_scan  # noqa: E402
from viewer.revise.channels import channel_map  # noqa: E402
from viewer.revise.masked import full_plan, masked_plan, trainable  # noqa: E402
from viewer.revise.measures import accuracy, parameters_changed, region_share  # noqa: E402
from viewer.revise.prune import macs, prune  # noqa: E402
from viewer.revise.revise import CaseSet  # noqa: E402
from viewer.revise.scores import magnitude_scores, relevance_scores, taylor_scores  # noqa: E402
from viewer.revise.selection import random_like, top_fraction  # noqa: E402
from viewer.revise.shortcut_demo import SLICES, shortcut_cases, slice_template  # noqa: E402
from viewer.revise.train import TrainConfig, fine_tune  # noqa: E402

FRACTIONS = (0.01, 0.05, 0.10, 0.25)  # and 1.0 = full fine-tuning
LRP = {"low": 0.0, "high": 1.0}
TRAIN = TrainConfig(epochs=10, lr=1e-3, batch=32, weight_decay=1e-4)  # the CLI's defaults
RRR_WEIGHT = 0.03  # makes the penalty about as large as the cross-entropy at the start (Ross et al.'s rule)
N_REVISE, N_TEST = 60, 300


def case_set(name: str, cases, spec) -> CaseSet:
    x = torch.cat([prepare_scan(c.scan, spec)[0] for c in cases])
    region = torch.from_numpy(np.stack([c.marker[:, :, 0] for c in cases]))[:, None].bool()
    return CaseSet(name, x, torch.tensor([c.label for c in cases]), region)


def score(net, dec: CaseSet, orig: CaseSet) -> dict[str, float]:
    marked = dec.with_region()
    return {"decorrelated": accuracy(net, dec.x, dec.y), "original": accuracy(net, orig.x, orig.y),
            "marker_share": region_share(net, marked.x, marked.region, **LRP)}


def train_arm(base, revise_set: CaseSet, plan_of, config: TrainConfig, region=None):
    net = copy.deepcopy(base)
    plan = plan_of(net)
    outcome = fine_tune(net, revise_set.x, revise_set.y, plan, config, region)
    return net, outcome


def run_correct(base, spec, template, seeds, dec, orig, fractions, log) -> list[dict]:
    rows = []
    original = base.state_dict()
    total = sum(p.numel() for p in base.parameters())
    rows.append({"setting": "correct", "arm": "before", "p": 0.0, "seed": -1, **score(base, dec, orig)})
    for seed in seeds:
        rev = case_set("revise", shortcut_cases(template, N_REVISE, 2000 + seed, "decorrelated"), spec)
        cmap = channel_map(base, rev.x)
        t0 = time.perf_counter()
        marked = rev.with_region()
        rel = relevance_scores(base, cmap, marked.x, None, marked.region, **LRP)
        t_rel = time.perf_counter() - t0
        t0 = time.perf_counter()
        tay = taylor_scores(base, cmap, rev.x, rev.y)
        t_tay = time.perf_counter() - t0
        config = replace(TRAIN, seed=seed)
        arms = []
        for p in fractions:
            chosen = top_fraction(rel, p)
            arms += [("relevance", p, chosen, t_rel), ("random", p, random_like(chosen, seed), 0.0),
                     ("taylor", p, top_fraction(tay, p), t_tay)]
        for arm, p, mask, t_sel in arms:
            net, out = train_arm(base, rev, lambda n, m=mask: masked_plan(n, cmap, m), config)
            rows.append(_row("correct", arm, p, seed, net, out, original, total, t_sel, score(net, dec, orig)))
            log(rows[-1])
        for arm, cfg in (("full", config), ("rrr", replace(config, rrr_weight=RRR_WEIGHT))):
            region = rev.region.float() if arm == "rrr" else None
            net, out = train_arm(base, rev, full_plan, cfg, region)
            rows.append(_row("correct", arm, 1.0, seed, net, out, original, total, 0.0, score(net, dec, orig)))
            log(rows[-1])
    return rows


def _row(setting, arm, p, seed, net, out, original, total, t_sel, scores) -> dict:
    return {"setting": setting, "arm": arm, "p": p, "seed": seed, **scores,
            "changed": parameters_changed(original, net.state_dict()) / total,
            "updated": out.parameters_updated / total, "train_s": out.seconds, "select_s": t_sel,
            "optimizer_bytes": out.optimizer_state_bytes}


def run_prune(base, spec, template, seeds, dec, orig, fractions, log) -> list[dict]:
    rows = []
    for seed in seeds:
        rev = case_set("revise", shortcut_cases(template, N_REVISE, 2000 + seed, "decorrelated"), spec)
        cmap = channel_map(base, rev.x)
        marked = rev.with_region()
        rel = relevance_scores(base, cmap, marked.x, None, marked.region, **LRP)
        mag = magnitude_scores(base, cmap)
        total_macs = macs(cmap)
        for p in fractions:
            chosen = top_fraction(rel, p)
            for arm, mask in (("relevance", chosen), ("random", random_like(chosen, seed)),
                              ("magnitude", top_fraction(mag, p))):
                net = copy.deepcopy(base)
                prune(net, cmap, mask)
                rows.append({"setting": "prune", "arm": arm, "p": mask.fraction, "seed": seed,
                             "macs_saved": 1 - macs(cmap, mask) / total_macs, **score(net, dec, orig)})
                log(rows[-1])
    return rows


def lesion_slices(template: Template, n: int, seed: int, bright: bool, spec) -> CaseSet:
    """Balanced no lesion / left / right slices whose lesions are all bright (task A) or all dark (B)."""
    rng = np.random.default_rng(seed)
    classes = np.resize(np.arange(3), n)
    rng.shuffle(classes)
    xs = []
    for c in classes:
        plane = slice_template(template, int(rng.integers(SLICES[0], SLICES[1] + 1)))
        lesion = random_lesion(plane, rng, SIDES[int(c)]) if c else None
        if lesion is not None:
            lesion = replace(lesion, value=float(rng.uniform(1.2, 1.45) if bright else rng.uniform(0.1, 0.3)))
        scan, _ = make_case(plane, lesion, rng)
        xs.append(prepare_scan(scan, spec)[0])
    return CaseSet("bright" if bright else "dark", torch.cat(xs), torch.tensor(classes, dtype=torch.long))


def run_preserve(spec, args_card, template, seeds, fractions, log, quick: bool) -> list[dict]:
    torch.manual_seed(7)
    model_a = LesionSideNet(**args_card)
    train_a = lesion_slices(template, 300 if quick else 900, 3000, False, spec)
    # from scratch as the demo models are trained (BatchNorm statistics learnt), not as a revision
    train_from_scratch(model_a, train_a.x, train_a.y, epochs=6, batch=32, lr=3e-3, seed=7)
    test_a = lesion_slices(template, N_TEST, 3001, False, spec)
    test_b = lesion_slices(template, N_TEST, 3002, True, spec)
    rows = [{"setting": "preserve", "arm": "before", "p": 0.0, "seed": -1,
             "A": accuracy(model_a, test_a.x, test_a.y), "B": accuracy(model_a, test_b.x, test_b.y)}]
    log(rows[-1])
    total = sum(p.numel() for p in model_a.parameters())
    for seed in seeds:
        ref_a = lesion_slices(template, N_REVISE, 3100 + seed, False, spec)
        train_b = lesion_slices(template, 150, 3200 + seed, True, spec)
        cmap = channel_map(model_a, ref_a.x)
        rel = relevance_scores(model_a, cmap, ref_a.x, ref_a.y, None, **LRP)
        tay = taylor_scores(model_a, cmap, ref_a.x, ref_a.y)
        config = replace(TRAIN, seed=seed)
        arms = [("full", 0.0, None)]
        for p in (*fractions, 1.0):
            keep = top_fraction(rel, p)
            arms += [("relevance", p, keep), ("random", p, random_like(keep, seed)), ("taylor", p, top_fraction(tay, p))]
        for arm, p, keep in arms:
            if arm != "full" and p == 1.0 and arm != "relevance":
                continue  # freezing every channel is the same whatever ranks them
            plan_of = full_plan if keep is None else (lambda n, k=keep: masked_plan(n, cmap, k.complement(), True))
            net, out = train_arm(model_a, train_b, plan_of, config)
            rows.append({"setting": "preserve", "arm": arm if p < 1.0 else "head only", "p": p, "seed": seed,
                         "A": accuracy(net, test_a.x, test_a.y), "B": accuracy(net, test_b.x, test_b.y),
                         "updated": out.parameters_updated / total, "train_s": out.seconds,
                         "optimizer_bytes": out.optimizer_state_bytes})
            log(rows[-1])
    return rows


def step_costs(base, spec, template, steps: int) -> dict[str, dict[str, float]]:
    """Milliseconds per training step (batch 32), forward+backward and optimiser step apart.

    The arms take turns step by step and the median is kept, so that other work on a
    shared machine slows them alike rather than whichever ran last.
    """
    import contextlib

    rev = case_set("revise", shortcut_cases(template, 32, 99, "decorrelated"), spec)
    cmap = channel_map(base, rev.x)
    mag = magnitude_scores(base, cmap)
    arms = {}
    with contextlib.ExitStack() as stack:
        for name, mask in (("full", None), ("5 %", top_fraction(mag, 0.05)), ("25 %", top_fraction(mag, 0.25))):
            net = copy.deepcopy(base)
            plan = full_plan(net) if mask is None else masked_plan(net, cmap, mask)
            tensors = stack.enter_context(trainable(net, plan))
            arms[name] = (net, torch.optim.AdamW(tensors, lr=1e-3, weight_decay=1e-4), [], [])
        for i in range(steps + 3):
            for net, opt, fb, st in arms.values():
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(rev.x), rev.y).backward()
                t1 = time.perf_counter()
                opt.step()
                t2 = time.perf_counter()
                if i >= 3:  # warm-up steps left out
                    fb.append(t1 - t0)
                    st.append(t2 - t1)
    return {name: {"forward_backward_ms": 1000 * float(np.median(fb)), "optimizer_ms": 1000 * float(np.median(st)),
                   "optimizer_state_bytes": sum(v.numel() * v.element_size() for state in opt.state.values()
                                                for v in state.values() if torch.is_tensor(v))}
            for name, (_, opt, fb, st) in arms.items()}


def summarise(rows: list[dict], keys: list[str], group=("setting", "arm", "p")) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(round(r[g], 4) if isinstance(r[g], float) else r[g] for g in group), []).append(r)
    out = []
    for key, members in groups.items():
        entry = dict(zip(group, key))
        entry["n"] = len(members)
        for k in keys:
            values = np.array([m[k] for m in members if k in m], dtype=float)
            if not len(values):
                entry[k] = (float("nan"), float("nan"))
                continue
            entry[k] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0)
        out.append(entry)
    return out


def table(summary: list[dict], columns: list[tuple[str, str, str]]) -> str:
    head = "| arm | p | " + " | ".join(c[1] for c in columns) + " |"
    lines = [head, "|" + "---|" * (2 + len(columns))]
    for s in summary:
        cells = []
        for key, _, fmt in columns:
            mean, sd = s[key]
            if np.isnan(mean):
                cells.append("–")
            else:
                cells.append(f"{mean:{fmt}} ± {sd:{fmt}}" if s["n"] > 1 else f"{mean:{fmt}}")
        lines.append(f"| {s['arm']} | {100 * s['p']:g} % | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _print_costs(costs: dict[str, dict[str, float]]) -> None:
    print("\n## one training step (batch 32, median)\n")
    for name, c in costs.items():
        print(f"- {name}: forward+backward {c['forward_backward_ms']:.1f} ms, optimiser step {c['optimizer_ms']:.2f} ms, "
              f"optimiser state {c['optimizer_state_bytes']} bytes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer test cases and fractions (smoke run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=Path("/tmp/revise_experiment.json"))
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "revise.png")
    parser.add_argument("--steps-only", action="store_true", help="only the cost of one training step")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    seeds = list(range(args.seeds))
    fractions = (0.05, 0.25) if args.quick else FRACTIONS
    n_test = 90 if args.quick else N_TEST
    template = Template.read(DEMO / "template_mni152_4mm.nii.gz", DEMO / "template_tissue_4mm.nii.gz")
    loaded = load_model(DEMO / "demo2d_shortcut.toml")
    base, spec = loaded.module, loaded.card.input
    if args.steps_only:
        _print_costs(step_costs(base, spec, template, 60))
        return 0
    dec = case_set("decorrelated", shortcut_cases(template, n_test, 1001, "decorrelated"), spec)
    orig = case_set("original", shortcut_cases(template, n_test, 1002, "original"), spec)

    def log(row: dict) -> None:
        shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}
        print(f"[{time.perf_counter() - start:6.0f} s] {shown}", flush=True)

    rows = run_correct(base, spec, template, seeds, dec, orig, fractions, log)
    rows += run_prune(base, spec, template, seeds, dec, orig, fractions, log)
    rows += run_preserve(spec, loaded.card.architecture_args, template, seeds, fractions, log, args.quick)
    costs = step_costs(base, spec, template, 10 if args.quick else 40)
    args.json.write_text(json.dumps({"rows": rows, "step_costs": costs, "seeds": seeds,
                                     "threads": args.threads, "torch": torch.__version__}, indent=1))
    measures = ["decorrelated", "original", "marker_share", "changed", "train_s", "select_s", "optimizer_bytes"]
    correct = summarise([r for r in rows if r["setting"] == "correct"], measures)
    print("\n## correct\n")
    print(table(correct, [("decorrelated", "decorrelated acc.", ".3f"), ("original", "original acc.", ".3f"),
                          ("marker_share", "marker share", ".3f"), ("changed", "params changed", ".4f"),
                          ("train_s", "train s", ".2f"), ("select_s", "select s", ".1f"),
                          ("optimizer_bytes", "optimiser bytes", ".0f")]))
    pruned = summarise([r for r in rows if r["setting"] == "prune"],
                       ["decorrelated", "original", "marker_share", "macs_saved"])
    print("\n## prune\n")
    print(table(pruned, [("decorrelated", "decorrelated acc.", ".3f"), ("original", "original acc.", ".3f"),
                         ("marker_share", "marker share", ".3f"), ("macs_saved", "MACs saved", ".3f")]))
    kept = summarise([r for r in rows if r["setting"] == "preserve"], ["A", "B", "updated", "train_s",
                                                                        "optimizer_bytes"])
    print("\n## preserve (task A dark lesions, then task B bright lesions)\n")
    print(table(kept, [("A", "acc. A (kept)", ".3f"), ("B", "acc. B (reached)", ".3f"),
                       ("updated", "params trained", ".3f"), ("train_s", "train s", ".2f"),
                       ("optimizer_bytes", "optimiser bytes", ".0f")]))
    _print_costs(costs)
    from revise_plot import plot

    plot(correct, pruned, kept, args.plot)
    print(f"\nplot: {args.plot}; raw numbers: {args.json}; {time.perf_counter() - start:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
