"""Writes small synthetic DICOM files with pydicom, for tests that need exact, known geometry."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

# Sentinel identifying values: tests assert they never appear in meta, source or messages.
PATIENT_NAME = "Sentinel^Patient"
PATIENT_ID = "SENTINEL-ID-4711"
BIRTH_DATE = "19010203"
INSTITUTION = "Sentinel Hospital"


def ct_slice(
    pixels: np.ndarray,
    position: Sequence[float],
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    spacing: Sequence[float] = (0.8, 0.7),
    series_uid: str | None = None,
    instance: int = 1,
    slope: float = 1.0,
    intercept: float = -1024.0,
    window: tuple[float, float] | None = (40.0, 400.0),
    description: str = "synthetic CT",
) -> Dataset:
    """A CT Image dataset holding ``pixels`` (rows, cols) as uint16 stored values."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    ds.InstitutionName = INSTITUTION
    ds.StudyDescription = f"study of {PATIENT_NAME}"
    ds.Modality = "CT"
    ds.Manufacturer = "lrp-viewer tests"
    ds.SeriesDescription = description
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = series_uid or "1.2.826.0.1.3680043.8.498.2"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in spacing]
    ds.SliceThickness = 99.0  # deliberately wrong: spacing must come from positions
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    return ds


def write_series(
    folder: Path,
    volume: np.ndarray,
    positions: np.ndarray,
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    spacing: Sequence[float] = (0.8, 0.7),
    series_uid: str | None = None,
    names: Sequence[str] | None = None,
    **kwargs,
) -> list[Path]:
    """Write ``volume[k]`` (rows, cols) at ``positions[k]`` as one file each; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(volume.shape[0]):
        ds = ct_slice(volume[k], positions[k], orientation, spacing, series_uid, instance=k + 1, **kwargs)
        path = folder / (names[k] if names else f"slice_{k:03d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
