"""Decode memory: what decoding an image will take, known from its header, bounded in bytes.

A pixel limit alone does not bound memory: 100 million pixels of 16-bit greyscale, float or RGBA
take 2 to 4 bytes each once decoded, and the intake's conversions (16-bit and float to 8-bit,
alpha premultiplied for resampling, CMYK to RGB) hold two or three full-size copies at once. A
200 KB PNG can so ask for a gigabyte, and in Lambda that is an out-of-memory kill with no record.

The peak is estimated before any pixel is decoded: decoded width x height (after JPEG's DCT
scaling, which the intake asks for) x the peak bytes per pixel of the format and mode (the
decode buffer plus the conversions and resampling the intake makes, measured with ``make bench``,
``bench/bench_memory.py``), plus the largest TIFF strip or tile the decoder reads whole. An image
whose estimate is over the budget is refused with ``image_too_large_to_decode`` (a 413) before its
pixels are decoded; the others reserve their estimate from one budget per process while they
decode, so concurrent decodes (several providers, several threads) cannot add up past it.

The budget is ``limits.max_decode_mib`` when the config sets it, else a quarter of the function's
memory (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``; 1,024 MB when unset, e.g. in the CLI): 256 MiB by
default, which keeps a worker under 512 MiB with its code, clients and the encoded image.
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image

from autotag.errors import CorruptImageError, DecodeMemoryError, DecompressionBombError
from autotag.image import ImageFormat, SourceImage

MIB = 1024 * 1024
MEMORY_ENV = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
DEFAULT_FUNCTION_MEMORY_MB = 1024
DECODE_SHARE = 0.25
"""Share of the function's memory one process may spend on decoding images."""
FIXED_OVERHEAD_BYTES = 4 * MIB
"""Decoder state, row buffers and the small re-encoded copies, whatever the size."""

PEAK_BYTES_PER_PIXEL: dict[tuple[ImageFormat, str], float] = {
    # Measured peak RSS growth per decoded pixel (fit to a re-encode, 3000 x 3000), rounded up
    # with a margin of about 20 %; bench/bench_memory.py re-measures and compares.
    (ImageFormat.JPEG, "L"): 2.5,
    (ImageFormat.JPEG, "RGB"): 8.5,
    (ImageFormat.JPEG, "CMYK"): 13.5,
    (ImageFormat.PNG, "1"): 2.5,
    (ImageFormat.PNG, "L"): 1.5,
    (ImageFormat.PNG, "LA"): 8.5,
    (ImageFormat.PNG, "P"): 6.0,
    (ImageFormat.PNG, "PA"): 16.0,
    (ImageFormat.PNG, "RGB"): 5.0,
    (ImageFormat.PNG, "RGBA"): 15.5,
    (ImageFormat.PNG, "I;16"): 12.0,
    (ImageFormat.PNG, "I"): 12.0,
    (ImageFormat.GIF, "P"): 6.0,
    (ImageFormat.GIF, "L"): 6.0,
    (ImageFormat.BMP, "1"): 2.5,
    (ImageFormat.BMP, "L"): 2.0,
    (ImageFormat.BMP, "P"): 3.0,
    (ImageFormat.BMP, "RGB"): 5.0,
    (ImageFormat.BMP, "RGBA"): 15.5,
    (ImageFormat.WEBP, "RGB"): 20.0,
    (ImageFormat.WEBP, "RGBA"): 26.0,
    (ImageFormat.TIFF, "1"): 2.5,
    (ImageFormat.TIFF, "L"): 2.0,
    (ImageFormat.TIFF, "LA"): 8.5,
    (ImageFormat.TIFF, "P"): 6.0,
    (ImageFormat.TIFF, "RGB"): 5.5,
    (ImageFormat.TIFF, "RGBA"): 16.0,
    (ImageFormat.TIFF, "CMYK"): 10.5,
    (ImageFormat.TIFF, "I;16"): 12.5,
    (ImageFormat.TIFF, "I"): 11.5,
    (ImageFormat.TIFF, "F"): 11.5,
}
PALETTE_WITH_TRANSPARENCY_BYTES_PER_PIXEL = 16.0
"""A palette image with a transparent colour is converted to RGBA (and premultiplied to resample)."""
UNKNOWN_MODE_BYTES_PER_PIXEL = 26.0
"""Modes not measured (rare TIFF variants): the worst figure of the table."""

_MODE_NAMES = {
    "1": "1-bit",
    "L": "8-bit greyscale",
    "LA": "greyscale with alpha",
    "P": "palette",
    "PA": "palette with alpha",
    "RGB": "RGB",
    "RGBA": "RGBA",
    "CMYK": "CMYK",
    "I;16": "16-bit greyscale",
    "I": "32-bit integer greyscale",
    "F": "32-bit float greyscale",
}


