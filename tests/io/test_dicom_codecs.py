"""Every compressed DICOM in pydicom's and pydicom-data's test files decodes with the
permissively licensed decoders lrp-viewer depends on, to the same pixels as before.

REFERENCE was recorded with pylibjpeg-libjpeg (the GPL-3.0 decoder these replace) and
pylibjpeg-openjpeg/-rle: shape, dtype, the first 16 hex digits of the SHA-256 of the
decoded array, and its mean. Lossless and deterministic codecs must match the hash
exactly; lossy baseline/extended JPEG differs between IJG-based decoders (GDCM, Pillow)
and libjpeg by rounding in the inverse DCT (at most 5 grey levels here), so those must
match shape, dtype and mean.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings

import numpy as np
import pytest
from pydicom import dcmread

from tests.io.scan_data import _dicom_dirs, dicom_file
from viewer.io import CorruptFileError
from viewer.io.dicom_codecs import PLUGIN
from viewer.io.dicom_pixels import decode_frames

JPEG_LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}

# name: (transfer syntax, shape, dtype, sha256[:16], mean), decoded by pylibjpeg-libjpeg/-openjpeg/-rle
REFERENCE = {
    "693_J2KI.dcm": ("1.2.840.10008.1.2.4.91", (512, 512), "int16", "f249f833d5e3cbc3", -8.3228),
    "693_J2KR.dcm": ("1.2.840.10008.1.2.4.90", (512, 512), "int16", "6b3b6bb553a0b569", -11.5630),
    "GDCMJ2K_TextGBR.dcm": ("1.2.840.10008.1.2.4.90", (400, 400, 3), "uint8", "bea5673fdd49313f", 124.4359),
    "J2K_pixelrep_mismatch.dcm": ("1.2.840.10008.1.2.4.90", (512, 512), "int16", "1296350a0006ef69", -658.4368),
    "JPEG2000.dcm": ("1.2.840.10008.1.2.4.91", (1024, 256), "int16", "0b1224a6dcd0dceb", 13.4582),
    "JPEG-LL.dcm": ("1.2.840.10008.1.2.4.70", (1024, 256), "int16", "a6e9d32143339d3f", 13.7194),
    "JPEGLSNearLossless_08.dcm": ("1.2.840.10008.1.2.4.81", (45, 10), "uint8", "9eb46aa86c342094", 55.5556),
    "JPEGLSNearLossless_16.dcm": ("1.2.840.10008.1.2.4.81", (50, 10), "uint16", "f929318278115ce9", 12014.5000),
    "JPGExtended.dcm": ("1.2.840.10008.1.2.4.51", (1024, 256), "uint16", "b1d76492f77a12c5", 14.3830),
    "JPGLosslessP14SV1_1s_1f_8b.dcm": ("1.2.840.10008.1.2.4.70", (768, 1024), "uint8", "36e27e4f1e87a7d5", 17.2578),
    "MR2_J2KI.dcm": ("1.2.840.10008.1.2.4.91", (1024, 1024), "uint16", "5964b5a1b27090d6", 75.1347),
    "MR2_J2KR.dcm": ("1.2.840.10008.1.2.4.90", (1024, 1024), "uint16", "7d1a676f3c012d0c", 75.0836),
    "MR_small_RLE.dcm": ("1.2.840.10008.1.2.5", (64, 64), "int16", "88617aaa46138fb1", 518.8813),
    "MR_small_jp2klossless.dcm": ("1.2.840.10008.1.2.4.90", (64, 64), "int16", "88617aaa46138fb1", 518.8813),
    "MR_small_jpeg_ls_lossless.dcm": ("1.2.840.10008.1.2.4.80", (64, 64), "int16", "88617aaa46138fb1", 518.8813),
    "OBXXXX1A_rle.dcm": ("1.2.840.10008.1.2.5", (600, 800), "uint8", "48abdc16b5064b61", 31.8279),
    "OBXXXX1A_rle_2frame.dcm": ("1.2.840.10008.1.2.5", (2, 600, 800), "uint8", "a4e8cb3611e675c7", 127.5000),
    "RG1_J2KI.dcm": ("1.2.840.10008.1.2.4.91", (1955, 1841), "uint16", "88aa9135b12d8582", 7391.4497),
    "RG1_J2KR.dcm": ("1.2.840.10008.1.2.4.90", (1955, 1841), "uint16", "26721b2112d94887", 7391.4572),
    "RG3_J2KI.dcm": ("1.2.840.10008.1.2.4.91", (1760, 1760), "uint16", "25559cb05640e9e9", 332.7166),
    "RG3_J2KR.dcm": ("1.2.840.10008.1.2.4.90", (1760, 1760), "uint16", "85480a0287e37795", 332.7147),
    "SC_jpeg_no_color_transform.dcm": ("1.2.840.10008.1.2.4.50", (256, 256, 3), "uint8", "b095963c15d9d3d8", 243.9728),
    "SC_jpeg_no_color_transform_2.dcm": ("1.2.840.10008.1.2.4.50", (256, 256, 3), "uint8", "10b2e0c8e7e6ac55",
                                         245.6377),
    "SC_rgb_dcmtk_+eb+cr.dcm": ("1.2.840.10008.1.2.4.50", (100, 100, 3), "uint8", "cf36f540ffcc5c8d", 127.7433),
    "SC_rgb_dcmtk_+eb+cy+n1.dcm": ("1.2.840.10008.1.2.4.50", (100, 100, 3), "uint8", "dd0201297dfb9448", 127.5833),
    "SC_rgb_dcmtk_+eb+cy+n2.dcm": ("1.2.840.10008.1.2.4.50", (100, 100, 3), "uint8", "ddb100d8f45a7fbf", 127.7333),
    "SC_rgb_dcmtk_+eb+cy+np.dcm": ("1.2.840.10008.1.2.4.50", (100, 100, 3), "uint8", "dd0201297dfb9448", 127.5833),
    "SC_rgb_dcmtk_+eb+cy+s2.dcm": ("1.2.840.10008.1.2.4.50", (100, 100, 3), "uint8", "ddb100d8f45a7fbf", 127.7333),
    "SC_rgb_dcmtk_+eb+cy+s4.dcm": ("1.2.840.10008.1.2.4.50", (100, 100, 3), "uint8", "ddb100d8f45a7fbf", 127.7333),
    "SC_rgb_gdcm_KY.dcm": ("1.2.840.10008.1.2.4.91", (100, 100, 3), "uint8", "169e619557b12114", 127.7000),
    "SC_rgb_jls_lossy_line.dcm": ("1.2.840.10008.1.2.4.81", (100, 100, 3), "uint8", "bd5344c0a46bc6c0", 128.0000),
    "SC_rgb_jls_lossy_sample.dcm": ("1.2.840.10008.1.2.4.81", (100, 100, 3), "uint8", "bd5344c0a46bc6c0", 128.0000),
    "SC_rgb_jpeg_app14_dcmd.dcm": ("1.2.840.10008.1.2.4.50", (256, 256, 3), "uint8", "10b2e0c8e7e6ac55", 245.6377),
    "SC_rgb_jpeg_dcmtk.dcm": ("1.2.840.10008.1.2.4.50", (100, 100, 3), "uint8", "ddb100d8f45a7fbf", 127.7333),
    "SC_rgb_jpeg_gdcm.dcm": ("1.2.840.10008.1.2.4.70", (100, 100, 3), "uint8", "169e619557b12114", 127.7000),
    "SC_rgb_jpeg_lossy_gdcm.dcm": ("1.2.840.10008.1.2.4.50", (100, 100, 3), "uint8", "7ae67b4a9ac56c58", 127.5367),
    "SC_rgb_rle.dcm": ("1.2.840.10008.1.2.5", (100, 100, 3), "uint8", "169e619557b12114", 127.7000),
    "SC_rgb_rle_16bit.dcm": ("1.2.840.10008.1.2.5", (100, 100, 3), "uint16", "36de0258708d3af7", 32818.9000),
    "SC_rgb_rle_16bit_2frame.dcm": ("1.2.840.10008.1.2.5", (2, 100, 100, 3), "uint16", "d7e2338dd240b58c", 32767.5000),
    "SC_rgb_rle_2frame.dcm": ("1.2.840.10008.1.2.5", (2, 100, 100, 3), "uint8", "026dac3bc332e46b", 127.5000),
    "SC_rgb_rle_32bit.dcm": ("1.2.840.10008.1.2.5", (100, 100, 3), "uint32", "1a243c9351e3a9ae", 2150852249.3000),
    "SC_rgb_rle_32bit_2frame.dcm": ("1.2.840.10008.1.2.5", (2, 100, 100, 3), "uint32", "3caa80cc3032f745",
                                    2147483647.5000),
    "SC_rgb_small_odd_jpeg.dcm": ("1.2.840.10008.1.2.4.50", (3, 3, 3), "uint8", "f750a80478763f97", 128.3333),
    "US1_J2KI.dcm": ("1.2.840.10008.1.2.4.91", (480, 640, 3), "uint8", "2138e755d364de89", 34.6906),
    "US1_J2KR.dcm": ("1.2.840.10008.1.2.4.90", (480, 640, 3), "uint8", "e16892020c73095e", 34.5288),
    "bad_sequence.dcm": ("1.2.840.10008.1.2.4.70", (512, 512), "uint16", "ef7120ddfc77c166", 947.3744),
    "color3d_jpeg_baseline.dcm": ("1.2.840.10008.1.2.4.50", (120, 480, 640, 3), "uint8", "2701df1f19ab67d8", 10.8824),
    "emri_small_RLE.dcm": ("1.2.840.10008.1.2.5", (10, 64, 64), "uint16", "9719c5d0f62ce971", 109.6991),
    "emri_small_jpeg_2k_lossless.dcm": ("1.2.840.10008.1.2.4.90", (10, 64, 64), "uint16", "9719c5d0f62ce971",
                                        109.6991),
    "emri_small_jpeg_ls_lossless.dcm": ("1.2.840.10008.1.2.4.80", (10, 64, 64), "uint16", "9719c5d0f62ce971",
                                        109.6991),
    "examples_jpeg2k.dcm": ("1.2.840.10008.1.2.4.90", (480, 640, 3), "uint8", "e16892020c73095e", 34.5288),
    "examples_ybr_color.dcm": ("1.2.840.10008.1.2.4.50", (30, 240, 320, 3), "uint8", "4e5a7293e30281ca", 10.5034),
    "explicit_VR-UN.dcm": ("1.2.840.10008.1.2.4.90", (512, 512), "int16", "a729f6fe1e757629", -670.9574),
    "rtdose_rle.dcm": ("1.2.840.10008.1.2.5", (15, 10, 10), "uint32", "e30a4288ac229022", 1013273.3333),
    "rtdose_rle_1frame.dcm": ("1.2.840.10008.1.2.5", (10, 10), "uint32", "67f96b3373d7acf1", 1013780.0000),
}

# Damaged on purpose in pydicom's test set: no decoder reads it (libjpeg neither).
DAMAGED = {"JPEG2000-embedded-sequence-delimiter.dcm"}
# Not in REFERENCE: lossy 12-bit JPEG that libjpeg rejected ("misplaced marker segment"),
# which GDCM decodes; and a JPEG whose encapsulation pydicom reads only from a dataset,
# not through ``pixel_array(path)`` as the reference was recorded.
ONLY_NOW = {"JPEG-lossy.dcm", "SC_rgb_jpeg.dcm"}


@pytest.fixture(scope="module", autouse=True)
def _no_gpl_decoder():
    assert importlib.util.find_spec("libjpeg") is None, (
        "pylibjpeg-libjpeg (GPL-3.0) is installed; uninstall it: these tests prove decoding without it")


def _compressed_files() -> dict[str, tuple[str, object]]:
    """name -> (transfer syntax, path) of every compressed image in the installed test data."""
    found: dict[str, tuple[str, object]] = {}
    for folder in _dicom_dirs():
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = dcmread(path, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - not DICOM
                continue
            ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            if ts is not None and ts.is_compressed and "PixelData" in dcmread(path, defer_size=64):
                found[path.name] = (str(ts), path)
    return found


def _decode(path) -> np.ndarray:
    """Stored values (before palettes and rescaling) as decoded through viewer.io."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(path)
        if str(ds.get("PhotometricInterpretation", "")).startswith("PALETTE"):
            del ds.PhotometricInterpretation  # compare the indices, as the reference does
            ds.PhotometricInterpretation = "MONOCHROME2"
        arr = decode_frames(ds, path.name)
    return arr[0] if arr.shape[0] == 1 else arr


