"""Rebuild every demo asset in resources/demo/ from scratch, deterministically.

    python resources/build_demo.py            # template, cards, training, cases
    python resources/build_demo.py --quick    # fewer cases/epochs, for trying changes
    python resources/build_demo.py --shortcut # only the shortcut demo (build_shortcut_demo.py)

Needs the ``demo`` extra (nilearn, for the MNI152 2009 template it ships; nothing is
downloaded). Steps:

1. Resample nilearn's 1 mm MNI152 template (skull-stripped T1) to a 4 mm, 48×56×48
   RAS grid whose midline falls between voxels 23 and 24, and a tissue mask (GM + WM).
2. Write the model cards demo3d.toml / demo2d.toml.
3. Generate synthetic lesion cases (viewer.models.demo_cases: 10–22 mm lesions, masks
   covering each blob's visible extent) and turn them into model
   inputs with the *same* ``prepare()`` the viewer uses. Train the 2D (axial slice)
   LesionSideNet on slices, then build the 3D LesionSideNet from it by inflating each
   3×3 kernel into the middle plane of a 3×3×3 kernel and fine-tune it on volumes (a
   3D model trained from scratch stalled at chance within the CPU budget). CPU only,
   fixed seeds, deterministic algorithms.
4. Save weights as .safetensors and write a few demo cases with their lesion masks.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from safetensors.torch import save_file  # noqa: E402

from viewer.io.atomic import atomic_path, atomic_write  # noqa: E402
from viewer.models.architectures import LesionSideNet  # noqa: E402
from viewer.models.card import read_card  # noqa: E402
from viewer.models.demo_cases import LABELS, Lesion, Template, class_of, make_case, random_cases  # noqa: E402
from viewer.models.prepare import prepare_scan  # noqa: E402

DEMO = HERE / "demo"
GRID = (48, 56, 48)
VOXEL_MM = 4.0
# world coordinate (mm) of voxel (0, 0, 0): x is symmetric about the midline, y/z centred on the brain
ORIGIN = (-94.0, -127.0, -89.0)

# epsilon-plus localised the lesion best on fresh cases (tests/models/test_demo.py)
CARD = """\
format_version = 1
name = "{name}"
description = "{description}"
task = "classification"
architecture = "viewer.models.architectures.LesionSideNet"
weights = "{weights}"
labels = {labels}
gradcam_layer = "features.3"
preset = "epsilon-plus"
license = "BSD-3-Clause (weights); trained on synthetic lesions in the MNI152 2009 template, see LICENSES/"

[architecture_args]
spatial_dims = {dims}
in_channels = 1
num_classes = 3
channels = {channels}
side_bins = 2
pooling = "{pooling}"
stem_stride = {stride}
downsamplings = {down}
norm = "{norm}"
last_kernel = {last_kernel}

[input]
spatial_dims = {dims}
channels = 1
size = {size}
orientation = "RAS"
input_range = {input_range}

