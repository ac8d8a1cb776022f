"""Fixtures for the batch command: a tiny real model card, small NIfTI cases, DICOM series."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def tiny_card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (allow-listed) 3D LesionSideNet with 2 channels per block on a 16³ grid: fast on any CPU."""
    from safetensors.torch import save_file

    from viewer.models.architectures import LesionSideNet

    folder = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    net = LesionSideNet(spatial_dims=3, in_channels=1, num_classes=3, channels=(2, 2, 2, 2), side_bins=2)
    with torch.no_grad():  # non-trivial BatchNorm statistics so folding matters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, folder / "tiny.safetensors")
    (folder / "tiny.toml").write_text(
        """format_version = 1
name = "Tiny 3D test model"
task = "classification"
architecture = "viewer.models.architectures.LesionSideNet"
weights = "tiny.safetensors"
labels = ["no lesion", "lesion left", "lesion right"]
gradcam_layer = "features.2"
preset = "epsilon-plus"

[architecture_args]
spatial_dims = 3
in_channels = 1
num_classes = 3
channels = [2, 2, 2, 2]
side_bins = 2

[input]
spatial_dims = 3
channels = 1
size = [16, 16, 16]
orientation = "RAS"
input_range = [0.0, 1.0]

[input.normalize]
method = "minmax"
percentiles = [0.5, 99.5]
clip = true
"""
    )
    return folder / "tiny.toml"


@pytest.fixture
def write_case() -> Callable[..., Path]:
    """Write a small random NIfTI volume (and optionally its mask) at ``path``."""

    def write(path: Path, shape=(16, 18, 14), seed: int = 0, mask: bool = False) -> Path:
        rng = np.random.default_rng(seed)
        data = rng.uniform(0, 1, shape).astype(np.float32)
        data[4:9, 5:10, 4:9] += 2.0
        affine = np.diag([2.0, 2.0, 2.5, 1.0])
        affine[:3, 3] = [-16, -18, -17]
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data, affine), path)
        if mask:
            m = np.zeros(shape, np.uint8)
            m[4:9, 5:10, 4:9] = 1
            name = path.name.replace(".nii.gz", "_mask.nii.gz")
            nib.save(nib.Nifti1Image(m, affine), path.parent / name)
        return path

    return write


@pytest.fixture
def write_dicom_series() -> Callable[[np.ndarray, Path], Path]:
    """Write a RAS float volume as an axial DICOM CT series (one file per slice, no suffixes)."""

    def write(volume: np.ndarray, folder: Path, spacing=(4.0, 4.0, 4.0)) -> Path:
        import pydicom
        from pydicom.dataset import FileMetaDataset
        from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

        folder.mkdir(parents=True, exist_ok=True)
        nx, ny, nz = volume.shape
        study, series, frame = generate_uid(), generate_uid(), generate_uid()
        slope = 0.001
        for k in range(nz):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = pydicom.Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
            ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
            ds.PatientName, ds.PatientID = "Test^Batch", "BATCH-0001"
            # LPS: rows run towards patient Left (-x RAS), columns towards Posterior (-y RAS)
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            ds.ImagePositionPatient = [0.0, 0.0, float(k * spacing[2])]
            ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
            ds.SliceThickness = float(spacing[2])
            ds.Rows, ds.Columns = ny, nx
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleSlope, ds.RescaleIntercept = slope, 0.0
            plane = volume[::-1, ::-1, k].T  # [row = posterior-wards, column = left-wards]
            ds.PixelData = np.round(plane / slope).astype(np.int16).tobytes()
            ds.save_as(folder / f"IM{k:04d}", enforce_file_format=True)
        return folder

    return write
