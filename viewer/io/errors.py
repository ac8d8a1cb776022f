"""Errors a user can cause while opening or writing files."""


class ScanLoadError(Exception):
    """A scan could not be read; the message says what was wrong and what to do."""


class UnsupportedFormatError(ScanLoadError):
    """The file is not an image format lrp-viewer reads."""


class CorruptFileError(ScanLoadError):
    """The file is truncated or damaged."""


class NoPixelDataError(ScanLoadError):
    """A DICOM object without an image (RT plan, structured report, ...)."""


class InconsistentSeriesError(ScanLoadError):
    """A DICOM series whose slices do not form one regular volume."""


class MissingDecoderError(ScanLoadError):
    """Compressed pixel data with no installed decoder."""


class ScanTooLargeError(ScanLoadError):
    """The scan is over the voxel budget (see :mod:`viewer.io.memory`); the message names its size."""


class ExportError(Exception):
    """A result could not be written (target exists, folder missing or read-only, disk full, ...).

    The message names the file and the reason; a file that was there before is left unchanged.
    """


class SessionFileError(Exception):
    """A session file is malformed, truncated or from a newer lrp-viewer; says what to do."""
