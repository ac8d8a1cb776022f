"""A revised copy of the shipped shortcut demo, made by ``lrp-viewer revise`` for tests.

Small on purpose (8 reference cases, one epoch): the tests need a second model of the
same architecture whose explanations differ from the shortcut model's, not a good one.
Also a card whose architecture lives in a user package (so it needs trust) with the
revised weights, for the trust question about model B.
"""

from __future__ import annotations

import csv
import shutil
import textwrap
from pathlib import Path

from viewer.models.demo import DEMO

CASES = DEMO / "shortcut2d"
CARD = DEMO / "demo2d_shortcut.toml"
# a decorrelated case without a lesion but with the marker: the shortcut model calls it "lesion right"
CASE = CASES / "shortcut2d_dec_02.nii.gz"
MARKER = CASES / "shortcut2d_dec_02_marker.nii.gz"


def make_revised(folder: Path, n: int = 8) -> Path:
    """``folder/demo2d_shortcut_revised.toml`` (+ weights, report), corrected on ``n`` cases."""
    from viewer.cli.revise import main

    with open(CASES / "reference.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[:n]
    data = folder / "data.csv"
    with open(data, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        for r in rows:
            w.writerow([str(CASES / r["path"]), r["label"]])
    out = folder / "demo2d_shortcut_revised.toml"
    assert main(["--model", str(CARD), "--data", str(data), "--region-pattern", "{stem}_marker.nii.gz",
                 "--mode", "correct", "--fraction", "0.1", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    return out


def untrusted_copy(revised: Path, folder: Path) -> Path:
    """A card with the revised weights whose architecture is a subclass in a user package
    (``userrevised.Net``): loading it runs the user's code, so it needs trust. The caller
    puts ``folder / "pkg"`` on ``sys.path``."""
    pkg = folder / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "userrevised.py").write_text(textwrap.dedent("""\
        from viewer.models.architectures import LesionSideNet


        class Net(LesionSideNet):
            pass
        """))
    weights = folder / "untrusted.safetensors"
    shutil.copyfile(revised.with_suffix(".safetensors"), weights)
    text = revised.read_text()
    text = text.replace('architecture = "viewer.models.architectures.LesionSideNet"',
                        'architecture = "userrevised.Net"')
    text = text.replace(f'weights = "{revised.with_suffix(".safetensors").name}"', f'weights = "{weights.name}"')
    assert 'architecture = "userrevised.Net"' in text and weights.name in text
    card = folder / "untrusted.toml"
    card.write_text(text)
    return card
