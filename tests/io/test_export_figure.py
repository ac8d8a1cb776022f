"""PNG figures: resolution, aspect, colour bar, orientation conventions, de-identification."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewer.io import ExportError, Scan, load_scan
from viewer.io.colormaps import lut
from viewer.io.figure import FigureOptions, describe, render_figure, save_figure

YELLOW = (255, 255, 0)


def _scan(shape=(20, 24, 10), spacing=(1.0, 1.0, 3.0), planar=False) -> Scan:
    rng = np.random.default_rng(0)
    data = rng.uniform(0, 100, shape).astype(np.float32)
    return Scan(data, np.diag([*spacing, 1.0]), spacing, window=(50.0, 100.0), planar=planar)


def _red_pixels(image: Image.Image, box) -> np.ndarray:
    a = np.asarray(image.crop(box)).astype(int)
    return np.argwhere((a[..., 0] > 200) & (a[..., 1] < 60) & (a[..., 2] < 60))


def test_scale_sets_square_millimetre_pixels() -> None:
    scan = _scan()
    fig = render_figure(scan, None, FigureOptions(scale=2))
    w = {k: (b[2] - b[0], b[3] - b[1]) for k, b in fig.panels.items()}
    # finest spacing 1 mm at scale 2 = 2 px per mm
    assert w["axial"] == (40, 48)
    assert w["coronal"] == (40, 60)
    assert w["sagittal"] == (48, 60)
    assert fig.colorbar is None  # nothing to show without a map


@pytest.mark.parametrize("width", [300, 641, 1600])
def test_target_width_is_exact(width: int) -> None:
    scan = _scan()
    rel = np.zeros(scan.shape, np.float32)
    fig = render_figure(scan, rel, FigureOptions(width=width, caption="lrp epsilon-plus"))
    assert fig.image.size[0] == width
    boxes = list(fig.panels.values()) + [fig.colorbar]
    assert all(0 <= b[0] < b[2] <= width and 0 <= b[1] < b[3] <= fig.image.size[1] for b in boxes)
    # panels keep their physical aspect whatever the width
    left, top, right, bottom = fig.panels["coronal"]
    assert (bottom - top) / (right - left) == pytest.approx(30 / 20, rel=0.05)


def test_too_small_or_too_large_is_refused() -> None:
    scan = _scan()
    with pytest.raises(ExportError, match="too small"):
        render_figure(scan, None, FigureOptions(width=20))
    with pytest.raises(ExportError, match="too large"):
        render_figure(scan, None, FigureOptions(scale=400))


def test_colour_bar_runs_from_positive_to_negative() -> None:
    scan = _scan()
    rel = np.linspace(-2, 2, int(np.prod(scan.shape)), dtype=np.float32).reshape(scan.shape)
    fig = render_figure(scan, rel, FigureOptions(scale=4, colormap="bwr", limit=2.0))
    left, top, right, bottom = fig.colorbar
    a = np.asarray(fig.image).astype(int)
    x = (left + right) // 2
    table = lut("bwr")
    assert tuple(a[top, x]) == tuple(table[255])  # red at +limit
    assert tuple(a[bottom - 1, x]) == tuple(table[0])  # blue at -limit
    assert np.abs(a[(top + bottom) // 2, x] - table[128].astype(int)).max() <= 3  # white at zero
    assert fig.limit == 2.0
    # the labels are drawn right of the bar: some white text pixels there
    labels = a[top:bottom, right + 1:]
    assert (labels.min(axis=2) > 150).sum() > 10


def test_default_limit_is_the_apps_percentile() -> None:
    from viewer.io.colormaps import symmetric_limit

    scan = _scan()
    rel = np.random.default_rng(1).normal(size=scan.shape).astype(np.float32)
    assert render_figure(scan, rel).limit == pytest.approx(symmetric_limit(rel, 99.5))


@pytest.mark.parametrize("radiological, side", [(True, "left"), (False, "right")])
def test_axial_and_coronal_put_right_where_the_convention_says(radiological: bool, side: str) -> None:
    scan = _scan(shape=(20, 20, 20), spacing=(1.0, 1.0, 1.0))
    rel = np.zeros(scan.shape, np.float32)
    rel[16:19, 15:18, 15:18] = 1.0  # patient Right (high axis 0), Anterior, Superior
    options = FigureOptions(scale=4, cursor=(17, 16, 16), limit=1.0, opacity=1.0, radiological=radiological)
    fig = render_figure(scan, rel, options)
    for view in ("axial", "coronal"):
        box = fig.panels[view]
        hits = _red_pixels(fig.image, box)
        width, height = box[2] - box[0], box[3] - box[1]
        assert len(hits) > 0
        mean_col = hits[:, 1].mean()
        assert (mean_col < width / 2) == (side == "left"), view
        assert hits[:, 0].mean() < height / 2, view  # Anterior (axial) / Superior (coronal) at the top
    # sagittal: Anterior on the left, Superior at the top, independent of the convention
    box = fig.panels["sagittal"]
    hits = _red_pixels(fig.image, box)
    assert hits[:, 1].mean() < (box[2] - box[0]) / 2 and hits[:, 0].mean() < (box[3] - box[1]) / 2


def test_planar_image_is_drawn_as_the_file_shows_it() -> None:
    file_pixels = np.arange(12 * 16, dtype=np.float32).reshape(12, 16)  # rows x columns, like the file
    file_pixels = file_pixels / file_pixels.max() * 255
    h, w = file_pixels.shape
    data = np.empty((w, h, 1), np.float32)
    for i in range(w):
        for j in range(h):
            data[i, j, 0] = file_pixels[h - 1 - j, i]
    scan = Scan(data, np.eye(4), (1.0, 1.0, 1.0), window=(127.5, 255.0), planar=True)
    fig = render_figure(scan, None, FigureOptions(scale=1, radiological=True))
    assert list(fig.panels) == ["axial"]
    left, top, right, bottom = fig.panels["axial"]
    tile = np.asarray(fig.image.crop((left, top, right, bottom)))[..., 0].astype(float)
    np.testing.assert_allclose(tile, np.round(file_pixels), atol=1)


def test_anisotropic_2d_image_gets_square_pixels() -> None:
    scan = _scan(shape=(10, 20, 1), spacing=(2.0, 0.5, 1.0))
    fig = render_figure(scan, None, FigureOptions(scale=1))
    left, top, right, bottom = fig.panels["axial"]
    assert (right - left, bottom - top) == (40, 20)  # 20 mm x 10 mm at 0.5 mm per pixel


def test_mask_outline_is_drawn_in_yellow_only_when_asked() -> None:
    scan = _scan(shape=(20, 20, 20), spacing=(1.0, 1.0, 1.0))
    mask = np.zeros(scan.shape, bool)
    mask[5:15, 5:15, 5:15] = True
    for outline, expected in ((True, True), (False, False)):
        fig = render_figure(scan, None, FigureOptions(scale=3, mask_outline=outline), mask=mask)
        a = np.asarray(fig.image.crop(fig.panels["axial"]))
        yellow = np.all(a == YELLOW, axis=2)
        assert yellow.any() == expected
        if expected:  # a contour, not a filled square: the centre is not yellow
            assert not yellow[30, 30] and yellow.sum() < 0.3 * (30 * 30)


def test_caption_and_describe() -> None:
    from viewer.explain.result import Relevance
    from viewer.explain.target import Target
    import torch

    r = Relevance(torch.zeros(1, 1, 2, 2, 2), torch.tensor([[0.1, 2.0]]), Target.cls(1), "lrp", "epsilon-plus")
    text = describe(r, ["healthy", "lesion"], [0.2, 0.8])
    assert text == "lrp epsilon-plus | target: lesion | prediction: lesion (0.80)"
    scan = _scan()
    with_caption = render_figure(scan, None, FigureOptions(scale=2, caption=text)).image
    without = render_figure(scan, None, FigureOptions(scale=2)).image
    assert with_caption.size == without.size
    caption_band = np.asarray(with_caption)[-12:]
    assert (caption_band.max(axis=2) > 128).sum() > 20
    assert np.asarray(without)[-12:].max() == 0


def test_save_is_atomic_and_never_overwrites_unasked(tmp_path: Path) -> None:
    scan = _scan()
    path = tmp_path / "figure.png"
    save_figure(path, scan, None, FigureOptions(width=200))
    with pytest.raises(ExportError, match="already exists"):
        save_figure(path, scan, None, FigureOptions(width=300))
    with Image.open(path) as img:
        assert img.size[0] == 200
    save_figure(path, scan, None, FigureOptions(width=300), overwrite=True)
    with Image.open(path) as img:
        assert img.size[0] == 300
    with pytest.raises(ExportError, match=".png"):
        save_figure(tmp_path / "figure.jpg", scan, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png"]


def _dicom_with_patient(path: Path) -> dict[str, str]:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    identity = {"PatientName": "Zyxwvut^Quentina", "PatientID": "PID-8675309", "PatientBirthDate": "19420317",
                "InstitutionName": "St Elsewhere Infirmary"}
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "CT"
    for key, value in identity.items():
        setattr(ds, key, value)
    ds.Rows, ds.Columns = 24, 20
    ds.PixelSpacing = [1.0, 1.0]
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.SliceThickness = 1.0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024.0, 1.0
    ds.WindowCenter, ds.WindowWidth = 40.0, 400.0
    ds.PixelData = (np.arange(24 * 20, dtype=np.int16).reshape(24, 20) + 1000).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return identity


def test_figure_of_a_dicom_is_deidentified(tmp_path: Path) -> None:
    identity = _dicom_with_patient(tmp_path / "slice.dcm")
    scan = load_scan(tmp_path / "slice.dcm")
    rel = np.zeros(scan.shape, np.float32)
    rel.flat[::7] = 1.0
    out = tmp_path / "out.png"
    save_figure(out, scan, rel, FigureOptions(width=400, caption="lrp epsilon-plus | target: class 1"))
    blob = out.read_bytes()
    for value in identity.values():
        for piece in value.replace("^", " ").split():
            assert piece.encode() not in blob
            assert piece.lower().encode() not in blob.lower()
    image = Image.open(io.BytesIO(blob))
    image.load()
    assert image.text == {"Software": "lrp-viewer"}
    chunk_types = _png_chunks(blob)
    assert not ({"tEXt", "zTXt", "iTXt", "eXIf"} & set(chunk_types[1:])) or chunk_types.count("tEXt") == 1
    assert chunk_types.count("tEXt") == 1 and "zTXt" not in chunk_types and "iTXt" not in chunk_types
    assert "eXIf" not in chunk_types


def _png_chunks(blob: bytes) -> list[str]:
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(blob):
        length = int.from_bytes(blob[pos:pos + 4], "big")
        kinds.append(blob[pos + 4:pos + 8].decode("ascii"))
        pos += 12 + length
    return kinds


@pytest.mark.parametrize("shape, spacing, width", [((20, 24, 10), (1.0, 1.0, 3.0), 64 * 3),
                                                   ((30, 40, 1), (0.7, 0.7, 1.0), 97),
                                                   ((8, 50, 30), (2.0, 0.5, 1.0), 2000)])
@pytest.mark.parametrize("with_map", [True, False])
def test_width_is_exact_for_any_shape(shape, spacing, width: int, with_map: bool) -> None:
    scan = _scan(shape=shape, spacing=spacing)
    rel = np.ones(scan.shape, np.float32) if with_map else None
    fig = render_figure(scan, rel, FigureOptions(width=width))
    assert fig.image.size[0] == width
    assert (fig.colorbar is not None) == with_map
    assert all(b[2] <= width for b in fig.panels.values())
