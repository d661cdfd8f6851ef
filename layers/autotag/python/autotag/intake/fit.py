"""Making an accepted image fit one provider's constraints.

`fit` passes the original bytes through untouched when they already suit a provider, and otherwise
decodes as little as it can (JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale), turns the image
upright, downscales and re-encodes it until the payload fits. An image whose shortest side is below
a provider's ``min_side`` is upscaled to it when that still fits the other limits; otherwise it is
refused with ``image_too_small`` (an InvalidImageError). Animated images are reduced to their first
frame. The decode holds its estimated peak from the process's decode-memory budget
(`autotag.intake.decode_memory`).
"""

from __future__ import annotations

import io
import math

from PIL import Image

from autotag.errors import CorruptImageError, DecompressionBombError, ImageTooLargeError, InvalidImageError
from autotag.image import ImageConstraints, ImageFormat, PreparedImage, SourceImage
from autotag.intake import decode_memory
from autotag.intake.header import PILLOW_FAILURES, failure_reason

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
    floor = _cheapest_size(target, constraints.useful_side)
    # Decode and re-encode within the process's decode-memory budget (refused if it cannot fit).
    with decode_memory.reserved(image, floor):
        picture = _decode(image, target, floor)
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
    except PILLOW_FAILURES as exc:
        raise CorruptImageError(f"image data cannot be decoded ({failure_reason(exc)})") from None
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
