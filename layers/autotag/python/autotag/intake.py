"""Image intake: accept an image in any supported form, check it cheaply, make it fit a provider.

`load_image` reads headers only (Pillow opens lazily): format from magic bytes, dimensions, EXIF
orientation, a decompression-bomb guard on width x height, a cheap integrity check, and the sha256
of the original bytes. `fit` passes the original bytes through untouched when they already suit a
provider, and otherwise decodes as little as it can (JPEG draft mode decodes at 1/2, 1/4 or 1/8
scale; other formats use `reduce`), turns the image upright, downscales and re-encodes it until the
payload fits.

Nothing here touches Pillow's global settings, so both functions are safe to run in threads.

Decisions worth knowing:
- An image whose shortest side is below a provider's ``min_side`` is upscaled to it when that still
  fits the other limits; otherwise it is refused with ``image_too_small`` (an InvalidImageError).
- Truncation is detected without decoding: JPEG by walking its segments to the EOI marker, PNG by
  checking every chunk's CRC up to IEND, WebP/BMP by their container's declared size, GIF by its
  trailer, TIFF by its strip offsets. Anything that slips past fails at decode time in `fit`.
- Animated images are reduced to their first frame.
- Pillow refuses images above twice its own MAX_IMAGE_PIXELS at open time whatever our limit says;
  that refusal is reported as our DecompressionBombError too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFile

from autotag.config import ImageLimits
from autotag.errors import (
    BadInputError,
    CorruptImageError,
    DecompressionBombError,
    EmptyImageError,
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedFormatError,
)
from autotag.image import ImageConstraints, ImageFormat, PreparedImage, SourceImage

ImageSource = bytes | bytearray | memoryview | str | os.PathLike[str]

_MAX_PATH_CHARS = 4096
_ORIENTATION_TAG = 0x0112
_JPEG_QUALITIES = (85, 75, 65, 50)
_MAX_FIT_ROUNDS = 12
_DOWNSCALE_FILTER = Image.Resampling.HAMMING
_SMALLEST_SIDE = 16
"""Fitting never shrinks an image below this many pixels on its shortest side."""

_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


# --- Reading the input -------------------------------------------------------------------------


def load_image(source: ImageSource, *, limits: ImageLimits | None = None) -> SourceImage:
    """Read and check an image given as bytes, a base64 string, a data URL or a file path.

    Raises a :class:`autotag.errors.BadInputError` subclass for anything that is not a usable image.
    """
    limits = limits or ImageLimits()
    data = _read_source(source, limits)
    return inspect_image(data, limits=limits)


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
    header = _read_header(data, image_format, limits)
    _check_integrity(data, image_format)
    return SourceImage(
        data=data,
        format=image_format,
        width=header.width,
        height=header.height,
        sha256=hashlib.sha256(data).hexdigest(),
        orientation=header.orientation,
    )


def _read_source(source: ImageSource, limits: ImageLimits) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, bytearray | memoryview):
        return bytes(source)
    if isinstance(source, os.PathLike):
        return _read_file(Path(source), limits)
    if isinstance(source, str):
        return _read_text(source, limits)
    raise BadInputError(f"cannot read an image from a {type(source).__name__}", code="bad_image_source")


def _read_text(text: str, limits: ImageLimits) -> bytes:
    stripped = text.strip()
    if not stripped:
        raise EmptyImageError("image is empty (blank string)")
    if stripped[:5].lower() == "data:":
        return _decode_data_url(stripped, limits)
    if len(stripped) <= _MAX_PATH_CHARS and _is_file(stripped):
        return _read_file(Path(stripped), limits)
    decoded = _decode_base64(stripped, limits)
    # A short string that is not base64 of an image is most likely a path that does not exist.
    if decoded is not None and (sniff_format(decoded) is not None or len(stripped) > _MAX_PATH_CHARS):
        return decoded
    if len(stripped) <= _MAX_PATH_CHARS:
        raise BadInputError(f"file not found: {stripped}", code="file_not_found")
    raise BadInputError("image string is neither a file path, base64 nor a data URL", code="bad_base64")


def _is_file(candidate: str) -> bool:
    try:
        return Path(candidate).is_file()
    except (OSError, ValueError):
        return False


def _read_file(path: Path, limits: ImageLimits) -> bytes:
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise BadInputError(f"not a file: {path}", code="not_a_file")
        if size > limits.max_bytes:
            raise ImageTooLargeError(f"{path} is {size} bytes; the limit is {limits.max_bytes} bytes")
        return path.read_bytes()
    except FileNotFoundError:
        raise BadInputError(f"file not found: {path}", code="file_not_found") from None
    except PermissionError:
        raise BadInputError(f"permission denied: {path}", code="file_unreadable") from None
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc.strerror or exc}", code="file_unreadable") from None


def _decode_data_url(url: str, limits: ImageLimits) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma:
        raise BadInputError("data URL has no ',' before its payload", code="bad_data_url")
    params = header[5:].split(";")
    media_type = params[0].strip().lower()
    if media_type and not media_type.startswith("image/"):
        raise UnsupportedFormatError(f"data URL media type is {media_type}, not an image")
    if "base64" not in (p.strip().lower() for p in params[1:]):
        raise BadInputError("data URL must be base64-encoded (';base64,')", code="bad_data_url")
    decoded = _decode_base64(payload, limits)
    if decoded is None:
        raise BadInputError("data URL payload is not valid base64", code="bad_base64")
    return decoded


_BASE64_JUNK = re.compile(r"\s+")


def _decode_base64(text: str, limits: ImageLimits) -> bytes | None:
    """Standard or URL-safe base64, padding optional, whitespace ignored; None if not base64."""
    compact = _BASE64_JUNK.sub("", text)
    if not compact:
        return b""
    if len(compact) * 3 // 4 > limits.max_bytes:
        raise ImageTooLargeError(
            f"base64 image decodes to about {len(compact) * 3 // 4} bytes; the limit is {limits.max_bytes}"
        )
    if "-" in compact or "_" in compact:
        compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


# --- Recognizing the content --------------------------------------------------------------------


def sniff_format(data: bytes) -> ImageFormat | None:
    """The image format from its magic bytes, or None if it is not one we accept."""
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return ImageFormat.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ImageFormat.PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ImageFormat.GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageFormat.WEBP
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return ImageFormat.TIFF
    if head[:2] == b"BM" and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in _BMP_DIB_SIZES:
        return ImageFormat.BMP
    return None


_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"%PDF", "PDF (application/pdf)"),
    (0, b"PK\x03\x04", "a ZIP archive (application/zip)"),
    (0, b"\x1f\x8b", "gzip data (application/gzip)"),
    (0, b"8BPS", "a Photoshop document (image/vnd.adobe.photoshop)"),
    (0, b"\x00\x00\x01\x00", "an icon (image/x-icon)"),
    (0, b"II+\x00", "BigTIFF (not supported)"),
    (0, b"MM\x00+", "BigTIFF (not supported)"),
    (0, b"\xff\x0a", "JPEG XL (image/jxl)"),
    (0, b"\x00\x00\x00\x0cJXL ", "JPEG XL (image/jxl)"),
    (0, b"\x00\x00\x00\x0cjP  ", "JPEG 2000 (image/jp2)"),
    (0, b"%!PS", "PostScript (application/postscript)"),
    (0, b"\x7fELF", "an executable (application/x-elf)"),
    (0, b"RIFF", "a RIFF container that is not WebP (e.g. audio/wav)"),
    (0, b"GIF8", "a damaged GIF header"),
    (0, b"\x89PNG", "a damaged PNG header"),
    (0, b"\xff\xd8", "a damaged JPEG header"),
)
_FTYP_BRANDS = {
    b"heic": "HEIC (image/heic)",
    b"heix": "HEIC (image/heic)",
    b"mif1": "HEIF (image/heif)",
    b"msf1": "HEIF (image/heif)",
    b"avif": "AVIF (image/avif)",
    b"avis": "AVIF (image/avif)",
}


def describe_content(data: bytes) -> str:
    """A human description of what non-image data looks like, for error messages."""
    for offset, magic, name in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return name
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        return _FTYP_BRANDS.get(brand, f"an ISO media file ({brand.decode('latin-1')!r})")
    text = _as_text(data[:1024])
    if text is not None:
        lowered = text.lstrip("\ufeff \t\r\n").lower()
        if lowered.startswith("<svg") or (lowered.startswith("<?xml") and "<svg" in lowered):
            return "SVG (image/svg+xml)"
        if lowered.startswith(("<!doctype html", "<html")):
            return "HTML (text/html)"
        if lowered.startswith("<?xml"):
            return "XML (application/xml)"
        if lowered.startswith(("{", "[")):
            return "JSON or other text (application/json)"
        printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text)
        if printable >= 0.95 * max(1, len(text)):
            return "text (text/plain)"
    return "unrecognized binary data (application/octet-stream)"


def _as_text(sample: bytes) -> str | None:
    # The sample may end inside a multi-byte character: allow up to 3 bytes of one to be cut off.
    for cut in range(4):
        try:
            return sample[: len(sample) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


# --- Header and integrity ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    width: int
    height: int
    orientation: int


_PILLOW_PIXELS = re.compile(r"\((\d+) pixels\)")


def _bomb_error(pixels: int | None, limit: int, detail: str = "") -> DecompressionBombError:
    size = f"{pixels} pixels" if pixels is not None else "too many pixels"
    return DecompressionBombError(
        f"image has {size}{detail}, over the limit of {limit} (possible decompression bomb)"
    )


def _open(data: bytes, image_format: ImageFormat, limits: ImageLimits) -> ImageFile.ImageFile:
    """Open lazily (header only), mapping Pillow's failures onto our taxonomy."""
    try:
        image = Image.open(io.BytesIO(data), formats=[image_format.pil_name])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (the warning only arrives as an exception under a strict filter).
        found = _PILLOW_PIXELS.search(str(exc))
        raise _bomb_error(int(found.group(1)) if found else None, limits.max_pixels) from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise CorruptImageError(
            f"{image_format.value.upper()} header is damaged or unreadable ({_reason(exc)})"
        ) from None
    assert isinstance(image, ImageFile.ImageFile)
    return image


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _read_header(data: bytes, image_format: ImageFormat, limits: ImageLimits) -> _Header:
    with _open(data, image_format, limits) as image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise CorruptImageError(f"image declares an empty size {width}x{height}")
        if width * height > limits.max_pixels:
            raise _bomb_error(width * height, limits.max_pixels, f" ({width}x{height})")
        try:
            orientation = int(header_exif(image).get(_ORIENTATION_TAG, 1))
        except (OSError, SyntaxError, ValueError, TypeError, struct.error):
            orientation = 1  # unreadable EXIF is not worth refusing the image for
    return _Header(width, height, orientation if orientation in range(1, 9) else 1)


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


