"""Image → model input, exactly as EfficientNet-Lite was trained: RGB, the short side resized to
256 (bicubic), the centre 224 x 224 cropped, (x - 127) / 128, NCHW float32."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

INPUT_SIZE = 224
RESIZE_SHORT_SIDE = 256
MEAN = 127.0
SCALE = 128.0


def preprocess_rgb(picture: Image.Image) -> np.ndarray:
    """A decoded picture as a (1, 3, 224, 224) float32 batch."""
    if picture.mode != "RGB":
        if "A" in picture.getbands() or picture.mode == "P":
            # Transparent pixels over white, as a viewer shows them (not over black).
            rgba = picture.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            picture = Image.alpha_composite(background, rgba).convert("RGB")
        else:
            picture = picture.convert("RGB")
    width, height = picture.size
    scale = RESIZE_SHORT_SIDE / min(width, height)
    size = (max(INPUT_SIZE, round(width * scale)), max(INPUT_SIZE, round(height * scale)))
    # reducing_gap: a cheap box reduction first when the picture is far larger than 256.
    resized = picture.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    left = (size[0] - INPUT_SIZE) // 2
    top = (size[1] - INPUT_SIZE) // 2
    crop = resized.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
    array = np.asarray(crop, dtype=np.float32)
    array = (array - MEAN) / SCALE
    return np.ascontiguousarray(array.transpose(2, 0, 1)[None])


def decode_and_preprocess(data: bytes) -> np.ndarray:
    """Encoded image bytes → model input. JPEGs are decoded at a reduced DCT scale when they are
    much larger than the model needs (the same pixels a box filter would average)."""
    with Image.open(io.BytesIO(data)) as picture:
        if picture.format == "JPEG":
            picture.draft("RGB", (RESIZE_SHORT_SIDE * 2, RESIZE_SHORT_SIDE * 2))
        upright = ImageOps.exif_transpose(picture)
        upright.load()
        return preprocess_rgb(upright)
