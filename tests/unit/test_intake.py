from __future__ import annotations

import base64
import hashlib
import io
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
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
from autotag.image import ImageConstraints, ImageFormat, sniff_format
from autotag.intake.content import describe_content
from autotag.intake.fit import fit, fits
from autotag.intake.source import load_image
from PIL import Image, ImageDraw

from tests.support import images

# --- load_image: forms ---------------------------------------------------------------------------


@pytest.mark.parametrize("image_format", list(ImageFormat))
def test_each_format_is_sniffed_and_measured(image_format):
    data = images.all_formats(120, 80)[image_format]

    source = load_image(data)

    assert source.format is image_format
    assert (source.width, source.height) == (120, 80)
    assert source.orientation == 1
    assert source.sha256 == hashlib.sha256(data).hexdigest()
    assert source.data is data


def test_accepts_base64_data_url_path_and_buffers(tmp_path):
    data = images.jpeg_bytes(64, 48)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    encoded = base64.b64encode(data).decode()
    forms = [
        encoded,
        "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)),  # MIME line breaks
        base64.urlsafe_b64encode(data).decode().rstrip("="),
        f"data:image/jpeg;base64,{encoded}",
        str(path),
        path,
        bytearray(data),
        memoryview(data),
    ]
    for form in forms:
        source = load_image(form)
        assert source.data == data
        assert source.format is ImageFormat.JPEG


def test_missing_file_is_a_one_line_bad_input(tmp_path):
    missing = tmp_path / "nope.jpg"
    for form in (missing, str(missing), "photo.jpg"):
        with pytest.raises(BadInputError) as caught:
            load_image(form)
        assert caught.value.code == "file_not_found"
        assert "\n" not in str(caught.value)


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(BadInputError) as caught:
        load_image(tmp_path)
    assert caught.value.code in ("not_a_file", "file_unreadable")


@pytest.mark.parametrize("empty", [b"", "", "   "])
def test_empty_input(empty, tmp_path):
    with pytest.raises(EmptyImageError):
        load_image(empty)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(EmptyImageError) as caught:
        load_image(path)
    assert caught.value.code == "empty_image"


def test_data_url_must_be_an_image_in_base64():
    with pytest.raises(UnsupportedFormatError):
        load_image("data:text/plain;base64,aGVsbG8=")
    with pytest.raises(BadInputError) as caught:
        load_image("data:image/png,rawtext")
    assert caught.value.code == "bad_data_url"
    with pytest.raises(BadInputError) as caught:
        load_image("data:image/png;base64,%%%")
    assert caught.value.code == "bad_base64"


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [
        (b"hello, this is plain text\n", "text/plain"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"<!DOCTYPE html><html></html>", "HTML"),
        (b"PK\x03\x04\x14\x00\x00\x00", "ZIP"),
        (bytes(range(256)) * 4, "binary"),
    ],
)
def test_unsupported_content_is_named(data, looks_like):
    with pytest.raises(UnsupportedFormatError) as caught:
        load_image(data)
    assert looks_like in str(caught.value)
    assert caught.value.code == "unsupported_format"
    assert looks_like in describe_content(data)


def test_sniff_needs_the_magic_not_the_name():
    assert sniff_format(b"BM" + b"\x00" * 40) is None  # "BM" without a BMP header is not a BMP
    assert sniff_format(images.all_formats()[ImageFormat.BMP]) is ImageFormat.BMP


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", ImageFormat.JPEG),
        (b"\x89PNG\r\n\x1a\n\x00\x00", ImageFormat.PNG),
        (b"GIF89a\x01\x00", ImageFormat.GIF),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", ImageFormat.WEBP),
        (b"MM\x00*\x00\x00\x00\x08", ImageFormat.TIFF),
        (b"<html><body>", None),
        (b"%PDF-1.7", None),
    ],
)
def test_magic_bytes_of_a_body_head(head, expected):
    """What the URL fetcher checks a downloaded body's first bytes with."""
    assert sniff_format(head) is expected


