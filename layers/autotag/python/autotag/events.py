"""Events on the EventBridge bus: ``Image Tagged``, ``Image Tagging Failed`` and ``Image Tags
Corrected`` (source ``autotag``), and the ``Tag Image Requested`` events on_event consumes. The names
are defined once, here (the bus rules, the local stack and the subscriber import them). The
detail models here are the contract; their JSON Schemas are generated into
``events/schemas/`` (``python -m autotag.events events/schemas``) and documented in docs/events.md.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from autotag.errors import TransientError
from autotag.models import Tag, TagKind
from autotag.store.base import ImageRecord, S3TagWrite

# --- Event names (source and detail types) -------------------------------------------------------

EVENT_SOURCE = "autotag"
"""``source`` of every event autotag publishes, and of the ``Tag Image Requested`` events it consumes."""
TAG_IMAGE_REQUESTED = "Tag Image Requested"
IMAGE_TAGGED = "Image Tagged"
IMAGE_TAGGING_FAILED = "Image Tagging Failed"
IMAGE_TAGS_CORRECTED = "Image Tags Corrected"
OUTCOME_DETAIL_TYPES = (IMAGE_TAGGED, IMAGE_TAGGING_FAILED, IMAGE_TAGS_CORRECTED)
"""What autotag publishes on its bus after each image."""
S3_EVENT_SOURCE = "aws.s3"
OBJECT_CREATED = "Object Created"
"""The S3 events (on the default bus) on_event consumes in ``eventbridge`` notification mode."""

MAX_EVENT_TAGS = 100
"""Tags carried in one event (EventBridge entries are limited to 256 KB); the rest are in the store."""
SCHEMA_VERSION: Literal["1"] = "1"

logger = Logger(service="autotag", child=True)


class _Detail(BaseModel):
    # Built on first use: a function builds the details it publishes (on_upload rarely the failure
    # detail, never the correction one), not all of them at cold start.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class EventTag(_Detail):
    name: str
    confidence: float | None = Field(ge=0.0, le=1.0, description="0..1; null when the provider gives none")
    provider: str = Field(description="The provider whose confidence this is")
    providers: list[str] = Field(description="Every provider that produced this tag")
    kind: TagKind


class EventProviderStatus(_Detail):
    provider: str
    status: Literal["ok", "failed", "skipped"]
    latency_ms: float | None = None
    tag_count: int = 0
    error_code: str | None = None


class EventDroppedTag(_Detail):
    key: str
    value: str
    reason: Literal["tag_limit", "user_tag"] = Field(
        description="tag_limit: the user's tags left no free slot (S3 allows 10 per object); "
        "user_tag: the object has a tag with this key autotag did not write, kept as it is"
    )


class EventClassification(_Detail):
    label: str
    confidence: float | None = None
    provider: str


class ImageRef(_Detail):
    bucket: str
    key: str = Field(description="The object key, decoded (not URL-encoded)")
    version_id: str | None = Field(default=None, description="null for unversioned buckets")
    etag: str | None = None

    @staticmethod
    def fields_of(record: ImageRecord) -> dict[str, Any]:
        """The object reference of ``record``, as every detail about it starts."""
        return {**record.ref(), "etag": record.etag}


class ImageTaggedDetail(ImageRef):
    """An image was tagged and stored."""

    detail_type: ClassVar[str] = IMAGE_TAGGED

    schema_version: Literal["1"] = SCHEMA_VERSION
    sha256: str | None = None
    size: int | None = None
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    tags: list[EventTag] = Field(
        description=f"The tags in force (people's corrections applied), best first, at most {MAX_EVENT_TAGS}"
    )
    tag_count: int = Field(description="All tags in force for the image (tags may carry fewer)")
    title: str | None = None
    description: str | None = None
    classification: EventClassification | None = None
    providers: list[EventProviderStatus]
    cached: bool = Field(description="The result came from the content-hash cache (no provider call)")
    s3_tags_written: list[str] = Field(description="Object tag keys autotag wrote on the object")
    s3_tags_removed: list[str] = Field(
        default_factory=list,
        description="Object tag keys autotag had written before and removed now (never a user's tag)",
    )
    s3_tags_dropped: list[EventDroppedTag] = Field(
        default_factory=list, description="Object tags autotag did not write, and why"
    )
    s3_tags_note: str | None = Field(default=None, description="Why fewer or no object tags were written")
    tagged_at: datetime

    @classmethod
    def from_record(cls, record: ImageRecord) -> ImageTaggedDetail:
        return cls(
            **ImageRef.fields_of(record),
            sha256=record.sha256,
            size=record.size,
            content_type=record.content_type,
            width=record.width,
            height=record.height,
            tags=_event_tags(record.tags_in_force),
            tag_count=len(record.tags_in_force),
            title=record.title,
            description=record.description,
            classification=None
            if record.classification is None
            else EventClassification(
                label=record.classification.label,
                confidence=record.classification.confidence,
                provider=record.classification.provider,
            ),
            providers=_providers(record),
            cached=record.cached,
            s3_tags_written=sorted(record.s3_tags.written) if record.s3_tags else [],
            s3_tags_removed=list(record.s3_tags.removed) if record.s3_tags else [],
            s3_tags_dropped=[
                EventDroppedTag(key=d.key, value=d.value, reason=d.reason.value)
                for d in (record.s3_tags.dropped if record.s3_tags else ())
            ],
            s3_tags_note=record.s3_tags.reason if record.s3_tags else None,
            tagged_at=record.updated_at,
        )


class ImageTaggingFailedDetail(ImageRef):
    """An image cannot be tagged (a terminal failure); the source message went to the DLQ."""

    detail_type: ClassVar[str] = IMAGE_TAGGING_FAILED

    schema_version: Literal["1"] = SCHEMA_VERSION
    error_code: str = Field(description="Stable error code, e.g. corrupt_image, content_blocked, auth")
    reason: str = Field(description="Human-readable reason (never contains secrets)")
    retryable: bool = Field(default=False, description="Whether a later redrive may succeed as is")
    providers: list[EventProviderStatus]
    failed_at: datetime

    @classmethod
    def from_record(cls, record: ImageRecord, *, retryable: bool = False) -> ImageTaggingFailedDetail:
        return cls(
            **ImageRef.fields_of(record),
            error_code=record.error_code or "internal_error",
            reason=record.error or "unknown",
            retryable=retryable,
            providers=_providers(record),
            failed_at=record.updated_at,
        )


class ImageTagsCorrectedDetail(ImageRef):
    """People added or removed tags on an image (PATCH /v1/images/{bucket}/{key}/tags)."""

    detail_type: ClassVar[str] = IMAGE_TAGS_CORRECTED

    schema_version: Literal["1"] = SCHEMA_VERSION
    sha256: str | None = None
    added: list[str] = Field(description="Tags this correction added")
    removed: list[str] = Field(description="Tags this correction removed")
    corrected_by: str = Field(
        description="Who: apikey:<API key id>, or principal:<IAM or authorizer principal>"
    )
    corrections_version: int = Field(description="Counts the image's corrections; the latest wins")
    tags: list[EventTag] = Field(
        description=f"The tags in force after the correction (people's first), at most {MAX_EVENT_TAGS}"
    )
    tag_count: int
    s3_tags_written: list[str] = Field(description="Object tag keys autotag wrote on the object")
    s3_tags_note: str | None = Field(default=None, description="Why fewer or no object tags were written")
    corrected_at: datetime

    @classmethod
    def of_correction(
        cls,
        record: ImageRecord,
        *,
        added: list[str],
        removed: list[str],
        corrected_by: str,
        corrected_at: datetime,
        s3_tags: S3TagWrite,
    ) -> ImageTagsCorrectedDetail:
        in_force = record.tags_in_force
        return cls(
            **ImageRef.fields_of(record),
            sha256=record.sha256,
            added=added,
            removed=removed,
            corrected_by=corrected_by,
            corrections_version=record.corrections.version if record.corrections else 0,
            tags=_event_tags(in_force),
            tag_count=len(in_force),
            s3_tags_written=sorted(s3_tags.written),
            s3_tags_note=s3_tags.reason,
            corrected_at=corrected_at,
        )


EventDetail = ImageTaggedDetail | ImageTaggingFailedDetail | ImageTagsCorrectedDetail


def _event_tags(tags: tuple[Tag, ...]) -> list[EventTag]:
    return [
        EventTag(
            name=t.name, confidence=t.confidence, provider=t.provider, providers=list(t.sources), kind=t.kind
        )
        for t in tags[:MAX_EVENT_TAGS]
    ]


def _providers(record: ImageRecord) -> list[EventProviderStatus]:
    return [
        EventProviderStatus(
            provider=p.provider,
            status=p.status.value,
            latency_ms=p.latency_ms,
            tag_count=p.tag_count,
            error_code=p.error_code,
        )
        for p in record.providers
    ]


def object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


class EventPublisher(Protocol):
    def publish(self, detail: EventDetail) -> None: ...


MAX_ENTRIES_PER_PUT = 10
"""PutEvents takes at most 10 entries per request."""
MAX_PUT_BYTES = 256 * 1024
"""...and at most 256 KB of entries per request (each entry's size as EventBridge computes it)."""
_PUT_ATTEMPTS = 3


def entry_size(entry: dict[str, Any]) -> int:
    """An entry's size as EventBridge counts it: Source, DetailType, Detail and Resources in UTF-8,
    plus 14 bytes for the time (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html)."""
    size = 14
    for name in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(name, "")).encode())
    return size + sum(len(r.encode()) for r in entry.get("Resources", []))


