from __future__ import annotations

import asyncio

import httpx
import pytest
from autotag.config import ProviderConfig
from autotag.credentials import StaticCredentials
from autotag.image import ImageFormat
from autotag.intake import fit, load_image
from autotag.models import TagKind
from autotag.providers import provider_class
from autotag.providers.base import EffectiveOptions, InputForm, ProviderContext, ProviderRequest
from autotag.providers.basic import BasicProvider, colour_name, orientation_tag
from autotag.retry import Deadline
from PIL import Image, ImageDraw

from tests.support import images


@pytest.fixture
def provider():
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(599)))
    context = ProviderContext(http=http, credentials=StaticCredentials({}))
    return BasicProvider(ProviderConfig(name="basic"), context)


def tag(provider: BasicProvider, data: bytes) -> dict[str, float]:
    source = load_image(data)
    request = ProviderRequest(
        image=fit(source, BasicProvider.constraints),
        source=source,
        options=EffectiveOptions(lang="en", min_confidence=None, max_tags=None),
        deadline=Deadline.after(10),
    )
    result = asyncio.run(provider.tag(request))
    assert result.providers[0].provider == "basic"
    assert all(t.provider == "basic" for t in result.tags)
    assert all(t.confidence is not None for t in result.tags)
    return {t.name: t.confidence or 0.0 for t in result.tags}


def test_registered_offline_and_keyless():
    assert provider_class("basic") is BasicProvider
    capabilities = BasicProvider.capabilities
    assert capabilities.needs_network is False
    assert capabilities.auth == "none"
    assert capabilities.input_forms == (InputForm.BYTES,)
    assert ImageFormat.PNG in BasicProvider.constraints.formats  # keeps alpha through the intake


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((250, 250, 250), "white"),
        ((5, 5, 5), "black"),
        ((128, 128, 128), "gray"),
        ((220, 20, 20), "red"),
        ((30, 160, 40), "green"),
        ((30, 70, 220), "blue"),
        ((250, 225, 40), "yellow"),
        ((250, 140, 20), "orange"),
        ((130, 50, 170), "purple"),
        ((250, 160, 190), "pink"),
        ((110, 65, 30), "brown"),
    ],
)
def test_colour_names(rgb, name):
    assert colour_name(rgb) == name


def test_solid_colour_is_named_with_full_share(provider):
    tags = tag(provider, images.solid_bytes((210, 25, 30), 80, 60, ImageFormat.JPEG))
    assert tags["red"] == pytest.approx(1.0, abs=0.01)
    assert "monochrome" not in tags
    assert "transparent" not in tags


def test_colour_shares_follow_the_pixels(provider):
    picture = Image.new("RGB", (100, 100), (30, 70, 220))
    ImageDraw.Draw(picture).rectangle((0, 0, 99, 24), fill=(250, 225, 40))  # top quarter yellow
    tags = tag(provider, images.encode(picture, ImageFormat.PNG))
    assert tags["blue"] == pytest.approx(0.75, abs=0.02)
    assert tags["yellow"] == pytest.approx(0.25, abs=0.02)


def test_transparent_png(provider):
    tags = tag(provider, images.png_with_alpha(200, 200))
    assert tags["transparent"] == 1.0
    assert "red" in tags  # only visible pixels count for colours
    assert "black" not in tags


def test_transparency_survives_the_reduced_copy(provider):
    tags = tag(provider, images.png_with_alpha(1200, 900))
    assert "transparent" in tags


def test_opaque_alpha_channel_is_not_transparent(provider):
    assert "transparent" not in tag(provider, images.opaque_rgba_png())


def test_grayscale_is_monochrome(provider):
    assert tag(provider, images.grayscale_bytes())["monochrome"] == 1.0
    assert tag(provider, images.grayscale_bytes(image_format=ImageFormat.PNG))["monochrome"] == 1.0


def test_neutral_rgb_is_monochrome_and_colourful_is_not(provider):
    neutral = images.encode(images.grayscale_image().convert("RGB"), ImageFormat.JPEG)
    assert "monochrome" in tag(provider, neutral)
    assert "monochrome" not in tag(provider, images.jpeg_bytes())


def test_brightness(provider):
    dark = tag(provider, images.solid_bytes((15, 15, 20)))
    bright = tag(provider, images.solid_bytes((245, 245, 240)))
    middle = tag(provider, images.solid_bytes((128, 128, 128)))
    assert dark["dark"] >= 0.85
    assert bright["bright"] >= 0.85
    assert "dark" not in middle
    assert "bright" not in middle


@pytest.mark.parametrize(
    ("size", "expected"),
    [((400, 300), "landscape"), ((300, 400), "portrait"), ((300, 300), "square"), ((900, 300), "panorama")],
)
def test_orientation(provider, size, expected):
    assert orientation_tag(*size) == expected
    assert expected in tag(provider, images.jpeg_bytes(*size))


def test_orientation_uses_the_upright_source_size(provider):
    # Stored 400x300, EXIF says rotate: displayed 300x400.
    tags = tag(provider, images.jpeg_bytes(400, 300, exif=images.make_exif(orientation=6)))
    assert "portrait" in tags
    assert "landscape" not in tags


def test_exif_camera_gps_and_flash(provider):
    tags = tag(provider, images.camera_jpeg())
    assert tags["camera:Canon EOS 5D"] == 1.0  # the make is not repeated
    assert "gps" in tags
    assert "flash" in tags


def test_exif_make_and_model_are_joined(provider):
    tags = tag(provider, images.camera_jpeg(make="NIKON CORPORATION", model="D850", gps=False, flash=False))
    assert "camera:NIKON CORPORATION D850" in tags
    assert "gps" not in tags
    assert "flash" not in tags


def test_no_exif_no_exif_tags(provider):
    tags = tag(provider, images.jpeg_bytes())
    assert not [name for name in tags if name.startswith("camera:") or name in ("gps", "flash")]


def test_deterministic_and_categorized(provider):
    data = images.camera_jpeg(800, 600)
    assert tag(provider, data) == tag(provider, data)
    source = load_image(data)
    request = ProviderRequest(
        image=fit(source, BasicProvider.constraints),
        source=source,
        options=EffectiveOptions(lang="en", min_confidence=None, max_tags=None),
        deadline=Deadline.after(10),
    )
    result = asyncio.run(provider.tag(request))
    categories = {t.name: t.categories for t in result.tags}
    assert categories["landscape"] == ("orientation",)
    assert categories["gps"] == ("exif",)
    assert all(t.kind is TagKind.CONCEPT for t in result.tags)
    colours = [t for t in result.tags if t.categories == ("colour",) and t.name != "monochrome"]
    assert 1 <= len(colours) <= 5
    assert all(0.05 <= (t.confidence or 0) <= 1 for t in colours)


def test_works_on_a_reduced_copy_of_a_large_photo(provider):
    source = load_image(images.jpeg_bytes(3000, 2000))
    prepared = fit(source, BasicProvider.constraints)
    assert max(prepared.width, prepared.height) == 256
    assert "landscape" in tag(provider, source.data)
