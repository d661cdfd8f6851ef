"""The event-bus subscriber (``on_event``): ``Tag Image Requested`` events (source ``autotag``) and
S3 ``Object Created`` events delivered by EventBridge (source ``aws.s3``) run the same per-object
pipeline as an upload (:class:`autotag.tagging.TaggingService`).

Failure handling (see docs/api.md, "Event bus"):
- malformed events, disallowed buckets and terminal image failures are sent to the function's DLQ
  (``DLQ_URL``) with the reason as message attributes, and the invocation succeeds: retrying
  cannot help, and a Lambda retry would only repeat the failure;
- transient failures raise, so Lambda's asynchronous retries run, and after them the function's
  on-failure DLQ (set by the stack) keeps the event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    EventBridgeModel,
    S3EventNotificationEventBridgeModel,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError
from pydantic_core import PydanticCustomError

from autotag.config import ObjectFilters
from autotag.dlq import DeadLetter, DeadLetterQueue
from autotag.errors import (
    AutotagError,
    BadInputError,
    BucketNotAllowedError,
    InvalidEventError,
    InvalidS3ReferenceError,
    ObjectNotFoundError,
    TerminalProcessingError,
    UnknownProviderError,
)
from autotag.events import EVENT_SOURCE, OBJECT_CREATED, S3_EVENT_SOURCE, TAG_IMAGE_REQUESTED
from autotag.image import S3_BUCKET_PATTERN, S3Location
from autotag.models import TagOptions
from autotag.notifications import EVENT_REF_JMESPATH, event_ref
from autotag.ordering import EventOrder, normalize_sequencer
from autotag.retry import Deadline
from autotag.tagging import TaggingService

logger = Logger(service="autotag", child=True)

REQUEST_IDEMPOTENCY_KEY_PREFIX = "autotag.on_event.request"


# --- Event models --------------------------------------------------------------------------------


class TagImageRequestedDetail(BaseModel):
    """``detail`` of a ``Tag Image Requested`` event (events/schemas/tag_image_requested.schema.json)."""

    model_config = ConfigDict(extra="forbid", title="TagImageRequested")

    bucket: str = Field(pattern=S3_BUCKET_PATTERN, description="A bucket the deployment allows")
    key: str = Field(min_length=1, max_length=1024, description="The object key, not URL-encoded")
    version_id: str | None = Field(default=None, min_length=1, max_length=1024)
    options: TagOptions = Field(default_factory=TagOptions, description="Same options as POST /v1/tags")


def _exactly(name: str) -> AfterValidator:
    """A string field that accepts one value: an event name defined in :mod:`autotag.events`."""

    def check(value: str) -> str:
        if value != name:
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": repr(name)})
        return value

    return AfterValidator(check)


class TagImageRequestedEvent(EventBridgeModel):
    source: Annotated[str, _exactly(EVENT_SOURCE)]
    detail_type: Annotated[str, _exactly(TAG_IMAGE_REQUESTED)] = Field(alias="detail-type")
    detail: TagImageRequestedDetail


class S3ObjectCreatedEvent(S3EventNotificationEventBridgeModel):
    source: Annotated[str, _exactly(S3_EVENT_SOURCE)]
    detail_type: Annotated[str, _exactly(OBJECT_CREATED)] = Field(alias="detail-type")


def _source_of(event: object) -> object:
    return event.get("source") if isinstance(event, dict) else getattr(event, "source", None)


BusEvent = Annotated[
    Annotated[TagImageRequestedEvent, Tag(EVENT_SOURCE)]
    | Annotated[S3ObjectCreatedEvent, Tag(S3_EVENT_SOURCE)],
    Discriminator(
        _source_of,
        custom_error_type="invalid_event_source",
        custom_error_message=f"source should be {EVENT_SOURCE!r} or {S3_EVENT_SOURCE!r}",
    ),
]
"""Told apart by ``source`` (the union's tags); an unknown source names the accepted ones."""


@dataclass(frozen=True)
class Request:
    """What to tag, whichever event asked."""

    location: S3Location
    options: TagOptions
    etag: str | None
    kind: Literal["tag_image_requested", "s3_object_created"]
    sequencer: str | None = None


@dataclass(frozen=True)
class Outcome:
    status: str
    """tagged, skipped, failed, ignored (filtered out) or dead_lettered"""
    bucket: str | None = None
    key: str | None = None
    error_code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def parse_bus_event(event: object) -> BusEvent:
    """The event as one of the accepted models, or :class:`InvalidEventError` with the reason."""
    if not isinstance(event, dict):
        raise InvalidEventError("event is not a JSON object")
    try:
        parsed: BusEvent = parse(event=event, model=BusEvent)  # type: ignore[call-overload]
        return parsed
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(event)'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidEventError(
            f"not a Tag Image Requested or S3 Object Created event ({problems})"
        ) from None


