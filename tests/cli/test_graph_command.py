"""``lrp-viewer graph``: the bundled 3D demo model on a shipped lesion case."""

from __future__ import annotations

import hashlib
import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from viewer.cli.graph import main
from viewer.explain.graph import attribution_graph
from viewer.io import load_scan
from viewer.models import load_model
from viewer.models.demo import demo_paths


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_writes_json_png_and_node_maps_on_the_scan_grid(tmp_path, capsys):
    paths = demo_paths("case_right_small")
    before = _sha(paths.scan)
    out = tmp_path / "graph"
    code = main(["--model", str(paths.model3d), str(paths.scan), "--width", "3,2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert _sha(paths.scan) == before  # the input is never written
    data = json.loads((out / "graph.json").read_text())
    assert data["target"]["description"] == "lesion right" and data["layers"] == ["features.3", "features.2"]
    assert data["scan"]["sha256"] == before and data["model"]["name"] == "Demo 3D lesion side classifier"
    nodes = {n["id"]: n for n in data["nodes"]}
    assert len([n for n in nodes.values() if n["level"] == 1]) == 3
    assert len(data["edges"]) == 3 + 3 * 2
    # every node has its map, on the scan's grid, holding the node's input relevance
    model = load_model(paths.model3d)
    scan = load_scan(paths.scan)
    x, to_scan = model.prepare(scan)
    graph = attribution_graph(model.module, x, target=2, width=(3, 2))
    for nid, rel_path in data["node_files"].items():
        img = nib.load(str(out / rel_path))
        assert img.shape == scan.shape
        np.testing.assert_allclose(img.affine, scan.affine, atol=1e-5)
        expected = graph.heatmap_on_scan(nid, to_scan)
        np.testing.assert_allclose(np.asarray(img.dataobj), expected, rtol=1e-5, atol=1e-7)
        assert float(np.asarray(img.dataobj).sum()) == pytest.approx(nodes[nid]["heatmap_sum"], rel=1e-3)
    assert len(data["node_files"]) == len(nodes) - 1
    with Image.open(out / "graph.png") as png:
        assert png.size[0] > 400 and png.size[1] > 400
    printed = capsys.readouterr().out
    assert "target: lesion right" in printed and "features.3:" in printed


def test_bad_layer_and_width_are_usage_errors(tmp_path, capsys):
    paths = demo_paths()
    code = main(["--model", str(paths.model3d), str(paths.scan), "--layers", "features.9", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "no layer named 'features.9'" in err and "features.3" in err
    code = main(["--model", str(paths.model3d), str(paths.scan), "--width", "6,0", "--out", str(tmp_path)])
    assert code == 2 and "at least 1" in capsys.readouterr().err
    code = main(["--model", str(paths.model3d), str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path)])
    assert code == 2 and "missing.nii.gz" in capsys.readouterr().err
    assert not (tmp_path / "graph.json").exists()
