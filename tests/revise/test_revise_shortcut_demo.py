"""The shipped shortcut demo: files complete, and the model really relies on the marker.

Fresh slices come from the same generator as the training data
(viewer.revise.shortcut_demo) with a seed the build script never used.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from viewer.io import load_scan
from viewer.models import load_model
from viewer.models.demo import DEMO
from viewer.models.demo_cases import LABELS, Template
from viewer.revise.measures import accuracy, region_share, region_shares
from viewer.revise.shortcut_demo import MARKER_CLASS, R_LETTER, shortcut_cases

FRESH_SEED = 20261203
N_FRESH = 150
SETS = ("reference", "decorrelated", "original")


@pytest.fixture(scope="module")
def model():
    return load_model(DEMO / "demo2d_shortcut.toml")


@pytest.fixture(scope="module")
def template():
    return Template.read(DEMO / "template_mni152_4mm.nii.gz", DEMO / "template_tissue_4mm.nii.gz")


def _tensors(model, cases):
    x = torch.cat([model.prepare(c.scan)[0] for c in cases])
    y = torch.tensor([c.label for c in cases])
    marker = torch.from_numpy(np.stack([c.marker[:, :, 0] for c in cases]))[:, None].bool()
    return x, y, marker


def test_shipped_sets_are_complete_and_consistent(model) -> None:
    folder = DEMO / "shortcut2d"
    total = 0
    for name in SETS:
        with open(folder / f"{name}.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 60
        with_marker = 0
        for row in rows:
            scan = load_scan(folder / row["path"])
            assert "shortcut" in row["path"] and scan.shape == (48, 56, 1)
            assert row["label"] in LABELS
            stem = row["path"][: -len(".nii.gz")]
            lesion = np.asarray(load_scan(folder / f"{stem}_mask.nii.gz").data)
            marker = np.asarray(load_scan(folder / f"{stem}_marker.nii.gz").data)
            assert row["mask"] == f"{stem}_mask.nii.gz"
            assert lesion.any() == (row["label"] != LABELS[0])  # a lesion mask exactly where there is a lesion
            if marker.any():
                with_marker += 1
                # the letter is the brightest thing on the slice and lies outside the head
                assert scan.data[marker > 0].max() > 1.25 and marker.sum() > R_LETTER.sum()
        total += with_marker
        if name == "original":  # marker on 95 % of right lesions, 2.5 % of the others
            marked_right = sum(1 for r in rows if r["label"] == LABELS[MARKER_CLASS]
                               and load_scan(folder / r["path"].replace(".nii.gz", "_marker.nii.gz")).data.any())
            assert marked_right >= 0.85 * sum(r["label"] == LABELS[MARKER_CLASS] for r in rows)
        else:
            assert 18 <= with_marker <= 42  # about half, at random
    assert total > 0
    size = sum(p.stat().st_size for p in folder.iterdir()) + (DEMO / "demo2d_shortcut.safetensors").stat().st_size
    assert size < 3 * 2**20


def test_shortcut_model_relies_on_the_marker(model, template) -> None:
    """Built 2026-12-03 (build_shortcut_demo.py, 300 fresh slices each): accuracy 0.977 on the
    training distribution, 0.763 decorrelated, 0.843 without marker; LRP puts 0.365 of the
    positive relevance on the marker, which covers 1.8 % of the image."""
    lrp_range = dict(low=0.0, high=1.0)
    x_orig, y_orig, _ = _tensors(model, shortcut_cases(template, N_FRESH, FRESH_SEED, "original"))
    x_dec, y_dec, m_dec = _tensors(model, shortcut_cases(template, N_FRESH, FRESH_SEED + 1, "decorrelated"))
    acc_orig, acc_dec = accuracy(model.module, x_orig, y_orig), accuracy(model.module, x_dec, y_dec)
    share = region_share(model.module, x_dec, m_dec, model.preset, **lrp_range)
    area = float(m_dec[m_dec.flatten(1).any(1)].double().mean())
    print(f"\nshortcut model: accuracy original {acc_orig:.3f}, decorrelated {acc_dec:.3f}; "
          f"marker relevance share {share:.3f} (area {area:.3f})")
    assert acc_orig >= 0.93
    assert acc_dec <= acc_orig - 0.12
    assert share >= 0.25 and share > 10 * area
    # where it says "lesion right" because of the marker, the marker holds most of the evidence
    pred = model.predict(x_dec).argmax(1)
    fooled = m_dec.flatten(1).any(1) & (pred == MARKER_CLASS) & (y_dec != MARKER_CLASS)
    assert int(fooled.sum()) >= 5
    shares = region_shares(model.module, x_dec[fooled], m_dec[fooled], model.preset, **lrp_range)
    assert float(shares.mean()) >= 0.5