def to_request(event: BusEvent) -> Request:
    if isinstance(event, TagImageRequestedEvent):
        detail = event.detail
        return Request(
            location=S3Location(detail.bucket, detail.key, detail.version_id),
            options=detail.options,
            etag=None,
            kind="tag_image_requested",
        )
    obj = event.detail.object
    return Request(
        location=S3Location(event.detail.bucket.name, obj.key, obj.version_id or None),
        options=TagOptions(),
        etag=(obj.etag or None),
        kind="s3_object_created",
        sequencer=obj.sequencer or None,
    )


# --- The subscriber -------------------------------------------------------------------------------


class BusSubscriber:
    """Handles one bus event at a time (EventBridge invokes the function asynchronously, per event).

    Duplicates: an S3 Object Created event is ordered by its ``sequencer`` against the image record,
    exactly as ``on_upload`` orders S3 notifications (:mod:`autotag.ordering`), so an object
    announced both by an S3 notification and by EventBridge is tagged once. A Tag Image Requested
    event is keyed on its event id (Powertools idempotency), so a redelivered event is not run twice
    while a new request re-tags the object. A request naming an unknown provider, or an object or
    version that does not exist, goes to the DLQ with its reason and leaves the record as it is.
    """

    def __init__(
        self,
        *,
        service: TaggingService,
        dead_letters: DeadLetterQueue,
        allowed_buckets: tuple[str, ...],
        filters: ObjectFilters,
        persistence: BasePersistenceLayer | None = None,
        idempotency_ttl_seconds: int = 3600,
    ) -> None:
        self.service = service
        self.dead_letters = dead_letters
        self.allowed_buckets = allowed_buckets
        self.filters = filters
        self._idempotency = IdempotencyConfig(
            event_key_jmespath=EVENT_REF_JMESPATH,
            raise_on_no_idempotency_key=True,
            expires_after_seconds=idempotency_ttl_seconds,
        )
        self._request_once: Callable[..., dict[str, Any]] = (
            idempotent_function(
                self._process,
                data_keyword_argument="ref",
                persistence_store=persistence,
                config=self._idempotency,
                key_prefix=REQUEST_IDEMPOTENCY_KEY_PREFIX,
            )
            if persistence is not None
            else self._process
        )

    def handle(self, event: object, *, deadline: Deadline, context: LambdaContext | None = None) -> Outcome:
        if context is not None:
            self._idempotency.register_lambda_context(context)
        try:
            parsed = parse_bus_event(event)
            request = to_request(parsed)
            self._check(request)
        except BadInputError as error:
            return self._dead_letter(event, error, None)
        if request.kind == "s3_object_created" and not self.filters.accepts(request.location.key):
            logger.info("object excluded by the filters", extra={"s3_uri": request.location.uri})
            return Outcome("ignored", request.location.bucket, request.location.key)
        try:
            location = self._existing_key(request.location)
        except InvalidS3ReferenceError as error:
            return self._dead_letter(event, error, request.location)
        process = self._process
        if request.kind == "tag_image_requested":
            process = self._request_once
        ref = event_ref(location.bucket, location.key, f"event:{parsed.id}")
        result = process(ref=ref, event=event, request=request, location=location, deadline=deadline)
        # A duplicate gets the stored outcome back; for objects that may be on_upload's (same key).
        return Outcome(
            status=str(result.get("status", "tagged")),
            bucket=location.bucket,
            key=location.key,
            error_code=result.get("error_code"),
        )

    # Inside the idempotency wrapper: the returned dict is what a duplicate gets back.
    def _process(
        self,
        *,
        ref: dict[str, str],
        event: object,
        request: Request,
        location: S3Location,
        deadline: Deadline,
    ) -> dict[str, Any]:
        order = EventOrder(sequencer=request.sequencer) if request.kind == "s3_object_created" else None
        try:
            record = self.service.process_object(
                location, options=request.options, deadline=deadline, etag=request.etag, order=order
            )
        except TerminalProcessingError as error:
            # Stored as failed and announced by the service (unless S3 refused the reference
            # itself); keep the event with the reason.
            return self._dead_letter(event, error.cause, location).as_dict()
        except (UnknownProviderError, ObjectNotFoundError) as error:
            # The request's own error: nothing was stored; the requester learns why from the DLQ.
            return self._dead_letter(event, error, location).as_dict()
        return Outcome(record.status.value, record.bucket, record.key, record.error_code).as_dict()

    def _check(self, request: Request) -> None:
        normalize_sequencer(request.sequencer)  # a malformed one is the event's error
        if request.location.bucket not in self.allowed_buckets:
            raise BucketNotAllowedError(f"bucket {request.location.bucket!r} is not one this deployment tags")

    def _existing_key(self, location: S3Location) -> S3Location:
        """S3 URL-encodes keys in some event shapes: use the decoded key when only it exists."""
        decoded = unquote_plus(location.key)
        if decoded == location.key or self.service.objects.head(location) is not None:
            return location
        candidate = S3Location(location.bucket, decoded, location.version_id)
        return candidate if self.service.objects.head(candidate) is not None else location

    def _dead_letter(self, event: object, error: AutotagError, location: S3Location | None) -> Outcome:
        bucket, key = (location.bucket, location.key) if location else _where(event)
        attributes = {"source_function": "on_event"}
        if bucket:
            attributes["bucket"] = bucket
        if key:
            attributes["key"] = key
        self.dead_letters.send(
            DeadLetter(
                body=json.dumps(event, default=str),
                error_code=error.code,
                reason=str(error),
                attributes=attributes,
            )
        )
        logger.warning(
            "event sent to the DLQ", extra={"error_code": error.code, "reason": str(error), "bucket": bucket}
        )
        return Outcome("dead_lettered", bucket, key, error.code)


