"""What the session tells a reader: failures once and in place, input warnings, layers,
scan facts, the comparison's second method, Grad-CAM's sign, ZBox bounds in use."""

from __future__ import annotations

import numpy as np
import pytest

from tests.session.conftest import SHAPE, FakeModel, write_nifti
from tests.session.test_session import Events
from viewer.io.scan import Scan
from viewer.models import load_model
from viewer.models.demo import demo_paths
from viewer.session import Session
from viewer.session.histogram import intensity_histogram
from viewer.session.layers import LayerError
from viewer.session.scan_info import orientation_codes, scan_rows


def picture(shape=(40, 50), value=200.0) -> Scan:
    data = np.full((*shape, 1), value, np.float32)
    data[:, : int(0.36 * shape[1])] = 1.0
    return Scan(data, np.eye(4), (1.0, 1.0, 1.0), modality="OT", planar=True, source="PNG picture")


def test_a_model_that_cannot_take_the_scan_fails_once_and_says_why_in_each_place() -> None:
    s = Session()
    try:
        events = Events(s, "error", "busy")
        s.set_model(load_model(demo_paths().model3d))
        s.add_panel("gradcam")
        s.add_panel("saliency")
        s.set_scan(picture())  # a 2D picture for a 3D model: preparing the input fails in every job
        assert s.wait_idle(30)
        errors = events.of("error")
        assert len(errors) == 1, errors
        title, message = errors[0]
        assert title == "This model cannot take this scan"
        assert message.startswith("This is a 3D model but the image is 2D (shape 40×50)")
        assert s.prediction is None and s.prediction_error == message
        assert [s.panel_error(i) for i in range(3)] == [message] * 3
        assert all(s.result(i) is None for i in range(3))
        # another scan, another chance: the failure is forgotten and a fitting scan works
        from viewer.io import load_scan

        s.set_scan(load_scan(demo_paths().scan))
        assert s.wait_idle(60)
        assert s.prediction is not None and s.prediction_error is None
        assert s.panel_error(0) is None and s.result(0) is not None
        assert len(events.of("error")) == 1
    finally:
        s.close()


def test_the_prediction_carries_the_input_warnings() -> None:
    s = Session()
    try:
        s.set_model(load_model(demo_paths().model2d))
        s.set_scan(picture())
        assert s.wait_idle(60)
        pred = s.prediction
        assert pred is not None
        assert len(pred.warnings) == 1 and pred.warnings[0].startswith("64 % of the model input is above the top")
        assert pred.input_values is not None and pred.input_values[1] == pytest.approx(1.0, abs=1e-5)
    finally:
        s.close()


def test_comparison_choice_is_never_the_main_method(loaded: Session) -> None:
    s = loaded
    assert s.comparison_choice() == ("gradcam", {"layer": "conv"})
    s.set_panel_method(0, "gradcam")
    method, params = s.comparison_choice()
    assert method == "lrp" and params == {"preset": "epsilon-plus"}
    s.set_panel_method(0, "saliency")
    assert s.comparison_choice()[0] == "lrp"
    s.set_model(FakeModel(structured=False))  # TorchScript: no LRP, no Grad-CAM
    assert s.panels[0].method == "saliency"
    assert s.comparison_choice()[0] not in ("saliency", "lrp", "gradcam")


def test_grad_cam_is_shown_positive_only_unless_the_user_chose_a_sign(loaded: Session) -> None:
    s = loaded
    assert s.panels[0].overlay.sign == "both"
    i = s.add_panel("gradcam")
    assert s.panels[i].overlay.sign == "positive"
    s.set_panel_method(0, "gradcam")
    assert s.panels[0].overlay.sign == "positive"
    s.set_panel_method(0, "lrp", preset="epsilon-plus")
    assert s.panels[0].overlay.sign == "both"
    s.set_overlay(0, sign="negative")  # the user's choice survives a method change
    s.set_panel_method(0, "gradcam")
    assert s.panels[0].overlay.sign == "negative"


def test_a_grad_cam_preview_is_drawn_positive_only(session: Session, scan_file, fake_explain) -> None:
    import threading

    s = session
    gate = fake_explain.gates["lrp"] = threading.Event()
    s.open_scan(scan_file)
    s.set_model(FakeModel())
    try:
        import time

        deadline = time.monotonic() + 10
        while (s.result(0) is None or not s.result(0).preview) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert s.result(0).preview and s.result(0).method == "gradcam"
        assert s.panels[0].overlay.sign == "both" and s.display_overlay(0).sign == "positive"
    finally:
        gate.set()
    assert s.wait_idle(10)
    assert not s.result(0).preview and s.display_overlay(0).sign == "both"


def test_choosing_the_zbox_preset_fills_the_bounds_from_the_card(loaded: Session) -> None:
    s = loaded
    s.set_panel_method(0, "lrp", preset="epsilon-gamma-box")
    params = dict(s.panels[0].params)
    assert (params["low"], params["high"]) == (0.0, 1.0)  # FakeModel.input_range
    i = s.add_panel("lrp", preset="epsilon-gamma-box")
    assert (dict(s.panels[i].params)["low"], dict(s.panels[i].params)["high"]) == (0.0, 1.0)


