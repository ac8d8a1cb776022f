"""Which decoders decompress DICOM pixel data, all under permissive licences.

lrp-viewer ships as a BSD-3-Clause binary, so it cannot bundle pylibjpeg-libjpeg
(GPL-3.0). The families that package covered are decoded instead by GDCM
(python-gdcm, Apache-2.0 wrapper of the BSD-licensed GDCM) and CharLS (pyjpegls,
MIT/BSD-3); JPEG 2000/HTJ2K and RLE stay with pylibjpeg-openjpeg and pylibjpeg-rle (MIT).

One gap needed closing: pydicom 3.0 refuses to hand 12-bit *JPEG Extended* frames to
GDCM, although the GDCM in python-gdcm ≥ 3.0.10 carries the 12-bit IJG codec and
decodes them (compared in tests/io/test_dicom_codecs.py with the lossless encoding of
the same image). :func:`register` adds a pydicom decoder plugin that does just that
one case, so old lossy CT/MR exports open without a GPL decoder.
"""

from __future__ import annotations

from typing import Any

from pydicom import uid

PLUGIN = "lrp-viewer-gdcm-12bit"

# pydicom's plugin protocol: which packages the plugin needs for each transfer syntax
DECODER_DEPENDENCIES = {uid.JPEGExtended12Bit: ("python-gdcm>=3.0.10",)}


def _gdcm() -> Any | None:
    try:
        import gdcm  # noqa: PLC0415 - optional at import time of viewer.io
    except ImportError:
        return None
    version = tuple(int(p) for p in gdcm.Version.GetVersion().split(".")[:3] if p.isdigit())
    return gdcm if version >= (3, 0, 10) else None


def is_available(transfer_syntax: str) -> bool:
    """pydicom's plugin protocol: can this plugin decode ``transfer_syntax`` here."""
    return transfer_syntax == uid.JPEGExtended12Bit and _gdcm() is not None


def decode_frame(src: bytes, runner: Any) -> bytes:
    """One 12-bit JPEG Extended frame → little-endian 16-bit samples, via GDCM's image API.

    GDCM decodes a frame when given an image description (size, samples, bit depth)
    and the frame as the single fragment of an encapsulated Pixel Data element.
    8-bit frames are left to pydicom's own plugins (they decode them already).
    """
    if int(runner.bits_stored) <= 8:
        raise NotImplementedError("8-bit JPEG Extended frames are decoded by pydicom's own plugins")
    gdcm = _gdcm()
    if gdcm is None:
        raise NotImplementedError("python-gdcm >= 3.0.10 is not installed")
    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(src)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    pixel_data = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    pixel_data.SetValue(fragments.__ref__())

    image = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((int(runner.columns), int(runner.rows), 1))
    image.SetDataElement(pixel_data)
    pi = gdcm.PhotometricInterpretation.GetPIType(str(runner.photometric_interpretation))
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(pi))
    if int(runner.samples_per_pixel) > 1:
        image.SetPlanarConfiguration(int(runner.planar_configuration))
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGExtendedProcess2_4))
    bits = int(runner.bits_stored)
    runner.set_option("bits_allocated", 16)
    image.SetPixelFormat(gdcm.PixelFormat(int(runner.samples_per_pixel), 16, bits, bits - 1,
                                          int(runner.pixel_representation)))
    # GDCM's SWIG layer returns the buffer as a str of surrogate-escaped bytes
    return image.GetBuffer().encode("utf-8", "surrogateescape")


def register() -> None:
    """Add the 12-bit JPEG Extended plugin to pydicom's decoder (idempotent)."""
    from pydicom.pixels.decoders import JPEGExtended12BitDecoder

    try:
        JPEGExtended12BitDecoder.add_plugin(PLUGIN, (__name__, "decode_frame"))
    except ValueError:  # already registered (pydicom refuses a label twice)
        pass
