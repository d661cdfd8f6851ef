"""Image value types shared by the intake, the providers and the pipeline, and the magic bytes that
name each format."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ImageFormat(StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    GIF = "gif"
    BMP = "bmp"
    TIFF = "tiff"

    @property
    def content_type(self) -> str:
        return f"image/{self.value}"

    @property
    def pil_name(self) -> str:
        return self.value.upper()


ALL_FORMATS: frozenset[ImageFormat] = frozenset(ImageFormat)
MAX_URL_LENGTH = 2048
"""Longest image URL accepted (the API's ``url`` field, and autotag.fetch before and after encoding)."""

S3_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$"
"""A bucket name as S3 allows it (3-63 lowercase letters, digits, dots and hyphens), for validation."""

SNIFF_BYTES = 32
"""How many leading bytes `sniff_format` reads."""
_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def sniff_format(data: bytes) -> ImageFormat | None:
    """The image format from its magic bytes, or None if it is not one we accept."""
    head = data[:SNIFF_BYTES]
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


class ImageConstraints(BaseModel):
    """What a provider accepts. The intake downscales/re-encodes an image until it fits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_bytes: int | None = Field(default=None, gt=0, description="Largest payload, in bytes")
    base64_counts: bool = Field(
        default=False, description="max_bytes applies to the base64 text, not the raw bytes"
    )
    max_pixels: int | None = Field(default=None, gt=0)
    max_side: int | None = Field(default=None, gt=0, description="Longest side, in pixels")
    min_side: int | None = Field(default=None, gt=0, description="Shortest side, in pixels")
    formats: frozenset[ImageFormat] = ALL_FORMATS
    useful_side: int | None = Field(
        default=1600,
        gt=0,
        description=(
            "When the image must be re-encoded anyway, the decoder may reduce it (JPEG DCT scaling) "
            "to any size whose longest side is still at least this: tagging gains nothing from more "
            "pixels, and decoding at 1/2 or 1/4 scale is several times cheaper. None keeps every pixel "
            "the limits allow."
        ),
    )

    def payload_bytes(self, raw_size: int) -> int:
        """The size the provider measures for a payload of raw_size bytes."""
        return 4 * ((raw_size + 2) // 3) if self.base64_counts else raw_size


@dataclass(frozen=True)
class EncodedImage:
    """Encoded image bytes with their format and pixel size."""

    data: bytes = field(repr=False)
    format: ImageFormat
    width: int
    height: int

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def content_type(self) -> str:
        return self.format.content_type


@dataclass(frozen=True)
class SourceImage(EncodedImage):
    """An image as received: original bytes, sniffed format, header dimensions, content hash."""

    sha256: str
    orientation: int = 1
    """EXIF orientation (1 = upright). width/height are as stored, before orientation."""
    max_decode_bytes: int | None = None
    """The decode-memory budget the image was accepted under (autotag.intake.decode_memory); None:
    the process default."""

    @property
    def upright_size(self) -> tuple[int, int]:
        """Width and height as displayed, after EXIF orientation."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)


@dataclass(frozen=True)
class PreparedImage(EncodedImage):
    """An image made fit for one provider's constraints (upright, within its limits)."""

    reencoded: bool
    """False when the original bytes were passed through untouched."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str
    version_id: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def split_s3_url(url: str) -> tuple[str, str] | None:
    """``s3://bucket/key`` → (bucket, key), the inverse of :attr:`S3Location.uri`; None if it is not
    an s3:// URL with a bucket.

    The key is everything after the bucket's slash, verbatim, as the AWS CLI reads it: S3 keys may
    hold ``?``, ``#``, ``%`` and spaces, which are not URL syntax here.
    """
    scheme, separator, rest = url.partition("://")
    bucket, _, key = rest.partition("/")
    if scheme.lower() != "s3" or not separator or not bucket:
        return None
    return bucket, key