def _check_integrity(data: bytes, image_format: ImageFormat) -> None:
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
    if problem:
        raise CorruptImageError(problem)


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
        except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
            return f"PNG is truncated or corrupt ({_reason(exc)})"
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
    end = max((int(o) + int(c) for o, c in zip(offsets, counts, strict=False)), default=0)
    if end > len(data):
        return f"TIFF is truncated ({len(data)} bytes; its image data runs to byte {end})"
    return None


# --- Fitting to a provider's constraints --------------------------------------------------------


def fits(image: SourceImage, constraints: ImageConstraints) -> bool:
    """True when the original bytes can be sent as they are."""
    width, height = image.upright_size
    return (
        image.format in constraints.formats
        and image.orientation == 1
        and (constraints.max_bytes is None or constraints.payload_bytes(image.size) <= constraints.max_bytes)
        and (constraints.max_pixels is None or width * height <= constraints.max_pixels)
        and (constraints.max_side is None or max(width, height) <= constraints.max_side)
        and (constraints.min_side is None or min(width, height) >= constraints.min_side)
    )


def fit(image: SourceImage, constraints: ImageConstraints) -> PreparedImage:
    """The image made fit for `constraints`: upright, within every limit, in an accepted format.

    The original bytes are returned untouched when they already fit. Raises ImageTooLargeError when
    no re-encoding gets under the byte limit, InvalidImageError (``image_too_small``) when an image
    below ``min_side`` cannot be upscaled within the other limits, CorruptImageError when the pixel
    data cannot be decoded.
    """
    if fits(image, constraints):
        return PreparedImage(
            data=image.data, format=image.format, width=image.width, height=image.height, reencoded=False
        )
    target = _target_size(image.upright_size, constraints)
    picture = _decode(image, target, _cheapest_size(target, constraints.useful_side))
    return _encode_to_fit(picture, image.format, constraints)


