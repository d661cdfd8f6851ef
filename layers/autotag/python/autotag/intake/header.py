"""Opening an image lazily (header only): dimensions, EXIF orientation, the decompression-bomb guard,
and Pillow's failures on untrusted bytes mapped onto our error taxonomy."""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass

from PIL import Image, ImageFile

from autotag.config import ImageLimits
from autotag.errors import CorruptImageError, DecompressionBombError
from autotag.image import ImageFormat

_ORIENTATION_TAG = 0x0112

PILLOW_FAILURES: tuple[type[Exception], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    ZeroDivisionError,
    AttributeError,
    RecursionError,
    struct.error,
    EOFError,
)
"""What Pillow's readers raise on hostile or damaged files (beyond OSError, which it documents):
every Pillow call on input bytes maps these to our CorruptImageError, whatever the plugin."""


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    orientation: int


_PILLOW_PIXELS = re.compile(r"\((\d+) pixels\)")


def bomb_error(pixels: int | None, limit: int, detail: str = "") -> DecompressionBombError:
    size = f"{pixels} pixels" if pixels is not None else "too many pixels"
    return DecompressionBombError(
        f"image has {size}{detail}, over the limit of {limit} (possible decompression bomb)"
    )


def open_lazily(data: bytes, image_format: ImageFormat, limits: ImageLimits) -> ImageFile.ImageFile:
    """Open lazily (header only), mapping Pillow's failures onto our taxonomy."""
    try:
        image = Image.open(io.BytesIO(data), formats=[image_format.pil_name])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (the warning only arrives as an exception under a strict filter).
        found = _PILLOW_PIXELS.search(str(exc))
        raise bomb_error(int(found.group(1)) if found else None, limits.max_pixels) from None
    except PILLOW_FAILURES as exc:
        raise CorruptImageError(
            f"{image_format.value.upper()} header is damaged or unreadable ({failure_reason(exc)})"
        ) from None
    assert isinstance(image, ImageFile.ImageFile)
    return image


def failure_reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def read_header(data: bytes, image_format: ImageFormat, limits: ImageLimits) -> Header:
    with open_lazily(data, image_format, limits) as image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise CorruptImageError(f"image declares an empty size {width}x{height}")
        if width * height > limits.max_pixels:
            raise bomb_error(width * height, limits.max_pixels, f" ({width}x{height})")
        try:
            orientation = int(header_exif(image).get(_ORIENTATION_TAG, 1))
        except PILLOW_FAILURES:
            orientation = 1  # unreadable EXIF is not worth refusing the image for
    return Header(width, height, orientation if orientation in range(1, 9) else 1)


def header_exif(image: Image.Image) -> Image.Exif:
    """The EXIF an opened image carries in its header, without decoding pixels.

    Pillow's PNG ``getexif()`` decodes the whole image to look for an eXIf chunk after the pixel
    data; only the chunks before the pixels are read here (where writers put it).
    """
    if image.format == "PNG":
        exif = Image.Exif()
        raw = image.info.get("exif")
        if isinstance(raw, bytes):
            exif.load(raw)
        return exif
    return image.getexif()
