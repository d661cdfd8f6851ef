"""`basic`: the offline provider. Tags from pixels and metadata, no network, no key.

It works on a small copy (its constraints make the intake hand it a reduced decode, lossless PNG so
transparency survives) and reads facts that need the full picture from the original: the upright
size for the orientation and the EXIF header for camera facts.

Tags (all English; deterministic for the same bytes):
- dominant colours, named from a fixed palette (nearest in CIELAB), confidence = share of the
  visible pixels; category ``colour``; at most :data:`MAX_COLOURS`, each covering ≥ 5 %.
- ``landscape`` / ``portrait`` / ``square`` / ``panorama`` (aspect ≥ 2:1 either way), confidence 1;
  category ``orientation``.
- ``dark`` / ``bright`` when the mean luminance is clearly low/high; confidence grows with distance
  from mid-grey; category ``brightness``.
- ``monochrome`` for greyscale images or ones whose visible pixels are (almost) all neutral;
  confidence = share of neutral pixels; category ``colour``.
- ``transparent`` when some pixels are not fully opaque; confidence 1; category ``transparency``.
- EXIF (category ``exif``): ``camera:<make model>`` (e.g. ``camera:Canon EOS 5D``), ``gps`` when
  the image carries GPS coordinates, ``flash`` when the flash fired; confidence 1.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageChops

from autotag.errors import ProviderBadInputError
from autotag.image import ImageConstraints, ImageFormat, SourceImage
from autotag.intake.header import header_exif
from autotag.models import Tag, TagKind
from autotag.providers.base import Capabilities, InputForm, LocalProvider, ProviderRequest

MAX_COLOURS = 5
MIN_COLOUR_SHARE = 0.05
NEUTRAL_CHROMA = 24
"""max(R,G,B) - min(R,G,B) at or below this counts as a neutral (grey) pixel."""
MONOCHROME_SHARE = 0.97
DARK_LUMA = 80
BRIGHT_LUMA = 175
PANORAMA_RATIO = 2.0
SQUARE_TOLERANCE = 0.05
OPAQUE = 255
VISIBLE_ALPHA = 128
"""Pixels at least this opaque are the ones whose colour counts."""

PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "red": (200, 30, 35),
    "orange": (245, 140, 30),
    "yellow": (245, 220, 50),
    "green": (60, 160, 60),
    "olive": (110, 115, 40),
    "teal": (20, 140, 140),
    "blue": (40, 90, 210),
    "navy": (20, 30, 90),
    "purple": (125, 55, 160),
    "pink": (240, 150, 185),
    "brown": (115, 70, 35),
    "beige": (225, 205, 165),
}

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_MAKE = 0x010F
_MODEL = 0x0110
_FLASH = 0x9209


def _linear(channel: float) -> float:
    c = channel / 255.0
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """sRGB → CIELAB (D65): distances there roughly follow how different colours look."""
    r, g, b = (_linear(v) for v in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    fx, fy, fz = f(x), f(y), f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


_PALETTE_LAB = {name: _lab(rgb) for name, rgb in PALETTE.items()}


@lru_cache(maxsize=8192)
def colour_name(rgb: tuple[int, int, int]) -> str:
    """The palette name nearest to an sRGB colour."""
    lab = _lab(rgb)
    return min(_PALETTE_LAB, key=lambda name: math.dist(lab, _PALETTE_LAB[name]))


@dataclass(frozen=True)
class PixelFacts:
    colours: list[tuple[str, float]]
    mean_luma: float
    neutral_share: float
    greyscale: bool
    transparent: bool


_POSTERIZE = [(v & 0xF0) | 0x08 for v in range(256)]


def analyze_pixels(picture: Image.Image) -> PixelFacts:
    """Colour shares, luminance, neutrality and transparency of a (small) image."""
    greyscale = picture.mode in ("1", "L", "LA", "I", "F") or picture.mode.startswith("I;16")
    rgba = picture.convert("RGBA")
    alpha = rgba.getchannel("A")
    transparent = alpha.getextrema()[0] != OPAQUE
    visible = alpha.point([255 if a >= VISIBLE_ALPHA else 0 for a in range(256)])
    visible_count = visible.histogram()[255]
    if visible_count == 0:
        return PixelFacts([], 0.0, 1.0, greyscale, transparent)
    rgb = rgba.convert("RGB")

    # Posterize to 4 bits per channel so the distinct colours stay few, then name each once.
    counts: dict[str, int] = {}
    posterized = rgb.point(_POSTERIZE * 3)
    for count, colour in Image.merge("RGBA", (*posterized.split(), visible)).getcolors(1 << 16) or ():
        assert isinstance(colour, tuple)
        red, green, blue, shown = colour
        if shown:
            name = colour_name((red, green, blue))
            counts[name] = counts.get(name, 0) + count
    shares = sorted(((n, c / visible_count) for n, c in counts.items()), key=lambda item: (-item[1], item[0]))

    luma_histogram = rgb.convert("L").histogram(mask=visible)
    mean_luma = sum(i * n for i, n in enumerate(luma_histogram)) / visible_count
    r_band, g_band, b_band = rgb.split()
    chroma = ImageChops.difference(
        ImageChops.lighter(ImageChops.lighter(r_band, g_band), b_band),
        ImageChops.darker(ImageChops.darker(r_band, g_band), b_band),
    )
    neutral = sum(chroma.histogram(mask=visible)[: NEUTRAL_CHROMA + 1]) / visible_count
    return PixelFacts(shares, mean_luma, neutral, greyscale, transparent)


@dataclass(frozen=True)
class ExifFacts:
    camera: str | None = None
    gps: bool = False
    flash: bool = False


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return " ".join(str(value or "").replace("\x00", " ").split())[:80]


def read_exif(source: SourceImage) -> ExifFacts:
    """Camera make/model, GPS presence and flash from the original's header (no pixel decode)."""
    try:
        with Image.open(io.BytesIO(source.data), formats=[source.format.pil_name]) as opened:
            exif = header_exif(opened)
            make, model = _text(exif.get(_MAKE)), _text(exif.get(_MODEL))
            gps = bool(exif.get_ifd(_GPS_IFD))
            flash = exif.get_ifd(_EXIF_IFD).get(_FLASH)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError):
        return ExifFacts()  # a damaged EXIF block is no reason to lose the pixel tags
    # Models often repeat the make ("Canon" + "Canon EOS 5D"); say it once.
    camera = model if model.casefold().startswith(make.casefold()) else f"{make} {model}".strip()
    return ExifFacts(camera=camera or None, gps=gps, flash=isinstance(flash, int) and bool(flash & 1))


