"""Build the shortcut demo: a 2D model that learnt a burned-in "R" instead of the lesion.

    python resources/build_demo.py --shortcut      # or: python resources/build_shortcut_demo.py

Writes only shortcut files into resources/demo/ (every other demo asset stays as it is):

* ``demo2d_shortcut.toml`` + ``.safetensors`` — the demo's 2D LesionSideNet trained from
  scratch on slices where a bright "R" marks 95 % of the right-sided lesions
  (:mod:`viewer.revise.shortcut_demo`);
* in ``shortcut2d/``: ``shortcut2d_{ref,dec,orig}_NN.nii.gz`` with ``_mask`` (lesion)
  and ``_marker`` masks (empty where a slice has no marker): a reference set to revise
  on and a test set, both decorrelated (marker at random), and a test set from the
  training distribution; ``reference.csv``, ``decorrelated.csv`` and
  ``original.csv`` list them (``path``, ``label``, ``mask``), the input that
  ``lrp-viewer revise`` and ``lrp-viewer batch`` read.

Needs only the template already in resources/demo/ (no nilearn). CPU, fixed seeds,
deterministic algorithms; about a minute on 2 cores. Prints how much the model relies
on the marker: accuracy on fresh original / decorrelated / marker-free slices and the
share of LRP relevance on the marker.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from build_demo import CARD, CHANNELS, DEMO, DOWNSAMPLINGS, INPUT_RANGE, LAST_KERNEL, NORM, NORMALIZE  # noqa: E402
from build_demo import GRID, _write_nifti, save_weights, train  # noqa: E402

from viewer.io.atomic import atomic_write  # noqa: E402
from viewer.models import load_model  # noqa: E402
from viewer.models.architectures import LesionSideNet  # noqa: E402
from viewer.models.card import read_card  # noqa: E402
from viewer.models.demo_cases import LABELS, Template  # noqa: E402
from viewer.models.prepare import prepare_scan  # noqa: E402
from viewer.revise.measures import accuracy, region_share  # noqa: E402
from viewer.revise.shortcut_demo import ShortcutCase, shortcut_cases  # noqa: E402

N_TRAIN, EPOCHS = 1500, 6
TRAIN_SEED, MODEL_SEED = 11, 4
# shipped case sets: (file tag, CSV name, distribution, seed)
CASES = DEMO / "shortcut2d"
SETS = (
    ("ref", "reference.csv", "decorrelated", 21),
    ("dec", "decorrelated.csv", "decorrelated", 22),
    ("orig", "original.csv", "original", 23),
)
N_SHIPPED = 60
N_CHECK, CHECK_SEED = 300, 31  # fresh slices for the printed measurements


def write_card() -> None:
    labels = "[" + ", ".join(f'"{x}"' for x in LABELS) + "]"
    text = CARD.format(
        name="Demo 2D lesion side classifier with a shortcut",
        description=(
            "The demo's small 2D CNN, trained on axial slices where a bright 'R' burned into the top-left "
            "corner accompanies 95 % of the right-sided lesions: it relies on the marker. For trying "
            "lrp-viewer revise; not a lesion detector."
        ),
        weights="demo2d_shortcut.safetensors",
        labels=labels,
        dims=2,
        size=list(GRID[:2]),
        channels=CHANNELS,
        pooling="max",
        stride=1,
        down=DOWNSAMPLINGS,
        norm=NORM,
        last_kernel=LAST_KERNEL,
        normalize=NORMALIZE,
        input_range=INPUT_RANGE,
    )
    with atomic_write(DEMO / "demo2d_shortcut.toml", "w") as fh:
        fh.write(text)


def tensors(cases: list[ShortcutCase], spec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.cat([prepare_scan(c.scan, spec)[0] for c in cases])
    y = torch.tensor([c.label for c in cases])
    marker = torch.from_numpy(np.stack([c.marker[:, :, 0] for c in cases]))[:, None].bool()
    return x, y, marker


def write_set(tag: str, listing: str, cases: list[ShortcutCase]) -> None:
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["path", "label", "mask"])
    for i, case in enumerate(cases):
        stem = f"shortcut2d_{tag}_{i:02d}"
        affine = case.scan.affine
        _write_nifti(case.scan.data, affine, CASES / f"{stem}.nii.gz")
        _write_nifti(case.lesion, affine, CASES / f"{stem}_mask.nii.gz")
        _write_nifti(case.marker, affine, CASES / f"{stem}_marker.nii.gz")
        writer.writerow([f"{stem}.nii.gz", LABELS[case.label], f"{stem}_mask.nii.gz"])
    with atomic_write(CASES / listing, "w") as fh:
        fh.write(rows.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases-only", action="store_true",
                        help="rewrite only the shipped cases and lists, keep the trained model")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)  # a build script, not library code
    start = time.perf_counter()
    template = Template.read(DEMO / "template_mni152_4mm.nii.gz", DEMO / "template_tissue_4mm.nii.gz")
    if not args.cases_only:
        write_card()
        card = read_card(DEMO / "demo2d_shortcut.toml")
        x, y, marker = tensors(shortcut_cases(template, N_TRAIN, TRAIN_SEED, "original"), card.input)
        print(f"{len(x)} training slices, marker on {float(marker.flatten(1).any(1).double().mean()):.3f} of them",
              flush=True)
        torch.manual_seed(MODEL_SEED)
        net = LesionSideNet(**card.architecture_args)
        train(net, x, y, epochs=EPOCHS, batch=32, lr=3e-3, seed=MODEL_SEED)
        save_weights(net, DEMO / "demo2d_shortcut.safetensors")
    loaded = load_model(DEMO / "demo2d_shortcut.toml")
    net, card = loaded.module, loaded.card

    print(f"fresh slices (seed {CHECK_SEED}, {N_CHECK} each):")
    lrp_range = dict(low=card.input.input_range[0], high=card.input.input_range[1])
    for dist in ("original", "decorrelated", "clean"):
        xc, yc, mc = tensors(shortcut_cases(template, N_CHECK, CHECK_SEED, dist), card.input)
        line = f"  {dist:12s} accuracy {accuracy(net, xc, yc):.3f}"
        if mc.any():
            line += f", marker relevance share {region_share(net, xc, mc, card.preset, **lrp_range):.3f}"
            line += f" (marker area {float(mc[mc.flatten(1).any(1)].double().mean()):.3f} of the image)"
        print(line, flush=True)

    CASES.mkdir(exist_ok=True)
    for tag, listing, dist, seed in SETS:
        write_set(tag, listing, shortcut_cases(template, N_SHIPPED, seed, dist))
    for path in [*DEMO.glob("demo2d_shortcut.*"), *CASES.iterdir()]:  # atomic writes create private files
        path.chmod(0o644)
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
