"""Decode memory is bounded in bytes: images whose decode (mode x pixels, plus the intake's
conversions) would not fit the budget are refused before a pixel is decoded; JPEGs are estimated
at the reduced DCT scale the intake decodes them at; concurrent decodes share one budget.

The hostile files are crafted headers of a few hundred bytes; their pixel data is one row, so an
attempt to decode them would fail as corrupt_image — a refusal with image_too_large_to_decode
shows that the guard answered first.
"""

from __future__ import annotations

import struct
import threading

import pytest
from autotag.config import ImageLimits
from autotag.errors import DecodeMemoryError
from autotag.image import ImageConstraints, ImageFormat
from autotag.intake import decode_memory
from autotag.intake.decode_memory import MIB, DecodeBudget, DecodeEstimate, decode_budget_bytes
from autotag.intake.fit import fit
from autotag.intake.source import load_image

from tests.support.images import (
    PNG_GREY,
    PNG_RGBA,
    TIFF_FLOAT,
    TIFF_UINT,
    jpeg_bytes,
    png_header_only,
    tiff_header_only,
)

pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

DEFAULT_BUDGET = 256 * MIB


@pytest.fixture(autouse=True)
def _lambda_memory(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")


HOSTILE = {
    # The files of the report: each drove a worker past 512 MiB (to ~1,060 / ~1,470 / ~875 MiB).
    "16-bit grey PNG 9999x9999": png_header_only(9999, 9999, bit_depth=16, colour_type=PNG_GREY),
    "float TIFF 9999x9999, one strip": tiff_header_only(9999, 9999, bits=32, sample_format=TIFF_FLOAT),
    "RGBA PNG 10000x9999": png_header_only(10000, 9999, colour_type=PNG_RGBA),
    "RGBA TIFF 6000x6000": tiff_header_only(6000, 6000, bits=8, sample_format=TIFF_UINT, samples=4),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_files_are_refused_at_intake_before_decoding(name):
    data = HOSTILE[name]
    assert len(data) < 4096
    with pytest.raises(DecodeMemoryError) as caught:
        load_image(data)  # inside the pixel limit: only the memory guard can refuse it
    error = caught.value
    assert error.code == "image_too_large_to_decode"
    assert "MiB" in error.message
    assert "256 MiB" in error.message


def test_the_same_file_is_accepted_when_the_function_has_the_memory(monkeypatch):
    data = HOSTILE["16-bit grey PNG 9999x9999"]
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "10240")
    assert load_image(data).width == 9999
    assert load_image(data, limits=ImageLimits(max_decode_mib=2000)).max_decode_bytes == 2000 * MIB
    with pytest.raises(DecodeMemoryError):
        load_image(data, limits=ImageLimits(max_decode_mib=100))


def test_budget_is_a_quarter_of_the_function_memory_unless_configured():
    assert decode_budget_bytes(environ={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"}) == 256 * MIB
    assert decode_budget_bytes(environ={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008"}) == 752 * MIB
    assert decode_budget_bytes(environ={}) == 256 * MIB  # outside Lambda: as for 1024 MB
    assert decode_budget_bytes(environ={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "junk"}) == 256 * MIB
    assert decode_budget_bytes(64, environ={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"}) == 64 * MIB


def test_estimates_grow_with_bytes_per_pixel_not_just_pixels():
    side = 2000
    grey8 = load_image(png_header_only(side, side, bit_depth=8))
    grey16 = load_image(png_header_only(side, side, bit_depth=16))
    rgba = load_image(png_header_only(side, side, colour_type=PNG_RGBA))
    sizes = [decode_memory.estimate(i).bytes for i in (grey8, grey16, rgba)]
    assert sizes == sorted(sizes)
    assert sizes[2] > 6 * sizes[0] > 0


def test_a_tiff_read_in_one_strip_costs_the_strip_too():
    striped = load_image(tiff_header_only(3000, 3000, rows_per_strip=16))
    whole = load_image(tiff_header_only(3000, 3000))
    extra = decode_memory.estimate(whole).bytes - decode_memory.estimate(striped).bytes
    assert extra >= 3000 * (3000 - 16) * 4  # float32: the whole image once more


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header is patched to declare width x height."""
    data = bytearray(jpeg_bytes(16, 16))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def test_a_large_jpeg_is_estimated_at_its_reduced_decode_and_accepted():
    image = load_image(_jpeg_declaring(10000, 10000))  # 100 MP, 400 MB as full RGB
    full = decode_memory.estimate(image, (10000, 10000))
    reduced = decode_memory.estimate(image, (1600, 1600))
    assert (full.width, reduced.width) == (10000, 2500)  # libjpeg decodes at 1/4
    assert full.bytes > DEFAULT_BUDGET > reduced.bytes
    assert image.max_decode_bytes == DEFAULT_BUDGET


def test_fit_refuses_before_decoding_when_the_decode_it_needs_cannot_fit():
    # Accepted at intake (its smallest decode fits), refused when a provider needs every pixel.
    image = load_image(_jpeg_declaring(9000, 9000))
    keep_all = ImageConstraints(formats=frozenset({ImageFormat.PNG}), useful_side=None)
    with pytest.raises(DecodeMemoryError) as caught:
        fit(image, keep_all)
    assert "9000x9000 RGB (RGB) JPEG" in caught.value.message


def _estimate(megabytes: int) -> DecodeEstimate:
    return DecodeEstimate(ImageFormat.PNG, "RGBA", 1, 1, megabytes * MIB)


def test_concurrent_decodes_wait_for_room_in_one_budget():
    budget = DecodeBudget(100 * MIB)
    first_in, second_in, release_first = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with budget.reserve(_estimate(60)):
            first_in.set()
            release_first.wait(10)

    def second() -> None:
        with budget.reserve(_estimate(60)):
            second_in.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert first_in.wait(10)
    threads[1].start()
    assert not second_in.wait(0.2)  # 60 + 60 > 100: the second waits for the first
    release_first.set()
    assert second_in.wait(10)
    for thread in threads:
        thread.join(10)
    assert budget.in_use == 0
    assert budget.peak_in_use == 60 * MIB


def test_a_reservation_over_the_whole_budget_is_refused_not_queued():
    budget = DecodeBudget(100 * MIB)
    with pytest.raises(DecodeMemoryError), budget.reserve(_estimate(101)):
        pass
    assert budget.in_use == 0


def test_a_palette_with_a_transparent_colour_is_priced_as_the_rgba_it_becomes():
    from PIL import Image

    from tests.support.images import encode

    picture = Image.new("P", (500, 500), 3)
    plain = load_image(encode(picture, ImageFormat.PNG))
    transparent = load_image(encode(picture, ImageFormat.PNG, transparency=3))
    assert decode_memory.estimate(transparent).bytes > 2 * decode_memory.estimate(plain).bytes - 2 * (
        decode_memory.FIXED_OVERHEAD_BYTES
    )
