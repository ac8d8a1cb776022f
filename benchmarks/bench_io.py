"""How fast ``load_scan`` reads, compared with the bare library reads of the same files.

Generates (once, in a temporary folder) a 512×512×300 uncompressed 16-bit CT series and
256³ int16 .nii.gz volumes (RAS and LAS orientation), then times in this process:

* bare DICOM: ``pydicom.dcmread`` every file + ``np.stack`` of ``pixel_array``;
* bare NIfTI: ``nibabel.load(path).get_fdata(dtype=np.float32)``;
* ours: ``viewer.io.load_scan`` on the same folder / file (which also sorts slices,
  applies the rescale in float32, builds the RAS affine and reorients).

Target: ours within 1.5× of bare. Also prints each load's peak traced memory (numpy
buffers, via ``tracemalloc``, in a separate untimed run) divided by the size of the float32
scan it returns: 1.0 is the least possible. Prints a table; run as
``python benchmarks/bench_io.py``.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from viewer.io import load_scan  # noqa: E402

ROWS = COLS = 512
SLICES = 300
NIFTI_SIZE = 256
REPEATS = 3


def write_series(folder: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 3000, size=(ROWS, COLS), dtype=np.uint16)
    series = generate_uid()
    paths = []
    order = rng.permutation(SLICES)  # files written in shuffled order, names unrelated to position
    for n, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series
        ds.InstanceNumber = int(k) + 1
        ds.ImagePositionPatient = [-250.0, -250.0, -300.0 + 1.25 * float(k)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.9765625, 0.9765625]
        ds.SliceThickness = 1.25
        ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
        ds.WindowCenter, ds.WindowWidth = 40.0, 400.0
        ds.Rows, ds.Columns = ROWS, COLS
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = np.roll(base, int(k), axis=1).tobytes()
        path = folder / f"IM{n:05d}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_nifti(folder: Path, name: str, las: bool) -> Path:
    rng = np.random.default_rng(1)
    data = rng.integers(-1000, 2000, size=(NIFTI_SIZE,) * 3, dtype=np.int16)
    affine = np.diag([-1.0 if las else 1.0, 1.0, 1.0, 1.0])
    img = nib.Nifti1Image(data, affine)
    img.header.set_slope_inter(0.5, -10.0)
    path = folder / name
    nib.save(img, str(path))
    return path


def best_of(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        del out
    return min(times)


def peak_over_result(load) -> float:
    """Peak traced memory while ``load()`` runs, divided by the bytes of the scan it returns."""
    gc.collect()
    tracemalloc.start()
    try:
        scan = load()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / scan.data.nbytes


def bare_dicom(paths: list[Path]) -> np.ndarray:
    datasets = [pydicom.dcmread(p) for p in paths]
    return np.stack([ds.pixel_array for ds in datasets])


def bare_nifti(path: Path) -> np.ndarray:
    return nib.load(str(path)).get_fdata(dtype=np.float32)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_io_") as tmp:
        root = Path(tmp)
        folder = root / "series"
        folder.mkdir()
        t0 = time.perf_counter()
        paths = write_series(folder)
        nii_ras = write_nifti(root, "ras.nii.gz", las=False)
        nii_las = write_nifti(root, "las.nii.gz", las=True)
        print(f"generated data in {time.perf_counter() - t0:.1f} s")

        scan = load_scan(folder)  # warm-up + sanity check
        assert scan.shape == (COLS, ROWS, SLICES), scan.shape
        rows = [
            (f"DICOM series {ROWS}x{COLS}x{SLICES} (uint16)", best_of(lambda: bare_dicom(paths)),
             best_of(lambda: load_scan(folder)), peak_over_result(lambda: load_scan(folder))),
            (f"NIfTI {NIFTI_SIZE}^3 int16 .nii.gz, RAS", best_of(lambda: bare_nifti(nii_ras)),
             best_of(lambda: load_scan(nii_ras)), peak_over_result(lambda: load_scan(nii_ras))),
            (f"NIfTI {NIFTI_SIZE}^3 int16 .nii.gz, LAS", best_of(lambda: bare_nifti(nii_las)),
             best_of(lambda: load_scan(nii_las)), peak_over_result(lambda: load_scan(nii_las))),
        ]
    print()
    print(f"{'data':42s} {'bare read':>10s} {'load_scan':>10s} {'ratio':>7s} {'peak/result':>12s}")
    for name, bare, ours, peak in rows:
        print(f"{name:42s} {bare:9.3f}s {ours:9.3f}s {ours / bare:6.2f}x {peak:11.2f}x")
    print(f"\nbest of {REPEATS} runs each; target ratio <= 1.5")


if __name__ == "__main__":
    main()