def test_every_compressed_file_is_known():
    files = _compressed_files()
    if len(files) < 20:
        pytest.skip("pydicom-data is not installed")
    assert set(files) == set(REFERENCE) | DAMAGED | ONLY_NOW
    # transfer syntaxes covered: JPEG baseline/extended/lossless SV1, JPEG-LS (both), J2K (both), RLE
    assert {ts for ts, _ in files.values()} == {ts for ts, *_ in REFERENCE.values()}
    assert len({ts for ts, *_ in REFERENCE.values()}) == 8


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_decodes_like_the_reference(name):
    ts, shape, dtype, digest, mean = REFERENCE[name]
    arr = _decode(dicom_file(name))
    assert arr.shape == shape
    assert str(arr.dtype) == dtype
    if ts in JPEG_LOSSY:
        assert float(arr.mean()) == pytest.approx(mean, abs=0.05)
    else:
        assert hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16] == digest


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_damaged_files_raise_the_project_error(name):
    with pytest.raises(CorruptFileError):
        _decode(dicom_file(name))


@pytest.mark.parametrize(("lossy", "max_mean_error"), [("JPGExtended.dcm", 2.5), ("JPEG-lossy.dcm", 2.5)])
def test_12bit_jpeg_extended_matches_the_lossless_encoding(lossy, max_mean_error):
    """The same CT image, stored as 12-bit lossy JPEG and as lossless JPEG: decoded by GDCM
    through our plugin, the lossy one stays within JPEG's quantisation error of the original."""
    original = _decode(dicom_file("JPEG-LL.dcm")).astype(np.int32)
    decoded = _decode(dicom_file(lossy)).astype(np.int32)
    assert decoded.shape == original.shape == (1024, 256)
    error = np.abs(decoded - original)
    assert error.mean() < max_mean_error
    assert np.corrcoef(decoded.ravel(), original.ravel())[0, 1] > 0.985


def test_jpeg_read_from_a_dataset_matches_its_twin():
    """SC_rgb_jpeg.dcm holds the same JPEG stream as SC_jpeg_no_color_transform.dcm."""
    np.testing.assert_array_equal(_decode(dicom_file("SC_rgb_jpeg.dcm")),
                                  _decode(dicom_file("SC_jpeg_no_color_transform.dcm")))


def test_lossless_codecs_give_the_uncompressed_pixels():
    """JPEG lossless, JPEG-LS lossless, JPEG 2000 lossless and RLE against the plain file."""
    for plain, compressed in [("MR_small.dcm", ("MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm",
                                                "MR_small_RLE.dcm")),
                              ("SC_rgb.dcm", ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm", "SC_rgb_gdcm_KY.dcm"))]:
        expected = _decode(dicom_file(plain))
        for name in compressed:
            np.testing.assert_array_equal(_decode(dicom_file(name)), expected, err_msg=name)


def test_12bit_plugin_is_registered_with_pydicom():
    from pydicom.pixels.decoders import JPEGExtended12BitDecoder

    assert PLUGIN in JPEGExtended12BitDecoder.available_plugins
