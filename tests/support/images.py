"""Test images generated with Pillow: deterministic, small unless asked otherwise.

Use the ``*_bytes`` helpers for encoded files and :func:`photo_like` for a realistic-looking picture
(gradients, noise and shapes: JPEG sizes come out like a real photo's, unlike flat colour).
"""

from __future__ import annotations

import io
import math
import random
import struct
import zlib
from typing import Any

from autotag.image import ImageFormat
from PIL import Image, ImageDraw

ORIENTATION = 0x0112
MAKE = 0x010F
MODEL = 0x0110
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
FLASH = 0x9209


def photo_like(width: int = 640, height: int = 480, *, seed: int = 0) -> Image.Image:
    """An RGB picture with sky-to-ground gradients, sensor-like noise and random shapes."""
    rng = random.Random(seed)
    vertical = Image.linear_gradient("L").resize((width, height))
    radial = Image.radial_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 24)
    red = Image.blend(vertical, noise, 0.25)
    green = Image.blend(radial, noise, 0.2)
    blue = Image.blend(vertical.transpose(Image.Transpose.FLIP_TOP_BOTTOM), noise, 0.3)
    picture = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(picture)
    shortest = min(width, height)
    for _ in range(24):
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randrange(max(2, shortest // 40), max(3, shortest // 6))
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if rng.random() < 0.5:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
        else:
            draw.rectangle((x - radius, y - radius // 2, x + radius, y + radius // 2), fill=colour)
    return picture


def make_exif(
    *,
    orientation: int | None = None,
    make: str | None = None,
    model: str | None = None,
    gps: bool = False,
    flash: bool | None = None,
) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    if make is not None:
        exif[MAKE] = make
    if model is not None:
        exif[MODEL] = model
    if gps:
        exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    if flash is not None:
        exif.get_ifd(EXIF_IFD)[FLASH] = 1 if flash else 0
    return exif


def encode(picture: Image.Image, image_format: ImageFormat | str, **options: Any) -> bytes:
    """Encode in any of our formats (GIF is palettized by Pillow)."""
    buffer = io.BytesIO()
    name = image_format.pil_name if isinstance(image_format, ImageFormat) else image_format.upper()
    picture.save(buffer, name, **options)
    return buffer.getvalue()


def jpeg_bytes(
    width: int = 640,
    height: int = 480,
    *,
    quality: int = 90,
    seed: int = 0,
    exif: Image.Exif | None = None,
    picture: Image.Image | None = None,
) -> bytes:
    """A photo-like JPEG, optionally with EXIF (see :func:`make_exif`)."""
    picture = picture if picture is not None else photo_like(width, height, seed=seed)
    options: dict[str, Any] = {"quality": quality}
    if exif is not None:
        options["exif"] = exif
    return encode(picture, ImageFormat.JPEG, **options)


def camera_jpeg(width: int = 640, height: int = 480, **exif_fields: Any) -> bytes:
    """A photo-like JPEG with camera EXIF: Canon EOS 5D, GPS and flash fired unless overridden."""
    fields: dict[str, Any] = {"make": "Canon", "model": "Canon EOS 5D", "gps": True, "flash": True}
    fields.update(exif_fields)
    return jpeg_bytes(width, height, exif=make_exif(**fields))


def all_formats(width: int = 120, height: int = 80, *, seed: int = 0) -> dict[ImageFormat, bytes]:
    """The same picture in each supported format."""
    picture = photo_like(width, height, seed=seed)
    return {image_format: encode(picture, image_format) for image_format in ImageFormat}


def png_with_alpha(width: int = 200, height: int = 200) -> bytes:
    """A red disc on a fully transparent background (RGBA PNG)."""
    picture = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(picture).ellipse((width // 6, height // 6, width * 5 // 6, height * 5 // 6), (220, 30, 30))
    return encode(picture, ImageFormat.PNG)


def opaque_rgba_png(width: int = 120, height: int = 90) -> bytes:
    """An RGBA PNG whose alpha is 255 everywhere (not actually transparent)."""
    return encode(photo_like(width, height).convert("RGBA"), ImageFormat.PNG)


def grayscale_image(width: int = 320, height: int = 240) -> Image.Image:
    return photo_like(width, height).convert("L")


def grayscale_bytes(
    width: int = 320, height: int = 240, image_format: ImageFormat = ImageFormat.JPEG
) -> bytes:
    return encode(grayscale_image(width, height), image_format)


def solid_bytes(
    colour: tuple[int, ...] | str,
    width: int = 64,
    height: int = 64,
    image_format: ImageFormat | str = ImageFormat.PNG,
    mode: str = "RGB",
) -> bytes:
    return encode(Image.new(mode, (width, height), colour), image_format)


def truncated_jpeg(width: int = 320, height: int = 240, *, keep: float = 0.6) -> bytes:
    data = jpeg_bytes(width, height)
    return data[: int(len(data) * keep)]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header declares width x height greyscale pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    # One zero row compresses to a few bytes; the header alone is what a bomb guard must catch.
    pixels = zlib.compress(b"\x00" * (width + 1), 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


def decode(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


# --- Hostile files: crafted headers, tiny on disk --------------------------------------------------

TIFF_SHORT, TIFF_ASCII, TIFF_LONG, TIFF_RATIONAL, TIFF_UNDEFINED = 3, 2, 4, 5, 7


def tiff_with_strip_types(
    offsets_type: int = TIFF_LONG, counts_type: int = TIFF_LONG, side: int = 8
) -> bytes:
    """An 8-bit greyscale TIFF whose StripOffsets / StripByteCounts have the given field types:
    LONG is a valid file; ASCII (text), UNDEFINED (bytes) or RATIONAL (zero denominator) is not."""
    pixels = bytes(side * side)
    count = 9
    extra_at = 8 + 2 + count * 12 + 4
    pixels_at = extra_at + 16
    extra = bytearray()

    def field(kind: int, number: int) -> tuple[int, int, bytes]:
        if kind == TIFF_ASCII:
            return kind, 4, b"abc\0"
        if kind == TIFF_UNDEFINED:
            return kind, 4, b"\x01\x02\x03\x04"
        if kind == TIFF_RATIONAL:
            where = extra_at + len(extra)
            extra.extend(struct.pack("<II", number, 0))
            return kind, 1, struct.pack("<I", where)
        return TIFF_LONG, 1, struct.pack("<I", number)

    def short(value: int) -> tuple[int, int, bytes]:
        return TIFF_SHORT, 1, struct.pack("<H", value) + b"\0\0"

    entries = [
        (256, *short(side)),
        (257, *short(side)),
        (258, *short(8)),
        (259, *short(1)),
        (262, *short(1)),
        (273, *field(offsets_type, pixels_at)),
        (277, *short(1)),
        (278, *short(side)),
        (279, *field(counts_type, len(pixels))),
    ]
    ifd = struct.pack("<H", count)
    ifd += b"".join(struct.pack("<HHI", tag, kind, n) + value for tag, kind, n, value in entries)
    ifd += b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 8) + ifd + bytes(extra).ljust(16, b"\0") + pixels


PNG_GREY, PNG_RGB, PNG_PALETTE, PNG_GREY_ALPHA, PNG_RGBA = 0, 2, 3, 4, 6


def png_header_only(width: int, height: int, *, bit_depth: int = 8, colour_type: int = PNG_GREY) -> bytes:
    """A valid PNG container declaring width x height pixels of the given depth and colour type,
    with one row of pixel data: a few hundred bytes that ask a decoder for the whole image."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    channels = {PNG_GREY: 1, PNG_RGB: 3, PNG_PALETTE: 1, PNG_GREY_ALPHA: 2, PNG_RGBA: 4}[colour_type]
    row = b"\x00" * (1 + math.ceil(width * channels * bit_depth / 8))
    chunks = _png_chunk(b"IHDR", header)
    if colour_type == PNG_PALETTE:
        chunks += _png_chunk(b"PLTE", b"\x00\x00\x00\xff\xff\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunks + _png_chunk(b"IDAT", zlib.compress(row, 9)) + _png_chunk(b"IEND", b"")
    )


TIFF_UINT, TIFF_INT, TIFF_FLOAT = 1, 2, 3


def tiff_header_only(
    width: int,
    height: int,
    *,
    bits: int = 32,
    sample_format: int = TIFF_FLOAT,
    samples: int = 1,
    rows_per_strip: int | None = None,
) -> bytes:
    """A TIFF declaring width x height pixels (one strip of `rows_per_strip` rows, default all),
    deflate-compressed, with a few bytes of strip data: tiny on disk, huge once decoded."""
    rows = rows_per_strip or height
    strips = math.ceil(height / rows)
    strip = zlib.compress(b"\x00" * 64)
    entries_count = 12
    ifd_at = 8
    arrays_at = ifd_at + 2 + entries_count * 12 + 4
    offsets_at = arrays_at
    counts_at = offsets_at + 4 * strips
    bits_at = counts_at + 4 * strips
    data_at = bits_at + 2 * samples
    photometric = 1 if samples == 1 else 2

    def entry(tag: int, kind: int, count: int, value: int) -> bytes:
        packed = (
            struct.pack("<H", value) + b"\0\0"
            if kind == TIFF_SHORT and count == 1
            else struct.pack("<I", value)
        )
        return struct.pack("<HHI", tag, kind, count) + packed

    entries = [
        entry(256, TIFF_LONG, 1, width),
        entry(257, TIFF_LONG, 1, height),
        entry(258, TIFF_SHORT, samples, bits_at) if samples > 1 else entry(258, TIFF_SHORT, 1, bits),
        entry(259, TIFF_SHORT, 1, 8),  # deflate
        entry(262, TIFF_SHORT, 1, photometric),
        entry(273, TIFF_LONG, strips, offsets_at) if strips > 1 else entry(273, TIFF_LONG, 1, data_at),
        entry(277, TIFF_SHORT, 1, samples),
        entry(278, TIFF_LONG, 1, rows),
        entry(279, TIFF_LONG, strips, counts_at) if strips > 1 else entry(279, TIFF_LONG, 1, len(strip)),
        entry(284, TIFF_SHORT, 1, 1),  # chunky
        entry(339, TIFF_SHORT, 1, sample_format),
        entry(338, TIFF_SHORT, 1, 2) if samples == 4 else entry(305, TIFF_SHORT, 1, 0),  # alpha / filler
    ]
    entries.sort(key=lambda raw: struct.unpack_from("<H", raw)[0])
    ifd = struct.pack("<H", entries_count) + b"".join(entries) + b"\0\0\0\0"
    arrays = struct.pack(f"<{strips}I", *([data_at] * strips)) + struct.pack(
        f"<{strips}I", *([len(strip)] * strips)
    )
    arrays += struct.pack(f"<{samples}H", *([bits] * samples))
    return b"II*\x00" + struct.pack("<I", ifd_at) + ifd + arrays + strip
