"""Preprocessing: RGB, short side 256 (bicubic), centre crop 224, (x - 127) / 128, NCHW float32."""

from __future__ import annotations

import io

import numpy as np
import pytest
from autotag.vision.preprocess import decode_and_preprocess, preprocess_rgb
from PIL import Image


def encoded(picture: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt)
    return buffer.getvalue()


def test_shape_dtype_and_normalization():
    batch = preprocess_rgb(Image.new("RGB", (640, 480), (255, 127, 0)))
    assert batch.shape == (1, 3, 224, 224)
    assert batch.dtype == np.float32
    assert batch[0, 0].mean() == pytest.approx(1.0)  # (255 - 127) / 128
    assert batch[0, 1].mean() == pytest.approx(0.0)
    assert batch[0, 2].mean() == pytest.approx(-127 / 128)


def test_centre_crop_keeps_the_middle():
    picture = Image.new("RGB", (900, 300), (0, 0, 0))
    picture.paste((255, 255, 255), (300, 0, 600, 300))  # a white middle third
    batch = preprocess_rgb(picture)
    # 900x300 → 768x256 → the centre 224 columns all fall in the white third.
    assert batch[0].min() == pytest.approx(1.0)


def test_transparency_is_shown_over_white_and_grey_becomes_rgb():
    clear = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    assert preprocess_rgb(clear)[0].min() == pytest.approx(1.0)
    grey = preprocess_rgb(Image.new("L", (300, 300), 127))
    assert grey.shape == (1, 3, 224, 224)
    assert np.abs(grey).max() == pytest.approx(0.0)


def test_small_images_are_scaled_up_to_the_input():
    assert preprocess_rgb(Image.new("RGB", (40, 30), (9, 9, 9))).shape == (1, 3, 224, 224)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_decode_from_bytes(fmt):
    batch = decode_and_preprocess(encoded(Image.new("RGB", (1200, 900), (200, 30, 30)), fmt))
    assert batch.shape == (1, 3, 224, 224)
    assert batch[0, 0].mean() > 0.5 > batch[0, 1].mean()


def test_garbage_is_an_error():
    with pytest.raises(OSError):
        decode_and_preprocess(b"not an image")