def put_chunks(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Entries grouped into PutEvents requests: at most 10 and 256 KB each, in order."""
    chunks: list[list[dict[str, Any]]] = []
    size = 0
    for entry in entries:
        grow = entry_size(entry)
        if not chunks or len(chunks[-1]) >= MAX_ENTRIES_PER_PUT or size + grow > MAX_PUT_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += grow
    return chunks


class EventBridgePublisher:
    """Puts outcome events on a bus (`client` is a boto3 EventBridge client)."""

    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def _entry(self, detail: EventDetail) -> dict[str, Any]:
        return {
            "Source": EVENT_SOURCE,
            "DetailType": detail.detail_type,
            "Detail": detail.model_dump_json(),
            "EventBusName": self._bus,
            "Resources": [object_arn(detail.bucket, detail.key)],
        }

    def publish(self, detail: EventDetail) -> None:
        self.publish_many([detail])

    def publish_many(self, details: list[EventDetail]) -> None:
        """Every event, in as few PutEvents requests as EventBridge allows; entries it did not accept
        are sent again (twice more), then :class:`TransientError`."""
        for chunk in put_chunks([self._entry(d) for d in details]):
            pending = chunk
            for attempt in range(_PUT_ATTEMPTS):
                response = self._client.put_events(Entries=pending)
                if not response.get("FailedEntryCount", 0):
                    break
                results = response.get("Entries", [])
                failed = [(e, r) for e, r in zip(pending, results, strict=False) if r.get("ErrorCode")]
                if attempt == _PUT_ATTEMPTS - 1 or not failed:
                    entry, failure = failed[0] if failed else (pending[0], results[0] if results else {})
                    raise TransientError(
                        f"EventBridge did not accept the {entry['DetailType']!r} event: "
                        f"{failure.get('ErrorCode')}: {failure.get('ErrorMessage')}",
                        code="event_publish_failed",
                    )
                pending = [e for e, _ in failed]


class BatchingPublisher:
    """An EventPublisher that, inside :meth:`collect`, holds events back and sends them together
    when the block ends (an SQS batch's outcomes in one PutEvents per 10); outside it, publishes at
    once. Every event is still published after its record is stored."""

    def __init__(self, inner: EventBridgePublisher) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._depth = 0
        self._pending: list[EventDetail] = []

    def publish(self, detail: EventDetail) -> None:
        with self._lock:
            if self._depth:
                self._pending.append(detail)
                return
        self._inner.publish(detail)

    @contextmanager
    def collect(self) -> Iterator[Outbox]:
        outbox = Outbox()
        with self._lock:
            self._depth += 1
        try:
            yield outbox
        finally:
            with self._lock:
                self._depth -= 1
                pending, self._pending = (self._pending, []) if not self._depth else ([], self._pending)
            if pending:
                try:
                    self._inner.publish_many(pending)
                except (TransientError, ClientError, BotoCoreError) as error:
                    # The records are stored: sending the batch back would only find duplicates,
                    # which publish nothing. The loss is reported (log, metric), not retried.
                    outbox.unpublished = len(pending)
                    logger.error(
                        "outcome events not published", extra={"events": len(pending), "error": str(error)}
                    )


@dataclass
class Outbox:
    """What a :meth:`BatchingPublisher.collect` block could not publish (set when it ends)."""

    unpublished: int = 0


@contextmanager
def collecting(publisher: EventPublisher) -> Iterator[Outbox]:
    """Hold `publisher`'s events back until the block ends, if it can (else they go as they come)."""
    if isinstance(publisher, BatchingPublisher):
        with publisher.collect() as outbox:
            yield outbox
    else:
        yield Outbox()


# --- JSON Schemas ----------------------------------------------------------------------------

DetailModel = type[ImageTaggedDetail] | type[ImageTaggingFailedDetail] | type[ImageTagsCorrectedDetail]
SCHEMA_FILES: dict[str, DetailModel] = {
    "image_tagged.schema.json": ImageTaggedDetail,
    "image_tagging_failed.schema.json": ImageTaggingFailedDetail,
    "image_tags_corrected.schema.json": ImageTagsCorrectedDetail,
}


def detail_schema(model: DetailModel) -> dict[str, Any]:
    schema = model.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:autotag:events:{model.detail_type.lower().replace(' ', '-')}:v{SCHEMA_VERSION}",
        "title": f"{model.detail_type} (source {EVENT_SOURCE}) - event detail",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def render_schema(model: DetailModel) -> str:
    return json.dumps(detail_schema(model), indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMA_FILES.items():
        path = directory / name
        path.write_text(render_schema(model), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "events/schemas")):
        print(written_path)
