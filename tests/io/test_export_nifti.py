"""Relevance NIfTI export: grid, affine, values and provenance survive a re-read by nibabel."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from viewer.explain.result import Relevance
from viewer.explain.target import Target
from viewer.io import ExportError, Scan, load_scan
from viewer.io.export_nifti import export_relevance, method_tag, read_relevance_metadata


def _oblique_scan(tmp_path: Path) -> Scan:
    """A LAS-ordered, rotated, anisotropic file: the export must land on the loaded scan's grid."""
    rng = np.random.default_rng(3)
    angle = np.deg2rad(10)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([-1.5, 1.0, 2.5])
    affine[:3, 3] = [40.0, -30.0, 12.0]
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(rng.normal(size=(12, 10, 6)).astype(np.float32), affine), path)
    return load_scan(path)


def _relevance(values: np.ndarray) -> Relevance:
    return Relevance(
        relevance=torch.from_numpy(values)[None, None],
        output=torch.tensor([[0.3, 2.5, -1.0]]),
        target=Target.contrast(1, 0),
        method="lrp",
        preset="epsilon-gamma-box",
        params={"epsilon": 1e-6, "gamma": 0.25, "low_high": (0.0, 1.0)},
        explained=2.2,
        input_sum=2.0,
        absorbed=0.19,
    )


def test_export_round_trips_grid_values_and_metadata(tmp_path: Path) -> None:
    scan = _oblique_scan(tmp_path)
    values = np.random.default_rng(4).normal(size=scan.shape).astype(np.float32)
    out = export_relevance(values, scan, _relevance(values), "Demo 3D", tmp_path / "map.nii.gz",
                           labels=["none", "left", "right"])
    img = nib.load(out)
    assert img.shape == scan.shape
    assert img.get_data_dtype() == np.float32
    np.testing.assert_allclose(img.affine, scan.affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(img.dataobj), values)
    # reopened by our own loader, it sits voxel for voxel on the scan
    again = load_scan(out)
    np.testing.assert_array_equal(again.data, values)
    np.testing.assert_allclose(again.affine, scan.affine, atol=1e-5)

    descrip = bytes(img.header["descrip"]).rstrip(b"\0")
    assert len(descrip) <= 80
    assert descrip.decode() == "lrp:epsilon-gamma-box target=left vs none model=Demo 3D"
    meta = read_relevance_metadata(out)
    assert meta["method"] == "lrp" and meta["preset"] == "epsilon-gamma-box" and meta["model"] == "Demo 3D"
    assert meta["params"] == {"epsilon": 1e-6, "gamma": 0.25, "low_high": [0.0, 1.0]}
    assert meta["target"] == {"kind": "contrast", "index": 1, "other": 0, "description": "left vs none"}
    assert meta["explained"] == 2.2 and meta["input_sum"] == 2.0 and meta["absorbed"] == 0.19
    assert meta["conservation_error"] == pytest.approx(0.01)
    assert meta["software"].startswith("lrp-viewer ")
    # the extension is plain JSON any tool can read
    ext = [e for e in img.header.extensions if e.get_code() == 6]
    assert json.loads(ext[0].get_content())["lrp-viewer"]["method"] == "lrp"


def test_long_descriptions_are_cut_to_80_bytes(tmp_path: Path) -> None:
    scan = _oblique_scan(tmp_path)
    values = np.zeros(scan.shape, np.float32)
    out = export_relevance(values, scan, _relevance(values), "a model with a very long name " * 4,
                           tmp_path / "map.nii")
    descrip = bytes(nib.load(out).header["descrip"]).rstrip(b"\0")
    assert len(descrip) == 80 and descrip.startswith(b"lrp:epsilon-gamma-box target=class 1 vs class 0 model=")


def test_refuses_to_overwrite_and_wrong_grids(tmp_path: Path) -> None:
    scan = _oblique_scan(tmp_path)
    values = np.ones(scan.shape, np.float32)
    path = export_relevance(values, scan, _relevance(values), "m", tmp_path / "map.nii.gz")
    with pytest.raises(ExportError, match="already exists"):
        export_relevance(values * 2, scan, _relevance(values), "m", path)
    assert np.asarray(nib.load(path).dataobj).max() == 1.0
    export_relevance(values * 2, scan, _relevance(values), "m", path, overwrite=True)
    assert np.asarray(nib.load(path).dataobj).max() == 2.0
    with pytest.raises(ExportError, match="map it back"):
        export_relevance(np.ones((4, 4, 4), np.float32), scan, _relevance(values), "m", tmp_path / "x.nii.gz")


def test_method_tags_are_file_name_safe() -> None:
    assert method_tag("lrp", "epsilon-plus") == "lrp-epsilon-plus"
    assert method_tag("gradcam") == "gradcam"
    assert method_tag("integrated_gradients") == "integrated-gradients"
    assert method_tag("lrp", "my/odd preset") == "lrp-my-odd-preset"


def test_demo_model_lrp_map_exports_on_the_scan_grid(tmp_path: Path) -> None:
    """The real chain: demo 3D model, prepare, LRP, back to the scan grid, export, re-read."""
    from viewer.explain import lrp
    from viewer.models import load_model
    from viewer.models.demo import demo_paths

    paths = demo_paths()
    model = load_model(paths.model3d)
    scan = load_scan(paths.scan)
    x, to_scan = model.prepare(scan)
    result = lrp(model.module, x, preset=model.preset)
    on_scan = to_scan(result.relevance)
    out = export_relevance(on_scan, scan, result, model.name, tmp_path / "lrp.nii.gz", labels=model.labels)

    img = nib.load(out)
    assert img.shape == scan.shape
    np.testing.assert_allclose(img.affine, scan.affine, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(img.dataobj), on_scan)
    meta = read_relevance_metadata(out)
    assert meta["model"] == model.name and meta["preset"] == model.preset
    assert meta["target"]["description"] == model.labels[result.target.index]
    assert meta["input_sum"] == pytest.approx(result.input_sum)
    assert abs(meta["conservation_error"]) < 1e-4
