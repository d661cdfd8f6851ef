"""Request and response models of the on-demand API. The OpenAPI document is generated from these,
and the same models validate what comes in and shape what goes out."""

from __future__ import annotations

from typing import Annotated, Literal

from autotag.corrections import MAX_TAG_NAME_CHARS, MAX_TAGS_PER_CORRECTION
from autotag.image import MAX_URL_LENGTH, S3_BUCKET_PATTERN, ImageFormat, S3Location, SourceImage
from autotag.models import (
    Classification,
    ProviderStatus,
    Tag,
    TagOptions,
    TagResult,
    json_integer,
    result_fields,
    tag_key,
)
from autotag.store.base import ImageRecord, ImageStatus, ImageSummary, S3TagWrite, TagHit
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

BucketParam = Annotated[str, Path(pattern=S3_BUCKET_PATTERN)]
KeyParam = Annotated[str, Path(min_length=1, max_length=1024, description="The object key; may contain /")]
CursorParam = Annotated[str | None, Query(min_length=1, max_length=4096)]
"""Path and query parameters more than one route takes."""
UPLOAD_CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff")


class _Request(BaseModel):
    # Strict: the types the OpenAPI document publishes, no coercion ("10" and true are not integers).
    model_config = ConfigDict(extra="forbid", strict=True)


class S3Reference(_Request):
    bucket: str = Field(pattern=S3_BUCKET_PATTERN, description="A bucket the deployment allows")
    key: str = Field(min_length=1, max_length=1024)
    version_id: str | None = Field(default=None, min_length=1, max_length=1024)

    def location(self) -> S3Location:
        return S3Location(bucket=self.bucket, key=self.key, version_id=self.version_id)


class TagRequest(_Request):
    """Exactly one of `image`, `url` or `s3`."""

    # (strict and closed, as every request.) The rules the validator below enforces, stated in the
    # published schema too: exactly one source is given (not null), and store=true needs s3.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": kind}}}
                for name, kind in (("image", "string"), ("url", "string"), ("s3", "object"))
            ],
            "if": {"required": ["store"], "properties": {"store": {"const": True}}},
            "then": {"required": ["s3"], "properties": {"s3": {"type": "object"}}},
        },
    )

    image: str | None = Field(
        default=None,
        min_length=1,
        description="The image as base64 (standard or URL-safe) or a data URL (data:image/png;base64,...)",
    )
    url: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="An https URL; private, loopback, link-local and metadata addresses are refused",
        examples=["https://images.example.com/cat.jpg"],
    )
    s3: S3Reference | None = Field(default=None, description="An object in an allowed bucket")
    options: TagOptions = Field(default_factory=TagOptions)
    store: bool = Field(
        default=False,
        description="Also persist the result and tag the object, as an upload would (s3 sources only)",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TagRequest:
        given = [name for name in ("image", "url", "s3") if getattr(self, name) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "source_count",
                "give exactly one of image, url or s3 (got {given})",
                {"given": ", ".join(given) or "none"},
            )
        if self.store and self.s3 is None:
            raise PydanticCustomError("store_needs_s3", "store applies to s3 sources only")
        return self

    @property
    def source_kind(self) -> Literal["image", "url", "s3"]:
        if self.image is not None:
            return "image"
        return "url" if self.url is not None else "s3"


class ImageInfo(BaseModel):
    format: ImageFormat | None = None
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    size: int | None = Field(default=None, description="Bytes")
    sha256: str | None = None

    @classmethod
    def of(cls, image: SourceImage | ImageRecord) -> ImageInfo:
        """The facts of an image received (all known) or of a stored record (no format)."""
        return cls.model_validate(image, from_attributes=True)


class SourceInfo(BaseModel):
    kind: Literal["image", "url", "s3"]
    url: str | None = None
    s3: S3Reference | None = None


class TagResponse(BaseModel):
    """The normalized result for one image."""

    request_id: str
    source: SourceInfo
    image: ImageInfo
    tags: tuple[Tag, ...] = ()
    title: str | None = None
    description: str | None = None
    classification: Classification | None = None
    providers: tuple[ProviderStatus, ...] = ()
    stored: bool = Field(default=False, description="The result was persisted and the object tagged")
    record: ImageRecord | None = Field(default=None, description="The stored record (store=true only)")

    @classmethod
    def of(
        cls,
        outcome: TagResult | ImageRecord,
        *,
        request_id: str,
        source: SourceInfo,
        image: ImageInfo | None = None,
    ) -> TagResponse:
        """The answer for a result (not stored), or for the record store mode wrote."""
        record = outcome if isinstance(outcome, ImageRecord) else None
        if image is None:
            assert record is not None, "an unstored result needs the image's facts"
            image = ImageInfo.of(record)
        return cls(
            request_id=request_id,
            source=source,
            image=image,
            **result_fields(outcome),
            stored=record is not None,
            record=record,
        )


class ImageRecordResponse(BaseModel):
    request_id: str
    image: ImageRecord = Field(
        description="`tags` is what the providers said; `corrections` what people decided, and who"
    )
    tags_in_force: tuple[Tag, ...] = Field(
        default=(), description="The providers' tags with people's corrections applied (index, S3 tags)"
    )

    @classmethod
    def of(cls, record: ImageRecord, *, request_id: str) -> ImageRecordResponse:
        return cls(request_id=request_id, image=record, tags_in_force=record.tags_in_force)


CorrectionTag = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=MAX_TAG_NAME_CHARS,
        # Printable, and not only spaces (what is left after the spaces around it are stripped).
        pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
    ),
]