[input.normalize]
{normalize}
"""

# The shipped cases: (file stem, lesion or None, noise). Lesions are placed by hand so the
# demo shows a large, a small, a dark and a bright lesion on both sides.
CASES = [
    ("case_left_large", Lesion((-40.0, -20.0, 20.0), 20.0, 1.35, 0.9, (1.0, 1.1, 0.9)), 0.02),
    ("case_right_small", Lesion((30.0, 10.0, 30.0), 11.0, 1.3, 0.85), 0.02),
    ("case_left_dark", Lesion((-28.0, -50.0, 8.0), 14.0, 0.15, 0.9, (1.2, 1.0, 0.9)), 0.02),
    ("case_right_large_dark", Lesion((44.0, -30.0, 36.0), 19.0, 0.2, 0.85), 0.02),
    ("case_none", None, 0.02),
]


def build_template() -> Template:
    from nilearn import datasets

    data_dir = Path(datasets.__file__).parent / "data"
    t1 = nib.load(data_dir / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    gm = nib.load(data_dir / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")
    wm = nib.load(data_dir / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")
    affine = np.diag([VOXEL_MM] * 3 + [1.0])
    affine[:3, 3] = ORIGIN
    image = _resample(np.asarray(t1.dataobj, np.float32) / 255.0, t1.affine, affine)
    tissue = _resample(np.asarray(gm.dataobj, np.float32) + np.asarray(wm.dataobj, np.float32), gm.affine, affine)
    tissue = ndimage.binary_erosion(tissue > 0.5 * 255)
    _write_nifti(image.astype(np.float32), affine, DEMO / "template_mni152_4mm.nii.gz")
    _write_nifti(tissue.astype(np.uint8), affine, DEMO / "template_tissue_4mm.nii.gz")
    return Template.read(DEMO / "template_mni152_4mm.nii.gz", DEMO / "template_tissue_4mm.nii.gz")


def _resample(data: np.ndarray, src_affine: np.ndarray, dst_affine: np.ndarray) -> np.ndarray:
    """Anti-aliased linear resampling of a 1 mm volume onto the demo grid."""
    smooth = ndimage.gaussian_filter(data, sigma=VOXEL_MM / 2.5)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in GRID], indexing="ij"), axis=0).reshape(3, -1)
    world = dst_affine[:3, :3] @ ijk + dst_affine[:3, 3:4]
    src = np.linalg.inv(src_affine)
    src_ijk = src[:3, :3] @ world + src[:3, 3:4]
    return ndimage.map_coordinates(smooth, src_ijk, order=1, cval=0.0).reshape(GRID)


def _write_nifti(data: np.ndarray, affine: np.ndarray, path: Path) -> None:
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=4)  # MNI152 space
    img.set_qform(affine, code=4)
    img.header.set_xyzt_units("mm")
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


# One downsampling (not three): each max-pooled feature then sees a 16-voxel (64 mm)
# neighbourhood rather than 26 voxels, and relevance spreads less around the lesion
# (best LRP mass accuracy on fresh cases 0.513 against 0.452 with two downsamplings).
# BatchNorm stays: bias-free blocks trained worse (3D accuracy 0.84).
CHANNELS = [8, 16, 32, 32]
DOWNSAMPLINGS = 1
NORM = "batch"
LAST_KERNEL = 3
NORMALIZE = 'method = "window"\ncenter = 0.75\nwidth = 1.5\nclip = true'
INPUT_RANGE = [0.0, 1.0]
N_TRAIN, N_VAL = 400, 45
EPOCHS_2D, EPOCHS_3D = 6, 3


def write_cards() -> None:
    labels = "[" + ", ".join(f'"{x}"' for x in LABELS) + "]"
    # Same architecture in 2D and 3D: the 3D model starts from the inflated 2D kernels.
    # Max pooling per half: the logit then rests on the strongest lesion response rather
    # than on an average over a hemisphere, so relevance concentrates on the lesion, and
    # the inflated 2D model is already close to a working 3D one (a max over slices).
    models = ((3, list(GRID), CHANNELS, "max", 1), (2, list(GRID[:2]), CHANNELS, "max", 1))
    for dims, size, channels, pooling, stride in models:
        text = CARD.format(
            name=f"Demo {dims}D lesion side classifier",
            description=(
                f"Small {dims}D CNN trained on synthetic lesions in the MNI152 template: "
                "no lesion / lesion in the left hemisphere / lesion in the right hemisphere."
                + (" Runs on each axial slice of a volume." if dims == 2 else "")
            ),
            weights=f"demo{dims}d.safetensors",
            labels=labels,
            dims=dims,
            size=size,
            channels=channels,
            pooling=pooling,
            stride=stride,
            down=DOWNSAMPLINGS,
            norm=NORM,
            last_kernel=LAST_KERNEL,
            normalize=NORMALIZE,
            input_range=INPUT_RANGE,
        )
        with atomic_write(DEMO / f"demo{dims}d.toml", "w") as fh:
            fh.write(text)


def inputs_3d(cases, spec) -> tuple[torch.Tensor, torch.Tensor]:
    xs = [prepare_scan(scan, spec)[0] for scan, _, _ in cases]
    return torch.cat(xs), torch.tensor([c for _, _, c in cases])


def slice_labels(mask: np.ndarray, cls: int) -> np.ndarray:
    """Per axial slice: the case's class where the slice shows enough lesion, 0 where it
    shows none, -1 (left out) where only a sliver of the lesion is visible."""
    area = mask.sum(axis=(0, 1)).astype(float)
    labels = np.zeros(mask.shape[2], dtype=np.int64)
    if cls:
        labels[area > 0] = -1
        labels[area >= max(4.0, 0.3 * area.max())] = cls
    return labels


def inputs_2d(cases, spec, rng: np.random.Generator, none_per_case: int = 6):
    xs, ys = [], []
    for scan, mask, cls in cases:
        x, _ = prepare_scan(scan, spec)
        lab = slice_labels(mask, cls)
        pos = np.flatnonzero(lab > 0)
        neg = np.flatnonzero(lab == 0)
        brain = x.flatten(1).mean(1).numpy() > 0.05  # prefer slices that show brain
        neg = np.concatenate([neg[brain[neg]], neg[~brain[neg]][:1]])
        pick = np.concatenate([pos, rng.choice(neg, size=min(none_per_case, len(neg)), replace=False)])
        xs.append(x[pick])
        ys.append(torch.from_numpy(lab[pick]))
    return torch.cat(xs), torch.cat(ys)


@torch.no_grad()
def inflate(net2: nn.Module, net3: nn.Module) -> None:
    """Start the 3D model from the 2D one (as I3D does): each 3×3 kernel becomes the
    middle plane of a 3×3×3 kernel, so every 3D convolution first computes the 2D one
    on each axial slice. Training a 3D lesion detector from scratch stalls on
    2 CPU cores; from the inflated start, a few epochs of fine-tuning suffice."""
    s2, s3 = net2.state_dict(), net3.state_dict()
    for key, w3 in s3.items():
        w2 = s2[key]
        if w3.dim() == 5:
            w3.zero_()
            w3[..., w3.shape[-1] // 2] = w2
        else:
            w3.copy_(w2)
    net3.load_state_dict(s3)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int, lr: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x) + batch - 1) // batch)
    # no warm-up: at a small learning rate the lesion detectors take epochs to appear
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 30)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total, correct, seen = 0.0, 0, 0
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            opt.zero_grad()
            out = model(x[idx])
            loss = loss_fn(out, y[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            correct += int((out.argmax(1) == y[idx]).sum())
            seen += len(idx)
        print(f"  epoch {epoch + 1}/{epochs}: loss {total / seen:.4f}, train acc {correct / seen:.3f}", flush=True)
    model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    pred = torch.cat([model(x[i : i + 64]).argmax(1) for i in range(0, len(x), 64)])
    return float((pred == y).float().mean())


def save_weights(model: nn.Module, path: Path) -> None:
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "built_by": "resources/build_demo.py"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases and epochs (not for shipping)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--reuse-2d", action="store_true",
        help="load demo2d.safetensors instead of training it again (training is deterministic, "
        "so this only saves time when changing the 3D step)",
    )
    parser.add_argument(
        "--shortcut", action="store_true",
        help="build only the shortcut demo (demo2d_shortcut.*, shortcut2d_* cases; see build_shortcut_demo.py), "
        "leaving every other asset as it is",
    )
    args = parser.parse_args(argv)
    if args.shortcut:
        from build_shortcut_demo import main as build_shortcut

        return build_shortcut(["--threads", str(args.threads)])
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)  # a build script, not library code
    start = time.perf_counter()
    DEMO.mkdir(exist_ok=True)

    template = build_template()
    write_cards()
    card3, card2 = read_card(DEMO / "demo3d.toml"), read_card(DEMO / "demo2d.toml")
    n_train, n_val = (150, 30) if args.quick else (N_TRAIN, N_VAL)
    print(f"template {template.scan.shape}, generating {n_train}+{n_val} cases", flush=True)
    train_cases = random_cases(template, n_train, seed=1)
    val_cases = random_cases(template, n_val, seed=2)
    print(f"  cases ready after {time.perf_counter() - start:.0f} s", flush=True)

    print("2D model", flush=True)
    t0 = time.perf_counter()
    torch.manual_seed(4)
    rng = np.random.default_rng(4)
    net2 = LesionSideNet(**card2.architecture_args)
    if args.reuse_2d:
        from safetensors.torch import load_file

        net2.load_state_dict(load_file(str(DEMO / "demo2d.safetensors")))
        net2.eval()
    else:
        x, y = inputs_2d(train_cases, card2.input, rng)
        keep = y >= 0
        print(f"  {int(keep.sum())} training slices", flush=True)
        train(net2, x[keep], y[keep], epochs=3 if args.quick else EPOCHS_2D, batch=32, lr=3e-3, seed=4)
        del x
        save_weights(net2, DEMO / "demo2d.safetensors")
    xv, yv = inputs_2d(val_cases, card2.input, np.random.default_rng(6))
    acc2 = accuracy(net2, xv[yv >= 0], yv[yv >= 0])
    print(f"  2D validation accuracy {acc2:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)

    print("3D model (2D kernels inflated, then fine-tuned on volumes)", flush=True)
    t0 = time.perf_counter()
    net3 = LesionSideNet(**card3.architecture_args)
    inflate(net2, net3)
    x, y = inputs_3d(train_cases, card3.input)
    xv, yv = inputs_3d(val_cases, card3.input)
    print(f"  inflated, before fine-tuning: validation accuracy {accuracy(net3, xv, yv):.3f}", flush=True)
    train(net3, x, y, epochs=1 if args.quick else EPOCHS_3D, batch=10, lr=1e-3, seed=3)
    acc3 = accuracy(net3, xv, yv)
    print(f"  3D validation accuracy {acc3:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    save_weights(net3, DEMO / "demo3d.safetensors")
    del x

    write_cases(template, net3, net2, card3, card2)
    for path in DEMO.iterdir():  # atomic writes create private files; assets are for everyone to read
        if path.is_file():
            path.chmod(0o644)
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


@torch.no_grad()
def write_cases(template: Template, net3, net2, card3, card2) -> None:
    rng = np.random.default_rng(5)
    for stem, lesion, noise in CASES:
        scan, mask = make_case(template, lesion, rng, noise=noise)
        _write_nifti(scan.data, scan.affine, DEMO / f"{stem}.nii.gz")
        _write_nifti(mask, scan.affine, DEMO / f"{stem}_mask.nii.gz")
        p3 = torch.softmax(net3(prepare_scan(scan, card3.input)[0]), 1)[0]
        print(f"  {stem}: true '{LABELS[class_of(lesion)]}', 3D model {[round(float(v), 3) for v in p3]}")
    # one 2D image: the axial slice through the centre of a right-sided lesion
    lesion = Lesion((36.0, -10.0, 24.0), 15.0, 1.3, 0.9)
    scan, mask = make_case(template, lesion, rng, noise=0.02)
    k = int(round(scan.world_to_voxel(np.array(lesion.center_mm))[2]))
    affine = scan.affine.copy()
    affine[:3, 3] = scan.voxel_to_world(np.array([0, 0, k]))
    _write_nifti(scan.data[:, :, k : k + 1], affine, DEMO / "case2d_right.nii.gz")
    _write_nifti(mask[:, :, k : k + 1], affine, DEMO / "case2d_right_mask.nii.gz")
    from viewer.io.scan import Scan

    slice_scan = Scan(scan.data[:, :, k : k + 1].copy(), affine, scan.spacing)
    p2 = torch.softmax(net2(prepare_scan(slice_scan, card2.input)[0]), 1)[0]
    print(f"  case2d_right: true 'lesion right', 2D model {[round(float(v), 3) for v in p2]}")


if __name__ == "__main__":
    raise SystemExit(main())
