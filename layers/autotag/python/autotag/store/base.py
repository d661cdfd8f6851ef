"""The store interface and its record types. Implementations: DynamoDB (production, emulator) and
an in-memory fake for unit tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from autotag.decisions import TagCorrections, effective_tags
from autotag.models import Classification, ProviderStatus, Tag, TagResult, result_fields

if TYPE_CHECKING:
    from autotag.ordering import Claim, EventOrder, Refusal

T = TypeVar("T")


class ImageStatus(StrEnum):
    TAGGED = "tagged"
    FAILED = "failed"
    SKIPPED = "skipped"


class DroppedTagReason(StrEnum):
    TAG_LIMIT = "tag_limit"
    """S3 allows 10 tags per object; the user's tags came first and left no slot for this one."""
    USER_TAG = "user_tag"
    """The object has a tag with this key that autotag did not write: the user's, kept as it is."""


class DroppedTag(BaseModel):
    """An object tag autotag would have written and did not."""

    model_config = ConfigDict(frozen=True)

    key: str
    value: str
    reason: DroppedTagReason


class S3TagWrite(BaseModel):
    """What autotag wrote to the object's S3 tags, or why it wrote nothing.

    autotag owns exactly the tags it records in ``written`` (key and value): a later run removes or
    replaces only those; every other tag on the object, whatever its key, is the user's."""

    model_config = ConfigDict(frozen=True)

    written: dict[str, str] = Field(default_factory=dict)
    removed: tuple[str, ...] = Field(default=(), description="autotag's earlier tags this run removed")
    dropped: tuple[DroppedTag, ...] = Field(default=(), description="Tags not written, and why")
    user_tags_kept: int = 0
    reason: str | None = Field(default=None, description="Why fewer (or no) tags were written")


class ObjectRef(BaseModel):
    """Which S3 object: bucket, key and, in a versioned bucket, the version."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    version_id: str | None = None

    def ref(self) -> dict[str, Any]:
        """The reference fields, to build another view of the same object."""
        return {"bucket": self.bucket, "key": self.key, "version_id": self.version_id}


class ImageRecord(ObjectRef):
    """One record per image (bucket + key; the latest version processed)."""

    etag: str | None = None
    sequencer: str | None = Field(
        default=None, description="S3's sequencer of the event this record reflects (orders events per key)"
    )
    sha256: str | None = None
    size: int | None = None
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    status: ImageStatus
    tags: tuple[Tag, ...] = ()
    title: str | None = None
    description: str | None = None
    classification: Classification | None = None
    providers: tuple[ProviderStatus, ...] = ()
    error_code: str | None = None
    error: str | None = None
    s3_tags: S3TagWrite | None = None
    cached: bool = Field(default=False, description="The result came from the content-hash cache")
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    corrections: TagCorrections | None = Field(
        default=None,
        description="What people decided (stored apart from `tags`, which is what the providers said)",
    )

    @property
    def tags_in_force(self) -> tuple[Tag, ...]:
        """The providers' tags with people's decisions applied (what the index and S3 tags carry)."""
        return effective_tags(self.tags, self.corrections, self.sha256)

    @classmethod
    def from_result(cls, result: TagResult, **fields: object) -> ImageRecord:
        return cls(**result_fields(result), **fields)


class TagHit(ObjectRef):
    """One image carrying a tag, as the tag index returns it."""

    tag: str
    confidence: float | None = None
    providers: tuple[str, ...] = ()
    updated_at: datetime | None = None


@dataclass(frozen=True)
class CacheEntry:
    """A result to keep in the content-hash cache, written with the record that used it."""

    key: str
    result: TagResult
    ttl_seconds: int


class SummaryTag(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    confidence: float | None = None
    provider: str


SUMMARY_TAGS = 5
CORRECTION_WAIT_SECONDS = 10.0
"""How long a correction waits for an image being tagged (a live claim) before a 409."""


class ImageSummary(ObjectRef):
    """One image as the recent-images feed lists it (newest first, by status)."""

    status: ImageStatus
    updated_at: datetime
    title: str | None = None
    tag_count: int = 0
    top_tags: tuple[SummaryTag, ...] = Field(default=(), description=f"The best {SUMMARY_TAGS} tags in force")
    corrected: bool = Field(default=False, description="People corrected this image's tags")
    error_code: str | None = None
    error: str | None = None

    @classmethod
    def of(cls, record: ImageRecord) -> ImageSummary:
        tags = record.tags_in_force
        ranked = tags  # the pipeline's ranking (see autotag.s3tags.desired_tags)
        return cls(
            **record.ref(),
            status=record.status,
            updated_at=record.updated_at,
            title=record.title,
            tag_count=len(tags),
            top_tags=tuple(
                SummaryTag(name=t.name, confidence=t.confidence, provider=t.provider)
                for t in ranked[:SUMMARY_TAGS]
            ),
            corrected=bool(record.corrections and record.corrections.log),
            error_code=record.error_code,
            error=record.error,
        )


CorrectionUpdate = Callable[[ImageRecord], TagCorrections]
"""Given the stored record (with its corrections), the new corrections; may raise to refuse."""


class Page(BaseModel, Generic[T]):
    items: list[T]
    cursor: str | None = Field(default=None, description="Opaque; pass back to get the next page")


class ImageStore(Protocol):
    def get(self, bucket: str, key: str) -> ImageRecord | None: ...

    def put(
        self, record: ImageRecord, *, claim: Claim | None = None, cache: CacheEntry | None = None
    ) -> ImageRecord:
        """Write the record and replace its tag-index items (no stale items left; see docs/storage.md).
        The stored corrections are kept (``record.corrections`` is ignored) and applied to the
        index; the record as written (with them) is returned.

        With ``claim``: only while the claim is still held (else :class:`~autotag.errors.ClaimLostError`),
        and the claim ends with the write; the corrections are those of the item the claim returned
        (a correction waits while a claim is held). ``cache``: a result to cache, written in the
        same request."""
        ...

    def claim(self, bucket: str, key: str, order: EventOrder, *, lease_seconds: float) -> Claim | Refusal:
        """Take the image's record for one event, by the rules of :func:`autotag.ordering.decide`
        (one conditional write)."""
        ...

    def release(self, claim: Claim) -> None:
        """Give a claim up without writing a record (best effort; it expires anyway)."""
        ...

    def correct(self, bucket: str, key: str, update: CorrectionUpdate) -> ImageRecord | None:
        """Replace the image's corrections with ``update(record)`` and its index items with the
        tags in force, atomically against concurrent writers (re-read and retried on conflict).
        A claim held on the record is kept. The record as stored, or None when there is no record."""
        ...

    def recent(
        self, status: ImageStatus, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ImageSummary]:
        """Images with this status, most recently processed first."""
        ...

    def images_with_tag(self, tag: str, *, limit: int = 50, cursor: str | None = None) -> Page[TagHit]:
        """Images carrying `tag` (case-insensitive), highest confidence first."""
        ...

    def cached_result(self, cache_key: str) -> TagResult | None: ...

    def cached_results(self, cache_keys: list[str]) -> dict[str, TagResult]:
        """Many cached results at once (one request where the store can); misses are absent."""
        ...

    def cache_result(self, cache_key: str, result: TagResult, *, ttl_seconds: int) -> None: ...


def already_tagged(store: ImageStore, bucket: str, key: str, etag: str | None) -> str | None:
    """The stored record's status when it is for this very object (same ETag), else None."""
    record = store.get(bucket, key)
    if record is None or record.etag is None or etag is None:
        return None
    return record.status.value if record.etag.strip('"') == etag.strip('"') else None