def _where(event: object) -> tuple[str | None, str | None]:
    """Best-effort bucket and key of an event that did not parse (for the DLQ attributes)."""
    detail = event.get("detail") if isinstance(event, dict) else None
    if not isinstance(detail, dict):
        return None, None
    bucket, key = detail.get("bucket"), detail.get("key")
    if isinstance(bucket, dict):
        bucket = bucket.get("name")
    obj = detail.get("object")
    if isinstance(obj, dict):
        key = obj.get("key")
    return (bucket if isinstance(bucket, str) else None), (key if isinstance(key, str) else None)


@lru_cache(maxsize=1)
def build_subscriber() -> BusSubscriber:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from autotag.config import get_config
    from autotag.dlq import SqsDeadLetterQueue
    from autotag.errors import ConfigError
    from autotag.settings import get_settings
    from autotag.wiring import aws_clients, build_service

    settings = get_settings()
    if not settings.dlq_url:
        raise ConfigError("DLQ_URL is not set: on_event needs a queue for events it cannot process")
    clients = aws_clients()
    return BusSubscriber(
        service=build_service(),
        dead_letters=SqsDeadLetterQueue(clients.client("sqs"), settings.dlq_url),
        allowed_buckets=settings.allowed_buckets,
        filters=get_config().filters,
        persistence=DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table_name, boto3_client=clients.client("dynamodb")
        ),
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
    )


def reset_subscriber() -> None:
    """Forget the subscriber and the shared service (tests; config changes)."""
    from autotag.wiring import reset_service

    build_subscriber.cache_clear()
    reset_service()


def tag_image_requested_schema() -> dict[str, Any]:
    """The JSON Schema of the ``Tag Image Requested`` detail (events/schemas/)."""
    from autotag.events import EVENT_SOURCE, TAG_IMAGE_REQUESTED

    schema = TagImageRequestedDetail.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:autotag:events:tag-image-requested:v1",
        **schema,
        "description": f"detail of '{TAG_IMAGE_REQUESTED}' events (source '{EVENT_SOURCE}') "
        "on the autotag bus: tag this S3 object as an upload would be tagged.",
    }


if __name__ == "__main__":  # pragma: no cover - writes events/schemas/tag_image_requested.schema.json
    import sys

    print(json.dumps(tag_image_requested_schema(), indent=2))
    sys.exit(0)