def function_memory_mb(environ: Mapping[str, str] | None = None) -> int:
    value = (os.environ if environ is None else environ).get(MEMORY_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_FUNCTION_MEMORY_MB


def decode_budget_bytes(max_decode_mib: int | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The configured budget, or a quarter of the function's memory."""
    if max_decode_mib is not None:
        return max_decode_mib * MIB
    return int(function_memory_mb(environ) * MIB * DECODE_SHARE)


@dataclass(frozen=True)
class DecodeEstimate:
    format: ImageFormat
    mode: str
    width: int
    height: int
    """As decoded (a JPEG at its DCT scale)."""
    bytes: int

    def describe(self) -> str:
        kind = _MODE_NAMES.get(self.mode, self.mode)
        return f"{self.width}x{self.height} {kind} ({self.mode}) {self.format.value.upper()}"


def peak_bytes_per_pixel(image_format: ImageFormat, mode: str) -> float:
    return PEAK_BYTES_PER_PIXEL.get((image_format, mode), UNKNOWN_MODE_BYTES_PER_PIXEL)


def _tiff_chunk_bytes(opened: Image.Image, width: int, height: int) -> int:
    """The largest strip or tile (uncompressed) the TIFF decoder holds whole."""
    tags = getattr(opened, "tag_v2", {})
    samples = _int(tags.get(277), 1)
    bits = tags.get(258)
    bits_per_sample = max((_int(b, 8) for b in bits), default=8) if isinstance(bits, tuple) else _int(bits, 8)
    tile_width, tile_length = _int(tags.get(322), 0), _int(tags.get(323), 0)
    if tile_width and tile_length:
        chunk_pixels = tile_width * tile_length
    else:
        chunk_pixels = width * min(height, max(1, _int(tags.get(278), height)))
    return math.ceil(chunk_pixels * samples * bits_per_sample / 8)


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def estimate_opened(opened: Image.Image, image_format: ImageFormat) -> DecodeEstimate:
    """The peak for an image opened lazily (after any draft); no pixel is decoded."""
    width, height = opened.size
    mode = opened.mode
    per_pixel = peak_bytes_per_pixel(image_format, mode)
    if mode in ("P", "PA") and "transparency" in opened.info:
        per_pixel = max(per_pixel, PALETTE_WITH_TRANSPARENCY_BYTES_PER_PIXEL)
    total = width * height * per_pixel + FIXED_OVERHEAD_BYTES
    if image_format is ImageFormat.TIFF:
        total += _tiff_chunk_bytes(opened, width, height)
    return DecodeEstimate(image_format, mode, width, height, math.ceil(total))


def estimate(image: SourceImage, floor: tuple[int, int] | None = None) -> DecodeEstimate:
    """The peak decoding `image` will take. `floor` (stored orientation) is the smallest size the
    decode may stop at: JPEGs are estimated at the DCT scale the intake asks libjpeg for."""
    try:
        with Image.open(io.BytesIO(image.data), formats=[image.format.pil_name]) as opened:
            if image.format is ImageFormat.JPEG:
                opened.draft(None, floor or opened.size)
            return estimate_opened(opened, image.format)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DecompressionBombError("image has too many pixels (possible decompression bomb)") from None
    except Exception:  # any failure to read a header of untrusted bytes means a damaged file
        raise CorruptImageError(f"{image.format.value.upper()} header is damaged or unreadable") from None


def refusal(found: DecodeEstimate, budget: int) -> DecodeMemoryError:
    return DecodeMemoryError(
        f"decoding this {found.describe()} image takes about {math.ceil(found.bytes / MIB)} MiB; "
        f"at most {budget // MIB} MiB may be spent decoding one image here (a quarter of the "
        "function's memory, or limits.max_decode_mib). Send it smaller or as an 8-bit JPEG/PNG"
    )


class DecodeBudget:
    """Bytes of decode memory one process may have in use at once; decodes wait their turn."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.in_use = 0
        self.peak_in_use = 0
        self._changed = threading.Condition()

    @contextmanager
    def reserve(self, found: DecodeEstimate) -> Iterator[None]:
        if found.bytes > self.total:
            raise refusal(found, self.total)
        with self._changed:
            self._changed.wait_for(lambda: self.in_use + found.bytes <= self.total)
            self.in_use += found.bytes
            self.peak_in_use = max(self.peak_in_use, self.in_use)
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= found.bytes
                self._changed.notify_all()


_budgets: dict[int, DecodeBudget] = {}
_budgets_lock = threading.Lock()


def budget_of(total: int) -> DecodeBudget:
    """The process's budget of this size (one per size: every image of a config shares one)."""
    with _budgets_lock:
        return _budgets.setdefault(total, DecodeBudget(total))


def check(image: SourceImage, budget: int, floor: tuple[int, int] | None = None) -> DecodeEstimate:
    """Refuse `image` when decoding it could never fit `budget` (an early check at intake; a JPEG
    is taken at its smallest DCT scale, which is all a decode for tagging can need)."""
    smallest = None if floor is not None or image.format is not ImageFormat.JPEG else _eighth(image)
    found = estimate(image, floor or smallest)
    if found.bytes > budget:
        raise refusal(found, budget)
    return found


def _eighth(image: SourceImage) -> tuple[int, int]:
    return max(1, math.ceil(image.width / 8)), max(1, math.ceil(image.height / 8))


@contextmanager
def reserved(image: SourceImage, floor: tuple[int, int]) -> Iterator[DecodeEstimate]:
    """Hold the memory decoding `image` down to `floor` (upright) will take, or refuse it before
    decoding."""
    total = image.max_decode_bytes or decode_budget_bytes()
    stored_floor = (floor[1], floor[0]) if image.orientation in (5, 6, 7, 8) else floor
    found = estimate(image, stored_floor)
    with budget_of(total).reserve(found):
        yield found