def test_layers_list_relevance_mask_and_maps_from_files(loaded: Session, mask_file, tmp_path) -> None:
    s = loaded
    events = Events(s, "layers_changed", "display_changed", "view_changed")
    assert [layer.key for layer in s.layers()] == ["relevance", "mask"]
    assert not s.layers()[1].available  # no mask yet
    s.open_mask(mask_file)
    rng = np.random.default_rng(3)
    other = rng.normal(size=SHAPE).astype(np.float32)
    assert s.open_relevance_map(write_nifti(tmp_path / "old_lrp.nii.gz", other))
    rows = s.layers()
    assert [r.key for r in rows] == [("map", 0), "relevance", "mask"]
    assert rows[0].title == "Map: old_lrp.nii.gz" and rows[0].removable
    assert rows[1].title == "Relevance (lrp epsilon-plus)" and rows[2].title == "Mask: mask.nii.gz"
    np.testing.assert_allclose(s.maps[0].data, other, rtol=1e-6)
    s.set_layer(("map", 0), opacity=0.3, visible=False)
    s.set_layer("relevance", opacity=0.8)
    s.set_layer("mask", visible=False, opacity=0.5)
    rows = s.layers()
    assert [(r.visible, r.opacity) for r in rows] == [(False, 0.3), (True, 0.8), (False, 0.5)]
    assert len(events.of("layers_changed")) == 2 and events.of("display_changed") == [(0,)]
    assert s.view.mask_outline is False and s.view.mask_opacity == 0.5
    with pytest.raises(LayerError, match=r"has shape \(3, 3, 3\) but the scan has \(12, 10, 8\)"):
        s.add_relevance_map(np.zeros((3, 3, 3)), "small")
    errors = Events(s, "error")
    assert not s.open_relevance_map(write_nifti(tmp_path / "small.nii.gz", np.zeros((3, 3, 3))))
    assert errors.of("error")[0][0] == "Cannot open relevance map"
    s.remove_map_layer(0)
    assert [r.key for r in s.layers()] == ["relevance", "mask"]
    s.add_relevance_map(other, "again")
    s.open_scan(write_nifti(tmp_path / "next.nii.gz", other))  # maps belong to one scan's grid
    assert s.maps == []


def test_scan_facts_and_notes_leave_patient_fields_out(session: Session) -> None:
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    data[0, 0, 0] = np.nan
    affine = np.diag([0.5, 0.5, 3.0, 1.0])
    scan = Scan(data, affine, (0.5, 0.5, 3.0), modality="CT", source="DICOM series 1.2.3… (4 files, CT)",
                meta={"notes": ["Slice 3 of 4 was interpolated (gap 6 mm)."], "SeriesNumber": 7,
                      "PatientName": "DOE^JANE", "PatientID": "12345", "original_orientation": "LPS"})
    session.set_scan(scan, path="/data/case 7/series")
    rows = dict(session.scan_description())
    assert rows["Modality"] == "CT" and rows["Size (voxels)"] == "2 × 3 × 4"
    assert rows["Spacing (mm)"] == "0.5 × 0.5 × 3" and rows["Field of view (mm)"] == "1.0 × 1.5 × 12.0"
    assert rows["Value range"] == "1 … 23" and rows["NaN/Inf voxels"] == "1 (4.2 %)"
    assert rows["Orientation"].startswith("voxel axes point RAS")
    assert rows["Orientation on disk"] == "LPS" and rows["Series number"] == "7"
    assert rows["Source"] == "DICOM series 1.2.3… (4 files, CT)" and rows["File"] == "series"
    text = repr(session.scan_description())
    assert "DOE" not in text and "12345" not in text
    assert session.scan_notes() == ["Slice 3 of 4 was interpolated (gap 6 mm)."]
    assert orientation_codes(np.diag([-1.0, -1.0, 1.0, 1.0])) == "LPS"
    assert dict(scan_rows(picture()))["Spacing"].startswith("unknown")


def test_case_name_follows_the_scan(session: Session, scan_file, tmp_path) -> None:
    assert session.case_name == ""
    session.open_scan(scan_file)
    assert session.case_name == "scan"
    folder = tmp_path / "CT head 3"
    folder.mkdir()
    session.set_scan(session.scan, path=str(folder))
    assert session.case_name == "CT head 3"


def test_histogram_counts_finite_values_and_subsamples_large_volumes() -> None:
    data = np.concatenate([np.zeros(300), np.ones(700), [np.nan, np.inf]]).astype(np.float32)
    h = intensity_histogram(data, bins=4)
    assert h.counts.tolist() == [300, 0, 0, 700] and h.sampled == 1000
    assert h.edges[0] == 0.0 and h.edges[-1] == 1.0
    big = np.random.default_rng(0).normal(size=5_000_000).astype(np.float32)
    hb = intensity_histogram(big, bins=64, max_samples=1_000_000)
    assert hb.sampled == 1_000_000
    assert hb.robust[0] == pytest.approx(-2.576, abs=0.03) and hb.robust[1] == pytest.approx(2.576, abs=0.03)