def orientation_tag(width: int, height: int) -> str:
    ratio = width / height
    if ratio >= PANORAMA_RATIO or ratio <= 1 / PANORAMA_RATIO:
        return "panorama"
    if abs(ratio - 1.0) <= SQUARE_TOLERANCE:
        return "square"
    return "landscape" if ratio > 1 else "portrait"


class BasicProvider(LocalProvider):
    name = "basic"
    constraints = ImageConstraints(max_side=256, formats=frozenset({ImageFormat.PNG}))
    capabilities = Capabilities(
        input_forms=(InputForm.BYTES,),
        languages=("en",),
        needs_network=False,
        attributes_only=True,
        auth="none",
        rate_limit="none (local computation)",
    )

    def tags_for(self, request: ProviderRequest) -> list[Tag]:
        try:
            with Image.open(io.BytesIO(request.image.data)) as picture:
                picture.load()
                pixels = analyze_pixels(picture)
        except (OSError, SyntaxError, ValueError) as exc:
            raise ProviderBadInputError(f"cannot decode the image: {exc}", provider=self.key) from None
        tags = self._pixel_tags(pixels)
        tags.append(self._fact(orientation_tag(*request.source.upright_size), "orientation"))
        exif = read_exif(request.source)
        if exif.camera:
            tags.append(self._fact(f"camera:{exif.camera}", "exif"))
        if exif.gps:
            tags.append(self._fact("gps", "exif"))
        if exif.flash:
            tags.append(self._fact("flash", "exif"))
        return tags

    def _pixel_tags(self, pixels: PixelFacts) -> list[Tag]:
        tags = [
            self._tag(name, share, "colour")
            for name, share in pixels.colours[:MAX_COLOURS]
            if share >= MIN_COLOUR_SHARE
        ]
        if pixels.greyscale or pixels.neutral_share >= MONOCHROME_SHARE:
            tags.append(self._tag("monochrome", 1.0 if pixels.greyscale else pixels.neutral_share, "colour"))
        if pixels.mean_luma < DARK_LUMA:
            tags.append(
                self._tag("dark", 0.5 + 0.5 * (DARK_LUMA - pixels.mean_luma) / DARK_LUMA, "brightness")
            )
        elif pixels.mean_luma > BRIGHT_LUMA:
            span = 255 - BRIGHT_LUMA
            tags.append(
                self._tag("bright", 0.5 + 0.5 * (pixels.mean_luma - BRIGHT_LUMA) / span, "brightness")
            )
        if pixels.transparent:
            tags.append(self._fact("transparent", "transparency"))
        return tags

    def _tag(self, name: str, confidence: float, category: str) -> Tag:
        return Tag(
            name=name,
            confidence=round(min(1.0, max(0.0, confidence)), 4),
            provider=self.key,
            kind=TagKind.CONCEPT,
            categories=(category,),
        )

    def _fact(self, name: str, category: str) -> Tag:
        return self._tag(name, 1.0, category)
