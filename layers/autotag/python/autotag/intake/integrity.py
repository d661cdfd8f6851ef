"""Truncation and corruption found without decoding pixels.

JPEG by walking its segments to the EOI marker, PNG by checking every chunk's CRC up to IEND,
WebP/BMP by their container's declared size, GIF by its trailer, TIFF by its strip offsets.
Anything that slips past fails at decode time in `autotag.intake.fit`.
"""

from __future__ import annotations

import io
import re
import struct

from PIL import Image

from autotag.errors import CorruptImageError
from autotag.image import ImageFormat
from autotag.intake.header import PILLOW_FAILURES, failure_reason


def check_integrity(data: bytes, image_format: ImageFormat) -> None:
    try:
        problem = _integrity_problem(data, image_format)
    except PILLOW_FAILURES as exc:
        problem = f"{image_format.value.upper()} is corrupt ({failure_reason(exc)})"
    if problem:
        raise CorruptImageError(problem)


def _integrity_problem(data: bytes, image_format: ImageFormat) -> str | None:
    problem: str | None
    if image_format is ImageFormat.JPEG:
        problem = _jpeg_problem(data)
    elif image_format is ImageFormat.PNG:
        problem = _png_problem(data)
    elif image_format is ImageFormat.WEBP:
        declared = struct.unpack_from("<I", data, 4)[0] + 8
        problem = f"WebP is truncated ({len(data)} of {declared} bytes)" if len(data) < declared else None
    elif image_format is ImageFormat.BMP:
        problem = _bmp_problem(data)
    elif image_format is ImageFormat.GIF:
        problem = _gif_problem(data)
    else:
        problem = _tiff_problem(data)
    return problem


# After a JPEG scan starts, the next marker is a 0xFF not followed by a stuffed 0x00 or a restart marker.
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_JPEG_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})


def _jpeg_problem(data: bytes) -> str | None:
    """Walk the JPEG's segments to its end-of-image marker (a truncated file has none)."""
    position, size = 2, len(data)
    while position < size:
        if data[position] != 0xFF:
            return f"JPEG is corrupt (no marker at byte {position})"
        while position + 1 < size and data[position + 1] == 0xFF:
            position += 1  # fill bytes
        if position + 1 >= size:
            break
        marker = data[position + 1]
        if marker == 0xD9:
            return None
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        if position + 4 > size:
            break
        end = position + 2 + struct.unpack_from(">H", data, position + 2)[0]
        if end > size:
            break
        if marker == 0xDA:
            found = _JPEG_NEXT_MARKER.search(data, end)
            if found is None:
                break
            end = found.start()
        position = end
    return "JPEG is truncated (it ends before its end-of-image marker)"


def _png_problem(data: bytes) -> str | None:
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        try:
            image.verify()  # chunk CRCs up to IEND, no inflating
        except PILLOW_FAILURES as exc:
            return f"PNG is truncated or corrupt ({failure_reason(exc)})"
    return None


def _gif_problem(data: bytes) -> str | None:
    """Walk the GIF's blocks to its trailer (sub-blocks are at most 255 bytes: a quick walk)."""
    size = len(data)
    position = 13
    if size >= 13 and data[10] & 0x80:
        position += 3 << ((data[10] & 0x07) + 1)  # global colour table
    while position < size:
        block = data[position]
        if block == 0x3B:
            return None
        if block == 0x21:  # extension: label, then sub-blocks
            position += 2
        elif block == 0x2C:  # image descriptor, local colour table, LZW code size, then sub-blocks
            if position + 10 > size:
                break
            flags = data[position + 9]
            position += 10 + ((3 << ((flags & 0x07) + 1)) if flags & 0x80 else 0) + 1
        else:
            return f"GIF is corrupt (unknown block 0x{block:02x} at byte {position})"
        while position < size and data[position]:
            position += data[position] + 1
        position += 1  # the zero-length terminator
    return "GIF is truncated (it ends before its trailer)"


def _bmp_problem(data: bytes) -> str | None:
    declared = struct.unpack_from("<I", data, 2)[0]
    pixel_offset = struct.unpack_from("<I", data, 10)[0]
    # Some writers leave the declared file size 0; the pixel-array offset must be inside the file.
    if (declared and len(data) < declared) or pixel_offset >= len(data):
        return f"BMP is truncated ({len(data)} bytes; header says {declared or pixel_offset + 1}+)"
    return None


def _tiff_problem(data: bytes) -> str | None:
    with Image.open(io.BytesIO(data), formats=["TIFF"]) as image:
        tags = getattr(image, "tag_v2", {})
        offsets = tags.get(273) or tags.get(324) or ()  # StripOffsets / TileOffsets
        counts = tags.get(279) or tags.get(325) or ()  # StripByteCounts / TileByteCounts
    offsets = offsets if isinstance(offsets, tuple) else (offsets,)
    counts = counts if isinstance(counts, tuple) else (counts,)
    # The TIFF spec allows only SHORT or LONG here; text, bytes or rationals are a damaged file.
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (*offsets, *counts)):
        return "TIFF is corrupt (its strip or tile offsets and byte counts are not integers)"
    end = max((o + c for o, c in zip(offsets, counts, strict=False)), default=0)
    if end > len(data):
        return f"TIFF is truncated ({len(data)} bytes; its image data runs to byte {end})"
    return None
