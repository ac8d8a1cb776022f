"""Which grid the batch writes maps on: the input file's own (default) or RAS (``--grid ras``)."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from viewer.cli.batch import main


def _summary(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return {row["case"]: row for row in csv.DictReader(fh)}


def _map(path: Path) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Image]:
    img = nib.load(path)
    return np.asarray(img.dataobj), img.affine, img


def _write_reoriented(path: Path, ornt_codes: tuple[str, str, str], seed: int = 0) -> nib.Nifti1Image:
    """A RAS test volume stored in another voxel order (e.g. LPS, or sagittal ASL), same world positions."""
    rng = np.random.default_rng(seed)
    data = rng.uniform(0, 1, (16, 18, 14)).astype(np.float32)
    data[4:9, 5:10, 4:9] += 2.0
    affine = np.diag([2.0, 2.0, 2.5, 1.0])
    affine[:3, 3] = [-16, -18, -17]
    ras = nib.Nifti1Image(data, affine)
    transform = nib.orientations.ornt_transform(nib.orientations.io_orientation(affine),
                                                nib.orientations.axcodes2ornt(ornt_codes))
    img = ras.as_reoriented(transform)
    img.set_sform(img.affine, code=2)  # aligned to another scan: the code must survive too
    img.set_qform(img.affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return nib.load(path)


@pytest.mark.parametrize("codes", [("L", "P", "S"), ("A", "S", "L")])
def test_maps_lie_on_the_input_files_grid_unless_ras_is_asked(tmp_path: Path, tiny_card: Path, codes) -> None:
    src = _write_reoriented(tmp_path / "in" / "s.nii.gz", codes)
    assert nib.aff2axcodes(src.affine) == codes
    for grid in ("input", "ras"):
        extra = [] if grid == "input" else ["--grid", "ras"]
        assert main(["--model", str(tiny_card), "--method", "lrp", "--method", "gradcam", *extra,
                     str(tmp_path / "in" / "s.nii.gz"), "--out", str(tmp_path / grid), "--quiet"]) == 0
        assert _summary(tmp_path / grid)["s"]["grid"] == grid
    canonical = nib.as_closest_canonical(src)
    for tag in ("lrp-epsilon-plus", "gradcam"):
        on_input, affine, img = _map(tmp_path / "input" / "s" / f"{tag}.nii.gz")
        assert on_input.shape == src.shape
        np.testing.assert_array_equal(affine, src.affine)
        assert int(img.header["sform_code"]) == 2
        on_ras, ras_affine, _ = _map(tmp_path / "ras" / "s" / f"{tag}.nii.gz")
        assert on_ras.shape == canonical.shape  # today's behaviour: RAS voxel order
        np.testing.assert_allclose(ras_affine, canonical.affine, atol=1e-6)
        # the same map, only laid out differently: nibabel's own reorientation takes one to the other
        np.testing.assert_array_equal(np.asarray(nib.as_closest_canonical(img).dataobj), on_ras)
        assert np.abs(on_ras).max() > 0


def test_a_ras_input_is_written_exactly_as_before(tmp_path: Path, tiny_card: Path, write_case) -> None:
    path = write_case(tmp_path / "in" / "r.nii.gz")
    for grid in ("input", "ras"):
        assert main(["--model", str(tiny_card), "--grid", grid, str(path), "--out", str(tmp_path / grid),
                     "--quiet"]) == 0
    a, affine_a, _ = _map(tmp_path / "input" / "r" / "lrp-epsilon-plus.nii.gz")
    b, affine_b, _ = _map(tmp_path / "ras" / "r" / "lrp-epsilon-plus.nii.gz")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(affine_a, affine_b)


def _write_series(folder: Path, source: np.ndarray, iop: list[float], spacing: tuple[float, float, float],
                  origin: np.ndarray) -> None:
    """A DICOM series of ``source[i, j, k]`` = pixel (row j, column i) of slice k, slices along row × column."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    cols, rows, n = source.shape
    normal = np.cross(iop[:3], iop[3:])
    series, frame = generate_uid(), generate_uid()
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), series, frame
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "MR", 3, n - k  # instance numbers run backwards
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.ImagePositionPatient = [float(v) for v in origin + normal * spacing[2] * k]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.SliceThickness = float(spacing[2])
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.ascontiguousarray(source[:, :, k].T).astype(np.uint16).tobytes()
        ds.save_as(folder / f"slice{n - k:03d}", enforce_file_format=True)


def test_a_dicom_series_map_has_the_series_own_column_row_slice_grid(tmp_path: Path, tiny_card: Path) -> None:
    """Sagittal slices (along a row towards Posterior, down a column towards Inferior): the map's voxel
    (i, j, k) is the series' column i, row j of slice k, and its affine says where that pixel lies."""
    rng = np.random.default_rng(3)
    source = rng.integers(0, 1000, (18, 16, 14)).astype(np.float32)  # (columns, rows, slices)
    source[5:10, 4:9, 4:9] += 2000
    iop = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # rows run towards Posterior (LPS +y), columns towards Inferior
    spacing = (2.0, 2.5, 3.0)  # between columns, between rows, between slices
    origin = np.array([-20.0, -30.0, 40.0])
    _write_series(tmp_path / "in" / "sag", source, iop, spacing, origin)
    for grid in ("input", "ras"):
        assert main(["--model", str(tiny_card), "--grid", grid, str(tmp_path / "in" / "sag"),
                     "--out", str(tmp_path / grid), "--quiet"]) == 0
        assert _summary(tmp_path / grid)["sag"]["status"] == "ok"
    on_input, affine, img = _map(tmp_path / "input" / "sag" / "lrp-epsilon-plus.nii.gz")
    on_ras, _, _ = _map(tmp_path / "ras" / "sag" / "lrp-epsilon-plus.nii.gz")
    assert on_input.shape == source.shape
    lps = np.eye(4)
    lps[:3, 0] = np.array(iop[:3]) * spacing[0]
    lps[:3, 1] = np.array(iop[3:]) * spacing[1]
    lps[:3, 2] = np.cross(iop[:3], iop[3:]) * spacing[2]
    lps[:3, 3] = origin
    np.testing.assert_allclose(affine, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps, atol=1e-6)
    assert nib.aff2axcodes(affine) == ("P", "I", "R")
    np.testing.assert_array_equal(np.asarray(nib.as_closest_canonical(img).dataobj), on_ras)


def test_resuming_with_another_grid_recomputes(tmp_path: Path, tiny_card: Path) -> None:
    src = _write_reoriented(tmp_path / "in" / "g.nii.gz", ("L", "P", "S"))
    out = tmp_path / "out"
    args = ["--model", str(tiny_card), "--method", "saliency", str(tmp_path / "in" / "g.nii.gz"), "--out", str(out),
            "--quiet"]
    assert main(args + ["--grid", "ras"]) == 0
    assert main(args + ["--grid", "ras"]) == 0
    assert _summary(out)["g"]["status"] == "skipped"
    assert main(args) == 0  # default grid "input": the files on disk are on the other grid
    row = _summary(out)["g"]
    assert row["status"] == "ok" and row["grid"] == "input"
    np.testing.assert_array_equal(nib.load(out / "g" / "saliency.nii.gz").affine, src.affine)