def _cheapest_size(target: tuple[int, int], useful_side: int | None) -> tuple[int, int]:
    """The smallest size the decoder may stop at: `target`, or less when it exceeds `useful_side`."""
    longest = max(target)
    if useful_side is None or longest <= useful_side:
        return target
    scale = useful_side / longest
    return max(1, math.ceil(target[0] * scale)), max(1, math.ceil(target[1] * scale))


def _target_size(size: tuple[int, int], constraints: ImageConstraints) -> tuple[int, int]:
    width, height = size
    scale = 1.0
    if constraints.max_side is not None:
        scale = min(scale, constraints.max_side / max(width, height))
    if constraints.max_pixels is not None:
        scale = min(scale, math.sqrt(constraints.max_pixels / (width * height)))
    if constraints.min_side is not None and min(width, height) * scale < constraints.min_side:
        upscale = constraints.min_side / min(width, height)
        up_w, up_h = math.ceil(width * upscale), math.ceil(height * upscale)
        if (constraints.max_side is not None and max(up_w, up_h) > constraints.max_side) or (
            constraints.max_pixels is not None and up_w * up_h > constraints.max_pixels
        ):
            raise InvalidImageError(
                f"image is {width}x{height}: too small (shortest side under {constraints.min_side} px) "
                "and too elongated to enlarge within the provider's limits",
                code="image_too_small",
            )
        return up_w, up_h
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def _has_alpha(picture: Image.Image) -> bool:
    return picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in picture.info


