"""Does a PNG's image data hold every row its header promises?

A PNG whose compressed image data (IDAT) ends cleanly after fewer rows than the
header's height is decoded by Pillow without complaint: the missing rows come out
black, and the picture looks like a scan with a black band. The check decompresses the
IDAT stream once more, counting bytes without keeping them, and compares the count
with what the header's size, colour type, bit depth and interlacing require (PNG
specification, sections 7.2 and 8.2). It costs one extra inflate of the file, in
fixed memory.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type → samples per pixel
# Adam7 passes: (first row, first column, row step, column step)
_ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))


def missing_rows(path: Path) -> tuple[int, int] | None:
    """``(rows present, rows expected)`` when the image data is short, else None.

    None also when the file is not a plain PNG this check understands (it then leaves
    the judgement to Pillow, which refuses files that end in the middle of the data).
    """
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != _SIGNATURE:
                return None
            header = _chunk(fh)
            if header is None or header[0] != b"IHDR" or len(header[1]) < 13:
                return None
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header[1][:13])
            if colour not in _CHANNELS or width == 0 or height == 0:
                return None
            bits = _CHANNELS[colour] * depth
            rows = _row_lengths(width, height, bits, interlace)
            expected = sum(rows)
            got = _inflated_length(fh, expected)
    except (OSError, struct.error):
        return None
    if got is None or got >= expected:
        return None
    present, total = 0, 0
    for length in rows:  # rows wholly present, in file order (for interlaced files, across the passes)
        total += length
        if total <= got:
            present += 1
    return (present * height) // len(rows), height


def _row_lengths(width: int, height: int, bits: int, interlace: int) -> list[int]:
    """Byte length of every filtered row (filter byte + packed samples), in file order."""
    if interlace != 1:
        return [1 + (width * bits + 7) // 8] * height
    out = []
    for row0, col0, row_step, col_step in _ADAM7:
        cols = (width - col0 + col_step - 1) // col_step if width > col0 else 0
        n_rows = (height - row0 + row_step - 1) // row_step if height > row0 else 0
        if cols:
            out.extend([1 + (cols * bits + 7) // 8] * n_rows)
    return out


def _chunk(fh) -> tuple[bytes, bytes] | None:
    head = fh.read(8)
    if len(head) < 8:
        return None
    length, kind = struct.unpack(">I4s", head)
    data = fh.read(length)
    fh.read(4)  # CRC
    return kind, data


def _inflated_length(fh, limit: int) -> int | None:
    """Bytes the concatenated IDAT chunks inflate to (stopping once past ``limit``); None if undecidable."""
    inflate = zlib.decompressobj()
    total = 0
    seen_idat = False
    while True:
        head = fh.read(8)
        if len(head) < 8:
            break  # file ends: Pillow reports that itself
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IDAT":
            seen_idat = True
            remaining = length
            while remaining > 0:
                data = fh.read(min(remaining, 1 << 20))
                if not data:
                    return None
                remaining -= len(data)
                try:
                    while data:
                        total += len(inflate.decompress(data, 1 << 20))
                        data = inflate.unconsumed_tail
                except zlib.error:
                    return None  # damaged stream: Pillow refuses it
                if total > limit or inflate.eof:
                    return total
            fh.read(4)
        elif seen_idat or kind == b"IEND":
            break
        else:
            fh.seek(length + 4, 1)
    if not seen_idat:
        return None
    try:
        return total + len(inflate.flush())
    except zlib.error:
        return None
