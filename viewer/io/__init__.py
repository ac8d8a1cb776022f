"""Reading scans and writing results. Never imports Qt."""

from viewer.io.errors import (
    CorruptFileError,
    ExportError,
    InconsistentSeriesError,
    MissingDecoderError,
    NoPixelDataError,
    ScanLoadError,
    ScanTooLargeError,
    SessionFileError,
    UnsupportedFormatError,
)
from viewer.io.scan import Scan
from viewer.io.load import load_scan
from viewer.io.nifti import save_nifti

__all__ = [
    "Scan",
    "load_scan",
    "save_nifti",
    "ScanLoadError",
    "UnsupportedFormatError",
    "CorruptFileError",
    "NoPixelDataError",
    "InconsistentSeriesError",
    "MissingDecoderError",
    "ScanTooLargeError",
    "ExportError",
    "SessionFileError",
]