def _decode(image: SourceImage, target: tuple[int, int], floor: tuple[int, int] | None = None) -> Image.Image:
    """Decode at the smallest cost that yields at least `floor` (upright), then fit within `target`.

    JPEG draft mode scales by 1/2, 1/4 or 1/8 inside libjpeg; when that lands between `floor` and
    `target`, no resize pass is needed at all.
    """
    swapped = image.orientation in (5, 6, 7, 8)
    floor = floor or target
    stored_target = (target[1], target[0]) if swapped else target
    stored_floor = (floor[1], floor[0]) if swapped else floor
    try:
        # Not a `with` block: closing an image frees its pixels, and the decoded one is returned.
        opened = Image.open(io.BytesIO(image.data), formats=[image.format.pil_name])
        if image.format is ImageFormat.JPEG:
            opened.draft(None, stored_floor)  # libjpeg scales by 1/2, 1/4 or 1/8 while decoding
        opened.seek(0)  # animated images: the first frame
        picture = _normalize_mode(opened)
        within = picture.width <= stored_target[0] and picture.height <= stored_target[1]
        at_least = picture.width >= stored_floor[0] and picture.height >= stored_floor[1]
        if not (within and at_least):
            # To the floor: the smallest useful size is also the cheapest to encode and send.
            # reducing_gap: box-average by an integer factor first (cheap), then one filtered pass.
            # Hamming (support 1) rather than bicubic (2): 30 % less CPU for the typical < 2x step
            # after JPEG draft scaling, within 2.5 dB PSNR of bicubic (bench/bench_intake.py).
            picture = picture.resize(stored_floor, _DOWNSCALE_FILTER, reducing_gap=2.0)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DecompressionBombError(
            "image expands to too many pixels (possible decompression bomb)"
        ) from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise CorruptImageError(f"image data cannot be decoded ({_reason(exc)})") from None
    transpose = _TRANSPOSE.get(image.orientation)
    return picture.transpose(transpose) if transpose is not None else picture


