"""Sample images for the demo. Real photographs come from packages the dev environment installs
(nothing binary is committed): scikit-image's sample data and scikit-learn's sample images, with
their licences below. The edge cases are drawn with Pillow: one with camera EXIF, one transparent,
one grayscale, one animated, and one corrupt file."""

from __future__ import annotations

import importlib.resources
import io
import math
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFilter


@dataclass(frozen=True)
class Sample:
    key: str
    data: bytes
    content_type: str
    about: str
    user_tags: dict[str, str] = field(default_factory=dict)
    expect: tuple[str, ...] = ()
    """Content tags one of which the offline vision model must give (the demo fails otherwise)."""


PHOTOS = {
    # key in the bucket: (package, path in the package, what it shows and its licence, expected tags)
    "photos/chelsea-the-cat.png": (
        "skimage",
        "data/chelsea.png",
        "photograph: Chelsea the cat (scikit-image sample data, CC0 Stefan van der Walt)",
        ("cat",),
    ),
    "photos/espresso.png": (
        "skimage",
        "data/coffee.png",
        "photograph: a cup of espresso (scikit-image sample data, CC0 Rachel Michetti)",
        ("coffee", "espresso"),
    ),
    "photos/astronaut-eileen-collins.png": (
        "skimage",
        "data/astronaut.png",
        "photograph: astronaut Eileen Collins (scikit-image sample data, NASA, public domain)",
        ("person",),
    ),
    "photos/summer-palace.jpg": (
        "sklearn",
        "datasets/images/china.jpg",
        "photograph: a palace roof (scikit-learn sample image, CC BY 2.0 danielbuechele on Flickr)",
        ("building", "palace", "structure"),
    ),
}


def packaged_photo(package: str, path: str) -> bytes:
    return importlib.resources.files(package).joinpath(path).read_bytes()


def photo_samples() -> list[Sample]:
    content_types = {".png": "image/png", ".jpg": "image/jpeg"}
    return [
        Sample(key, packaged_photo(package, path), content_types[key[key.rfind(".") :]], about, expect=expect)
        for key, (package, path, about, expect) in PHOTOS.items()
    ]


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _lerp(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def sunset_landscape(width: int = 1200, height: int = 800) -> bytes:
    """A sky from deep violet to orange, a low sun, hills and its reflection on the sea."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    horizon = int(height * 0.62)
    for y in range(horizon):
        t = y / horizon
        draw.line([(0, y), (width, y)], fill=_lerp((58, 28, 92), (252, 140, 40), t**0.8))
    sun = (int(width * 0.62), horizon - 40)
    draw.ellipse([sun[0] - 70, sun[1] - 70, sun[0] + 70, sun[1] + 70], fill=(255, 214, 120))
    for y in range(horizon, height):
        t = (y - horizon) / (height - horizon)
        draw.line([(0, y), (width, y)], fill=_lerp((196, 96, 52), (24, 28, 60), t))
    for y in range(horizon + 6, height, 9):  # the sun's glitter on the water
        half = int(60 * (1 - (y - horizon) / (height - horizon)) + 8)
        draw.line([(sun[0] - half, y), (sun[0] + half, y)], fill=(255, 190, 110), width=2)
    points = [
        (x, horizon - 40 - int(35 * math.sin(x / 140) + 20 * math.sin(x / 53)))
        for x in range(0, width + 10, 10)
    ]
    draw.polygon([(0, horizon), *points, (width, horizon)], fill=(40, 22, 48))
    return _save(image.filter(ImageFilter.GaussianBlur(1.2)), "JPEG", quality=88)


def portrait_with_exif(width: int = 600, height: int = 900) -> bytes:
    """A portrait-shaped photo (a figure against a studio backdrop) with camera EXIF."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        draw.line([(0, y), (width, y)], fill=_lerp((70, 110, 150), (170, 200, 220), y / height))
    cx = width // 2
    draw.ellipse([cx - 190, int(height * 0.55), cx + 190, height + 200], fill=(120, 40, 50))  # shoulders
    draw.rectangle([cx - 45, int(height * 0.45), cx + 45, int(height * 0.6)], fill=(224, 180, 150))  # neck
    draw.ellipse([cx - 110, int(height * 0.2), cx + 110, int(height * 0.5)], fill=(232, 190, 160))  # face
    draw.chord(
        [cx - 118, int(height * 0.17), cx + 118, int(height * 0.4)], 180, 360, fill=(60, 38, 30)
    )  # hair
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0x0110] = "Canon EOS R6"  # Model
    exif[0x0131] = "autotag demo"  # Software
    return _save(image.filter(ImageFilter.GaussianBlur(2)), "JPEG", quality=90, exif=exif)