class CorrectionRequest(_Request):
    """Tags to add and to remove; at least one, no tag in both."""

    # The at-least-one rule the validator below enforces, stated in the published schema too.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "array", "minItems": 1}}}
                for name in ("add", "remove")
            ]
        },
    )

    add: list[CorrectionTag] = Field(
        default_factory=list, max_length=MAX_TAGS_PER_CORRECTION, examples=[["golden retriever"]]
    )
    remove: list[CorrectionTag] = Field(
        default_factory=list, max_length=MAX_TAGS_PER_CORRECTION, examples=[["cat"]]
    )

    @model_validator(mode="after")
    def _something(self) -> CorrectionRequest:
        if not self.add and not self.remove:
            raise PydanticCustomError("empty_correction", "give at least one tag to add or remove")
        both = {tag_key(t) for t in self.add} & {tag_key(t) for t in self.remove}
        if both:
            raise PydanticCustomError(
                "add_and_remove",
                "a tag cannot be both added and removed: {tags}",
                {"tags": ", ".join(sorted(both))},
            )
        return self


class CorrectionResponse(ImageRecordResponse):
    added: list[str]
    removed: list[str]
    s3_tags: S3TagWrite = Field(description="The object's S3 tags as written after the correction")


class ImageSummaryPage(BaseModel):
    request_id: str
    status: ImageStatus
    items: list[ImageSummary]
    cursor: str | None = Field(default=None, description="Opaque; pass it back as ?cursor= for the next page")


class ThumbnailResponse(BaseModel):
    """A small rendition of the object, upright, in a format browsers display."""

    request_id: str
    content_type: str
    width: int
    height: int
    data: str = Field(description="The image bytes, base64")


class TagHitsPage(BaseModel):
    request_id: str
    tag: str
    items: list[TagHit]
    cursor: str | None = Field(default=None, description="Opaque; pass it back as ?cursor= for the next page")


class UploadRequest(_Request):
    content_type: Literal["image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"] = (
        Field(description="Sent back as the Content-Type the upload must use")
    )
    size: Annotated[int, Strict(False), Field(gt=0), BeforeValidator(json_integer)] = Field(
        description="Bytes the client will upload; refused above the image limit"
    )
    filename: str | None = Field(
        default=None,
        max_length=200,
        description="Kept (made S3-safe) as the last part of the object key",
    )


class UploadResponse(BaseModel):
    request_id: str
    method: Literal["PUT"] = "PUT"
    url: str = Field(description="Presigned URL; PUT the bytes there with the headers below")
    headers: dict[str, str]
    bucket: str
    key: str
    expires_in: int = Field(description="Seconds the URL stays valid")
    max_bytes: int = Field(description="Objects above this size are refused when they are tagged")


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(default_factory=list, description="Where in the request, e.g. body.url")
    type: str
    message: str


class ErrorResponse(BaseModel):
    code: str = Field(description="Stable, machine-readable; see docs/api.md")
    message: str
    request_id: str
    details: list[ErrorDetail] | None = None
