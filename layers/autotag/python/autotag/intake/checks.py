"""Accepting image bytes: every check made before a pixel is decoded.

Size, format (magic bytes), header dimensions and orientation, the decompression-bomb guard, a cheap
integrity check, the decode-memory guard, and the sha256 of the original bytes.
"""

from __future__ import annotations

import hashlib

from autotag.config import ImageLimits
from autotag.errors import EmptyImageError, ImageTooLargeError, UnsupportedFormatError
from autotag.image import ImageFormat, SourceImage, sniff_format
from autotag.intake import decode_memory
from autotag.intake.content import describe_content
from autotag.intake.header import read_header
from autotag.intake.integrity import check_integrity


def inspect_image(data: bytes, *, limits: ImageLimits | None = None) -> SourceImage:
    """Check raw image bytes (format, size, dimensions, bombs, integrity) without decoding pixels."""
    limits = limits or ImageLimits()
    if not data:
        raise EmptyImageError("image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(f"image is {len(data)} bytes; the limit is {limits.max_bytes} bytes")
    image_format = sniff_format(data)
    if image_format is None:
        raise UnsupportedFormatError(
            f"unsupported image format: the data looks like {describe_content(data)}; "
            f"supported: {', '.join(f.value.upper() for f in ImageFormat)}"
        )
    header = read_header(data, image_format, limits)
    check_integrity(data, image_format)
    image = SourceImage(
        data=data,
        format=image_format,
        width=header.width,
        height=header.height,
        sha256=hashlib.sha256(data).hexdigest(),
        orientation=header.orientation,
        max_decode_bytes=decode_memory.decode_budget_bytes(limits.max_decode_mib),
    )
    # Refused here, before any pixel is decoded, when even the cheapest decode cannot fit.
    decode_memory.check(image, image.max_decode_bytes or 0)
    return image