# --- load_image: limits and damage ---------------------------------------------------------------


def test_too_many_bytes(tmp_path):
    data = images.jpeg_bytes(64, 48)
    limits = ImageLimits(max_bytes=len(data) - 1)
    with pytest.raises(ImageTooLargeError):
        load_image(data, limits=limits)
    path = tmp_path / "big.jpg"
    path.write_bytes(data)
    with pytest.raises(ImageTooLargeError):
        load_image(path, limits=limits)
    with pytest.raises(ImageTooLargeError):
        load_image(base64.b64encode(data).decode(), limits=ImageLimits(max_bytes=len(data) // 2))


def test_bomb_header_is_refused_before_decoding():
    with pytest.raises(DecompressionBombError) as caught:
        load_image(images.bomb_png(30000, 30000))
    assert caught.value.code == "decompression_bomb"
    assert "900000000" in str(caught.value)


def test_configured_pixel_limit_names_the_size():
    data = images.all_formats(120, 80)[ImageFormat.PNG]
    with pytest.raises(DecompressionBombError) as caught:
        load_image(data, limits=ImageLimits(max_pixels=120 * 80 - 1))
    assert "120x80" in str(caught.value)
    assert load_image(data, limits=ImageLimits(max_pixels=120 * 80)).width == 120


def test_pillow_bomb_warning_maps_to_our_error_when_raised():
    # 100 MP: above Pillow's warning threshold (~89 MP), below our configured limit.
    data = images.bomb_png(10000, 10000)
    limits = ImageLimits(max_pixels=200_000_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(DecompressionBombError):
            load_image(data, limits=limits)
    with pytest.warns(Image.DecompressionBombWarning):
        assert load_image(data, limits=limits).width == 10000


@pytest.mark.parametrize("image_format", list(ImageFormat))
def test_truncated_files_are_corrupt(image_format):
    data = images.all_formats(160, 120)[image_format]
    with pytest.raises(CorruptImageError) as caught:
        load_image(data[: len(data) * 2 // 3])
    assert caught.value.code == "corrupt_image"


def test_truncated_jpeg_is_detected_with_and_without_exif():
    data = images.camera_jpeg(320, 240)
    assert load_image(data).width == 320
    for cut in (len(data) - 2, len(data) // 2, 400):
        with pytest.raises(CorruptImageError, match=r"(?i)truncated"):
            load_image(data[:cut])
    with pytest.raises(CorruptImageError, match=r"(?i)truncated"):
        load_image(images.truncated_jpeg())


def test_jpeg_with_trailing_bytes_after_the_end_marker_is_fine():
    data = images.jpeg_bytes(64, 48) + b"\x00" * 100 + b"vendor trailer"
    assert load_image(data).format is ImageFormat.JPEG


def test_damaged_png_crc_is_corrupt():
    data = bytearray(images.all_formats()[ImageFormat.PNG])
    data[60] ^= 0xFF  # inside the first IDAT chunk
    with pytest.raises(CorruptImageError):
        load_image(bytes(data))


# --- EXIF orientation -----------------------------------------------------------------------------


def pixel(picture: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = picture.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def _halves(width: int, height: int) -> Image.Image:
    """Left half red, right half blue."""
    picture = Image.new("RGB", (width, height), (0, 0, 255))
    ImageDraw.Draw(picture).rectangle((0, 0, width // 2 - 1, height - 1), fill=(255, 0, 0))
    return picture


def test_orientation_6_turns_the_dimensions_and_the_pixels():
    data = images.jpeg_bytes(exif=images.make_exif(orientation=6), picture=_halves(200, 100))
    source = load_image(data)
    assert (source.width, source.height, source.orientation) == (200, 100, 6)
    assert source.upright_size == (100, 200)
    assert not fits(source, ImageConstraints())

    prepared = fit(source, ImageConstraints())

    assert prepared.reencoded
    assert (prepared.width, prepared.height) == (100, 200)
    upright = images.decode(prepared.data).convert("RGB")
    assert upright.size == (100, 200)
    top, bottom = pixel(upright, (50, 20)), pixel(upright, (50, 180))
    # Orientation 6 is "rotate 90° clockwise to display": the stored left (red) ends on top.
    assert top[0] > 200
    assert top[2] < 60
    assert bottom[2] > 200
    assert bottom[0] < 60


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_yields_upright_dimensions(orientation):
    data = images.jpeg_bytes(exif=images.make_exif(orientation=orientation), picture=_halves(90, 60))
    source = load_image(data)
    prepared = fit(source, ImageConstraints(max_side=45))
    expected = (30, 45) if orientation in (5, 6, 7, 8) else (45, 30)
    assert (prepared.width, prepared.height) == expected
    assert images.decode(prepared.data).size == expected


# --- fit -------------------------------------------------------------------------------------------


def test_passthrough_when_everything_fits():
    data = images.jpeg_bytes(320, 240)
    source = load_image(data)
    constraints = ImageConstraints(
        max_bytes=len(data), max_side=320, max_pixels=320 * 240, min_side=240, formats={ImageFormat.JPEG}
    )

    prepared = fit(source, constraints)

    assert prepared.reencoded is False
    assert prepared.data is data
    assert (prepared.format, prepared.width, prepared.height) == (ImageFormat.JPEG, 320, 240)


def test_downscale_to_a_byte_limit():
    source = load_image(images.jpeg_bytes(1200, 900, quality=95))
    limit = source.size // 4

    prepared = fit(source, ImageConstraints(max_bytes=limit))

    assert prepared.reencoded
    assert prepared.size <= limit
    assert prepared.format is ImageFormat.JPEG
    assert images.decode(prepared.data).size == (prepared.width, prepared.height)
    assert prepared.width / prepared.height == pytest.approx(1200 / 900, rel=0.02)


def test_base64_limit_counts_the_encoded_text():
    source = load_image(images.jpeg_bytes(1200, 900, quality=95))
    limit = source.size // 3
    raw = fit(source, ImageConstraints(max_bytes=limit))
    encoded = fit(source, ImageConstraints(max_bytes=limit, base64_counts=True))

    assert len(base64.b64encode(encoded.data)) <= limit
    assert len(base64.b64encode(raw.data)) > limit  # the raw limit alone would overshoot
    assert encoded.size < raw.size


def test_downscale_to_a_pixel_limit():
    source = load_image(images.jpeg_bytes(800, 600))
    prepared = fit(source, ImageConstraints(max_pixels=50_000))
    assert prepared.width * prepared.height <= 50_000
    assert prepared.width * prepared.height > 40_000  # no needless shrinking


@pytest.mark.parametrize("image_format", list(ImageFormat))
def test_downscale_to_a_longest_side(image_format):
    source = load_image(images.all_formats(400, 300)[image_format])
    prepared = fit(source, ImageConstraints(max_side=100))
    assert (prepared.width, prepared.height) == (100, 75)
    assert images.decode(prepared.data).size == (100, 75)


def test_format_conversion_when_the_format_is_not_accepted():
    source = load_image(images.all_formats(120, 80)[ImageFormat.BMP])
    prepared = fit(source, ImageConstraints(formats={ImageFormat.JPEG, ImageFormat.PNG}))
    assert prepared.format is ImageFormat.JPEG
    assert (prepared.width, prepared.height) == (120, 80)
    assert images.decode(prepared.data).format == "JPEG"


def test_alpha_is_kept_when_an_accepted_format_carries_it():
    source = load_image(images.png_with_alpha(400, 400))
    prepared = fit(source, ImageConstraints(max_side=100, formats={ImageFormat.JPEG, ImageFormat.PNG}))
    assert prepared.format is ImageFormat.PNG
    decoded = images.decode(prepared.data)
    assert decoded.mode == "RGBA"
    assert pixel(decoded, (0, 0))[3] == 0
    assert pixel(decoded, (50, 50))[3] == 255


def test_alpha_is_flattened_onto_white_for_jpeg_only_providers():
    source = load_image(images.png_with_alpha(200, 200))
    prepared = fit(source, ImageConstraints(formats={ImageFormat.JPEG}))
    decoded = images.decode(prepared.data)
    assert prepared.format is ImageFormat.JPEG
    assert decoded.mode == "RGB"
    assert min(pixel(decoded, (2, 2))) > 240  # transparent corner → white


def test_gif_keeps_its_first_frame():
    frames = [Image.new("RGB", (60, 40), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    source = load_image(buffer.getvalue())
    prepared = fit(source, ImageConstraints(formats={ImageFormat.PNG}))
    red, green, _ = pixel(images.decode(prepared.data).convert("RGB"), (30, 20))
    assert red > 200
    assert green < 50


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    buffer = io.BytesIO()
    Image.new("I;16", (20, 20), 40000).save(buffer, "PNG")
    prepared = fit(load_image(buffer.getvalue()), ImageConstraints(formats={ImageFormat.JPEG}))
    value = images.decode(prepared.data).getpixel((10, 10))
    assert value == pytest.approx(40000 / 257, abs=3)


def test_cmyk_jpeg_becomes_rgb():
    data = images.encode(images.photo_like(80, 60).convert("CMYK"), ImageFormat.JPEG)
    prepared = fit(load_image(data), ImageConstraints(max_side=40))
    assert images.decode(prepared.data).mode == "RGB"


def test_small_image_is_upscaled_to_min_side():
    source = load_image(images.jpeg_bytes(50, 40))
    prepared = fit(source, ImageConstraints(min_side=80))
    assert (prepared.width, prepared.height) == (100, 80)


def test_too_small_and_too_elongated_to_upscale():
    source = load_image(images.jpeg_bytes(1000, 10))
    with pytest.raises(InvalidImageError) as caught:
        fit(source, ImageConstraints(min_side=80, max_side=2000))
    assert caught.value.code == "image_too_small"


def test_cannot_fit_a_tiny_byte_limit():
    source = load_image(images.jpeg_bytes(640, 480))
    with pytest.raises(ImageTooLargeError) as caught:
        fit(source, ImageConstraints(max_bytes=200))
    assert caught.value.code == "image_too_large"


def test_corrupt_pixel_data_fails_at_decode():
    data = bytearray(images.jpeg_bytes(320, 240))
    start = data.index(b"\xff\xda") + 20  # inside the entropy-coded scan
    data[start : start + 400] = bytes(range(256)) + bytes(144)
    source = load_image(bytes(data))  # the structure is intact...
    try:
        prepared = fit(source, ImageConstraints(max_side=100))
    except CorruptImageError:
        return  # ...and the decoder refused the pixels, as it may
    assert prepared.width == 100  # or libjpeg concealed the damage, which is also acceptable


def test_fit_is_thread_safe_and_deterministic():
    sources = [load_image(images.jpeg_bytes(600, 400, seed=seed)) for seed in range(4)]
    constraints = ImageConstraints(max_side=200, max_bytes=20_000)
    expected = [fit(source, constraints).data for source in sources]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda s: fit(s, constraints).data, sources * 3))
    assert results == expected * 3


def test_png_exif_orientation_is_read_from_the_header():
    data = images.encode(_halves(90, 60), ImageFormat.PNG, exif=images.make_exif(orientation=6))
    source = load_image(data)
    assert source.orientation == 6
    assert source.upright_size == (60, 90)


def test_loading_reads_headers_only_and_fit_finds_bad_pixel_data():
    # Valid chunk structure and CRCs, but the compressed pixel stream is garbage.
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    header = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"\x00garbage, not zlib" * 10)
        + chunk(b"IEND", b"")
    )
    source = load_image(data)
    assert (source.width, source.height) == (64, 64)
    with pytest.raises(CorruptImageError):
        fit(source, ImageConstraints(formats={ImageFormat.JPEG}))