def _normalize_mode(opened: Image.Image) -> Image.Image:
    """Pixels in L, LA, RGB or RGBA (what every encoder we use accepts)."""
    mode = opened.mode
    if mode in ("L", "RGB", "RGBA", "LA"):
        opened.load()
        return opened
    if mode.startswith("I;16"):
        # 16-bit greyscale: scale to 8 bits rather than clipping at 255.
        return opened.convert("I").point(lambda value: value * (1 / 257)).convert("L")
    if mode in ("I", "F"):
        low, high = (float(v) for v in opened.getextrema())  # type: ignore[arg-type]
        span = (high - low) or 1.0
        return opened.point(lambda value: (value - low) * (255 / span)).convert("L")
    if mode == "1":
        return opened.convert("L")
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return opened.convert("RGB")
    return opened.convert("RGBA" if _has_alpha(opened) else "RGB")


def _uses_alpha(picture: Image.Image) -> bool:
    if picture.mode not in ("RGBA", "LA"):
        return False
    low = picture.getchannel("A").getextrema()[0]
    return isinstance(low, int | float) and low < 255


def _output_format(alpha: bool, original: ImageFormat, accepted: frozenset[ImageFormat]) -> ImageFormat:
    """Keep transparency when an accepted format can carry it; otherwise prefer JPEG for size."""
    if alpha:
        for candidate in (ImageFormat.PNG, ImageFormat.WEBP):
            if candidate in accepted:
                return candidate
    preference = (ImageFormat.JPEG, ImageFormat.WEBP, ImageFormat.PNG, original, *sorted(ImageFormat))
    return next(f for f in preference if f in accepted)


def _encode_to_fit(
    picture: Image.Image, original: ImageFormat, constraints: ImageConstraints
) -> PreparedImage:
    alpha = _uses_alpha(picture)
    output = _output_format(alpha, original, constraints.formats)
    if not (alpha and output in (ImageFormat.PNG, ImageFormat.WEBP)):
        picture = _flatten(picture)
    lossy = output in (ImageFormat.JPEG, ImageFormat.WEBP)
    quality_steps = _JPEG_QUALITIES if lossy else (0,)
    floor_side = max(_SMALLEST_SIDE, constraints.min_side or 1)
    for _ in range(_MAX_FIT_ROUNDS):
        payload = b""
        for quality in quality_steps:
            payload = _save(picture, output, quality)
            if _within_bytes(len(payload), constraints):
                return PreparedImage(
                    data=payload, format=output, width=picture.width, height=picture.height, reencoded=True
                )
        assert constraints.max_bytes is not None
        # Bytes scale roughly with the pixel count: shrink by the square root of the overshoot.
        ratio = math.sqrt(constraints.max_bytes / constraints.payload_bytes(len(payload))) * 0.95
        ratio = min(0.9, max(0.3, ratio))
        new_size = (max(1, round(picture.width * ratio)), max(1, round(picture.height * ratio)))
        if min(new_size) < floor_side:
            break
        picture = picture.resize(new_size, Image.Resampling.LANCZOS)
    raise ImageTooLargeError(
        f"image cannot be made to fit {constraints.max_bytes} bytes"
        f"{' of base64' if constraints.base64_counts else ''} as {output.value.upper()}"
    )


def _within_bytes(size: int, constraints: ImageConstraints) -> bool:
    return constraints.max_bytes is None or constraints.payload_bytes(size) <= constraints.max_bytes


def _flatten(picture: Image.Image) -> Image.Image:
    """Drop alpha (over white, as viewers show it) for formats or providers that cannot keep it."""
    if picture.mode not in ("RGBA", "LA"):
        return picture
    base_mode = "RGB" if picture.mode == "RGBA" else "L"
    background = Image.new(base_mode, picture.size, 255 if base_mode == "L" else (255, 255, 255))
    background.paste(picture.convert(base_mode), mask=picture.getchannel("A"))
    return background


def _save(picture: Image.Image, output: ImageFormat, quality: int) -> bytes:
    buffer = io.BytesIO()
    if output is ImageFormat.JPEG:
        picture.save(buffer, "JPEG", quality=quality)
    elif output is ImageFormat.WEBP:
        picture.save(buffer, "WEBP", quality=quality, method=4)
    elif output is ImageFormat.PNG:
        picture.save(buffer, "PNG", compress_level=6)
    elif output is ImageFormat.GIF:
        picture.save(buffer, "GIF")
    else:
        picture.save(buffer, output.pil_name)
    return buffer.getvalue()