def transparent_logo(size: int = 512) -> bytes:
    """A logo on a transparent background: a teal ring and a bold mark."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse([40, 40, size - 40, size - 40], outline=(0, 150, 136, 255), width=36)
    draw.polygon([(size // 2, 130), (size - 150, size - 150), (150, size - 150)], fill=(255, 111, 0, 255))
    return _save(image, "PNG")


def grayscale_street(width: int = 900, height: int = 600) -> bytes:
    """A black-and-white street: buildings in perspective, windows, a road."""
    image = Image.new("L", (width, height), 200)
    draw = ImageDraw.Draw(image)
    draw.polygon(
        [(0, height), (width, height), (width // 2 + 40, height // 2), (width // 2 - 40, height // 2)],
        fill=70,
    )
    for i, x in enumerate(range(0, width // 2 - 60, 110)):
        top = 60 + (i % 3) * 40
        draw.rectangle([x, top, x + 100, height // 2 + 40], fill=110 + (i % 2) * 30)
        for wy in range(top + 20, height // 2 + 20, 40):
            draw.rectangle([x + 15, wy, x + 40, wy + 22], fill=235)
            draw.rectangle([x + 60, wy, x + 85, wy + 22], fill=40)
    for i, x in enumerate(range(width // 2 + 80, width, 110)):
        top = 80 + (i % 2) * 50
        draw.rectangle([x, top, x + 100, height // 2 + 40], fill=130 - (i % 2) * 30)
    return _save(image.filter(ImageFilter.GaussianBlur(0.8)), "WEBP", quality=85)


def animated_gif(size: int = 240, frames: int = 8) -> bytes:
    """A small animation: a red ball bouncing on a green lawn under a blue sky."""
    images = []
    for frame in range(frames):
        image = Image.new("RGB", (size, size), (120, 180, 240))
        draw = ImageDraw.Draw(image)
        draw.rectangle([0, int(size * 0.75), size, size], fill=(60, 150, 60))
        y = int(size * 0.7 - abs(math.sin(frame / frames * math.pi)) * size * 0.5)
        draw.ellipse([size // 2 - 22, y - 44, size // 2 + 22, y], fill=(210, 30, 40))
        images.append(image.convert("P", palette=Image.Palette.ADAPTIVE))
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=90, loop=0)
    return buffer.getvalue()


def corrupt_jpeg() -> bytes:
    """A JPEG cut off after its first few hundred bytes (a failed upload)."""
    return sunset_landscape(320, 200)[:300]


def api_sample() -> bytes:
    """The image the demo sends to POST /v1/tags: a rocket launch (scikit-image sample data, SpaceX,
    public domain), as a JPEG."""
    return packaged_photo("skimage", "data/rocket.jpg")


def samples() -> list[Sample]:
    return [
        *photo_samples(),
        Sample("photos/sunset-over-the-bay.jpg", sunset_landscape(), "image/jpeg", "sunset landscape (JPEG)"),
        Sample(
            "photos/portrait-studio.jpg",
            portrait_with_exif(),
            "image/jpeg",
            "portrait with camera EXIF, 3 user tags already on it (JPEG)",
            user_tags={"owner": "alice", "project": "spring-shoot", "rights": "licensed"},
        ),
        Sample("brand/logo.png", transparent_logo(), "image/png", "transparent logo (PNG)"),
        Sample(
            "photos/street-in-black-and-white.webp",
            grayscale_street(),
            "image/webp",
            "grayscale street (WebP)",
        ),
        Sample("clips/bouncing-ball.gif", animated_gif(), "image/gif", "animation (GIF)"),
        Sample("photos/upload-interrupted.jpg", corrupt_jpeg(), "image/jpeg", "corrupt, truncated file"),
    ]
