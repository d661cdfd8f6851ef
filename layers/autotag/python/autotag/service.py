"""The per-object tagging pipeline shared by every entry point (on_upload, on_event, the API's
store mode): read the S3 object, check it, tag it (or reuse a cached result for the same bytes),
write the object tags, store the record and announce the outcome.

``TaggingService.process_object`` is synchronous and thread-safe: a batch handler runs several
objects at once in threads, while every provider call runs on one background event loop that owns
the shared HTTP client (an ``httpx.AsyncClient`` must stay on the loop it was first used on).
``TaggingService.tag_image`` is the tag step alone (cache, single flight, retry, metrics) for images
that are not stored (the API's inline, URL and S3-without-store sources), on the same loop and
Tagger: one of each per process.

Outcomes of ``process_object``:
- returns the record: ``tagged``, or ``skipped`` (object deleted, or overwritten since the event);
- raises :class:`TerminalProcessingError` (the record is stored as ``failed`` and an
  ``Image Tagging Failed`` event is published first; or, when S3 refuses the reference itself,
  nothing is stored, since it names no object version to record against): retrying cannot help,
  route it to the DLQ;
- raises any other exception (an :class:`~autotag.errors.AutotagError` with ``retryable=True``,
  or an unexpected AWS/client error): try again later (SQS redelivery).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NoReturn, Protocol, TypeVar
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, ValidationError

from autotag.config import AutotagConfig, ObjectFilters, get_config
from autotag.corrections import reconcile_object_tags, tags_in_force
from autotag.errors import (
    AutotagError,
    BadInputError,
    ImageTooLargeError,
    InvalidS3ReferenceError,
    ProviderTimeoutError,
    TransientError,
    UnsupportedFormatError,
)
from autotag.events import EventPublisher, ImageTaggedDetail, ImageTaggingFailedDetail
from autotag.image import S3Location, SourceImage
from autotag.intake import inspect_image
from autotag.models import TagOptions, TagResult
from autotag.objects import ObjectGoneError, ObjectInfo, ObjectStorage
from autotag.observability import record_provider_failures
from autotag.pipeline import AllProvidersFailedError
from autotag.retry import Deadline, RetryPolicy, retry_async
from autotag.s3tags import ObjectTagWriter
from autotag.settings import RuntimeSettings, get_settings
from autotag.store.base import ImageRecord, ImageStatus, ImageStore

logger = Logger(service="autotag", child=True)

T = TypeVar("T")

CACHE_FORMAT = 1
"""Bump to invalidate every cached result (e.g. when the normalized model changes meaning)."""

_GENERIC_CONTENT_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})


# --- Errors ----------------------------------------------------------------------------------


class TerminalProcessingError(AutotagError):
    """The object cannot be tagged as it is. Already recorded as failed and announced (``record``),
    unless S3 refused the reference itself (``record`` is None: recording a failure under the
    object's key would overwrite the record of a version that exists); the caller sends the source
    message to the DLQ and reports it processed."""

    retryable = False

    def __init__(self, record: ImageRecord | None, cause: AutotagError) -> None:
        super().__init__((record.error if record else None) or str(cause), code=cause.code)
        self.record = record
        self.cause = cause


# --- Provider engine -------------------------------------------------------------------------


class TagEngine(Protocol):
    """What the service needs from :class:`autotag.pipeline.Tagger` (a fake in unit tests)."""

    async def tag(
        self,
        image: SourceImage,
        options: TagOptions | None = None,
        *,
        deadline: Deadline,
        s3: S3Location | None = None,
        require_success: bool = True,
    ) -> TagResult: ...


class BackgroundLoop:
    """One event loop on a daemon thread, for running coroutines from synchronous threads."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="autotag-io", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        loop = self._ensure()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("BackgroundLoop.run called from its own loop; await the coroutine instead")
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ProviderTimeoutError(
                "tagging did not finish before the deadline", code="deadline"
            ) from None

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()


# --- The content-hash cache key --------------------------------------------------------------


def provider_fingerprint(config: AutotagConfig, options: TagOptions) -> str:
    """What, besides the bytes, decides a result: the selected providers' tagging settings, the
    default language and the request options (not timeouts, secrets or prices)."""
    keys = options.providers or list(config.default_provider_keys)
    providers: list[object] = []
    for key in dict.fromkeys(keys):
        provider = config.provider(key)
        providers.append(
            key
            if provider is None
            else provider.model_dump(
                mode="json",
                include={"name", "id", "endpoint", "min_confidence", "max_tags", "lang", "options"},
            )
        )
    material = {
        "format": CACHE_FORMAT,
        "providers": providers,
        "lang": config.lang,
        "options": options.fingerprint(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cache_key(sha256: str, fingerprint: str) -> str:
    return hashlib.sha256(f"{sha256}:{fingerprint}".encode()).hexdigest()


# --- S3 event notifications ------------------------------------------------------------------


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class _S3Bucket(_Lenient):
    name: str


class _S3Object(_Lenient):
    key: str
    size: int | None = None
    eTag: str | None = None
    versionId: str | None = None
    sequencer: str | None = None


class _S3Entity(_Lenient):
    bucket: _S3Bucket
    object: _S3Object


class _S3Record(_Lenient):
    eventName: str
    s3: _S3Entity


class _S3Notification(_Lenient):
    # Lenient on purpose (Powertools' S3Model requires every field S3 sends, which the emulator and
    # other emitters of the same shape omit); only what tagging needs is required.
    Records: list[_S3Record]


@dataclass(frozen=True)
class ObjectCreated:
    """One S3 ObjectCreated notification record, key decoded."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    event_name: str
    raw: dict[str, Any] = field(compare=False, repr=False)

    @property
    def location(self) -> S3Location:
        return S3Location(self.bucket, self.key, self.version_id)

    @property
    def idempotency_ref(self) -> dict[str, str]:
        """What identifies this object version: versionId, else the ETag (unversioned buckets)."""
        return {"bucket": self.bucket, "key": self.key, "version": self.version_id or f"etag:{self.etag}"}


@dataclass(frozen=True)
class ParsedNotification:
    objects: list[ObjectCreated]
    ignored: list[tuple[str, str]]
    """(s3 uri or event name, why) for records that are not tagged."""
    test_event: bool = False


def parse_s3_notification(body: str | dict[str, Any], filters: ObjectFilters) -> ParsedNotification:
    """An S3 event notification (an SQS message body) → the objects to tag.

    ``s3:TestEvent`` and non-ObjectCreated records are ignored, as are keys the filters exclude.
    Anything that is not an S3 notification is a :class:`BadInputError` (code ``invalid_event``).
    """
    try:
        data = json.loads(body) if isinstance(body, str) else body
    except ValueError:
        raise BadInputError("message body is not JSON", code="invalid_event") from None
    if isinstance(data, dict) and data.get("Event") == "s3:TestEvent":
        return ParsedNotification(objects=[], ignored=[("s3:TestEvent", "test event")], test_event=True)
    try:
        notification = _S3Notification.model_validate(data)
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise BadInputError(
            f"message is not an S3 event notification ({problem})", code="invalid_event"
        ) from None
    raws = data["Records"]
    objects: list[ObjectCreated] = []
    ignored: list[tuple[str, str]] = []
    for record, raw in zip(notification.Records, raws, strict=True):
        bucket = record.s3.bucket.name
        key = unquote_plus(record.s3.object.key)
        if not record.eventName.startswith("ObjectCreated:"):
            ignored.append((f"s3://{bucket}/{key}", f"event {record.eventName} is not ObjectCreated"))
            continue
        if not filters.accepts(key):
            ignored.append((f"s3://{bucket}/{key}", "excluded by the object filters"))
            continue
        objects.append(
            ObjectCreated(
                bucket=bucket,
                key=key,
                version_id=record.s3.object.versionId or None,
                etag=record.s3.object.eTag or None,
                size=record.s3.object.size,
                event_name=record.eventName,
                raw=raw,
            )
        )
    return ParsedNotification(objects=objects, ignored=ignored)


# --- The service -----------------------------------------------------------------------------


class TaggingService:
    def __init__(
        self,
        *,
        config: AutotagConfig,
        tagger: TagEngine,
        store: ImageStore,
        objects: ObjectStorage,
        publisher: EventPublisher,
        loop: BackgroundLoop | None = None,
        retry_policy: RetryPolicy | None = None,
        on_close: list[Callable[[], Awaitable[None]]] | None = None,
    ) -> None:
        self.config = config
        self.tagger = tagger
        self.store = store
        self.objects = objects
        self.publisher = publisher
        self._tag_writer = ObjectTagWriter(objects)
        self._loop = loop or BackgroundLoop()
        # Providers retry their own HTTP calls; this covers the whole tag step once more, within the
        # deadline, before the record goes back to SQS.
        self._retry = retry_policy or RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=4.0)
        self._on_close = on_close or []
        self._inflight: dict[str, concurrent.futures.Future[TagResult]] = {}
        self._inflight_lock = threading.Lock()

    def process_object(
        self,
        location: S3Location,
        *,
        options: TagOptions | None = None,
        deadline: Deadline,
        etag: str | None = None,
    ) -> ImageRecord:
        """Tag one S3 object end to end; see the module docstring for outcomes and errors.

        ``etag`` is the ETag the trigger saw (unversioned buckets): if the object has been
        overwritten since, the newer object's own notification covers it and this one is skipped.
        """
        options = options or TagOptions()
        if deadline.expired:
            raise TransientError("no time left to process the object", code="deadline")
        try:
            info = self.objects.head(location)
        except InvalidS3ReferenceError as error:
            self._refused(location, error)
        if info is None:
            return self._skip(location, etag, "object no longer exists", store=True)
        if etag and info.etag and etag != info.etag and not location.version_id:
            return self._skip(location, etag, "object was overwritten after this event", store=False)
        location = S3Location(location.bucket, location.key, location.version_id or info.version_id)
        base = {
            "bucket": location.bucket,
            "key": location.key,
            "version_id": location.version_id,
            "etag": info.etag,
            "size": info.size,
            "content_type": info.content_type,
        }
        image: SourceImage | None = None
        try:
            self._check_object(info)
            data = self.objects.read(location, etag=info.etag, max_bytes=self.config.limits.max_bytes)
            image = inspect_image(data, limits=self.config.limits)
            result, cached = self._tag(image, options, deadline, s3=location)
        except ObjectGoneError:
            return self._skip(location, etag, "object no longer exists", store=True)
        except InvalidS3ReferenceError as error:
            self._refused(location, error)
        except AutotagError as error:
            if error.retryable:
                raise
            self._fail(base, error, image)
        width, height = image.upright_size
        # People's corrections win over the provider output, on the object and in the index.
        in_force, corrections = tags_in_force(self.store, location, result.tags, image.sha256)
        s3_tags = self._tag_writer.apply(location, in_force, self.config.s3_tags)
        record = ImageRecord.from_result(
            result,
            **base,
            status=ImageStatus.TAGGED,
            sha256=image.sha256,
            width=width,
            height=height,
            s3_tags=s3_tags,
            cached=cached,
            corrections=corrections,
        )
        self.store.put(record)
        # A correction may have landed between the read above and the put: converge on the stored view.
        reconcile_object_tags(
            self.store, self._tag_writer, location, self.config.s3_tags, record, last_write=s3_tags
        )
        self.publisher.publish(ImageTaggedDetail.from_record(record))
        logger.info(
            "image tagged",
            extra={
                "s3_uri": location.uri,
                "tag_count": len(record.tags),
                "cached": cached,
                "s3_tags_written": len(s3_tags.written),
            },
        )
        return record

    def _check_object(self, info: ObjectInfo) -> None:
        limit = self.config.limits.max_bytes
        if info.size > limit:
            raise ImageTooLargeError(f"object is {info.size} bytes; the limit is {limit} bytes")
        if info.size == 0:
            raise UnsupportedFormatError("object is empty (0 bytes)", code="empty_image")
        content_type = (info.content_type or "").split(";")[0].strip().lower()
        if content_type not in _GENERIC_CONTENT_TYPES and not content_type.startswith("image/"):
            raise UnsupportedFormatError(f"object content type {content_type!r} is not an image")

    def tag_image(
        self,
        image: SourceImage,
        options: TagOptions | None = None,
        *,
        deadline: Deadline,
        s3: S3Location | None = None,
        retry: RetryPolicy | None = None,
    ) -> TagResult:
        """Tag an image already in hand (the API's inline, URL and unstored S3 sources): the same
        content-hash cache, single flight, retry and ``ProviderFailures`` metric as
        :meth:`process_object`, but nothing is stored, written to S3 or announced.

        ``s3`` is where the bytes came from, if anywhere (providers that read S3 themselves use it).
        ``retry`` replaces the service's whole-step retry policy for this call (a caller with a
        client waiting may prefer to hand a long Retry-After back rather than sleep through it).
        Raises the provider errors as they are (:class:`~autotag.pipeline.AllProvidersFailedError`,
        :class:`~autotag.errors.ProviderTimeoutError` on the deadline, ...).
        """
        result, _cached = self._tag(image, options or TagOptions(), deadline, s3=s3, retry=retry)
        return result

    def _tag(
        self,
        image: SourceImage,
        options: TagOptions,
        deadline: Deadline,
        *,
        s3: S3Location | None,
        retry: RetryPolicy | None = None,
    ) -> tuple[TagResult, bool]:
        """The result for these bytes and options, and whether it came from the cache."""
        if not self.config.cache.enabled:
            return self._call_providers(image, options, deadline, s3, retry), False
        key = cache_key(image.sha256, provider_fingerprint(self.config, options))
        cached = self.store.cached_result(key)
        if cached is not None:
            return cached, True
        # Single flight: identical bytes arriving together (copies in one batch) make one call.
        with self._inflight_lock:
            leader = self._inflight.get(key)
            if leader is None:
                mine: concurrent.futures.Future[TagResult] = concurrent.futures.Future()
                self._inflight[key] = mine
        if leader is not None:
            try:
                return leader.result(timeout=deadline.remaining()), True
            except concurrent.futures.TimeoutError:
                raise ProviderTimeoutError(
                    "tagging did not finish before the deadline", code="deadline"
                ) from None
        try:
            result = self._call_providers(image, options, deadline, s3, retry)
            if not result.failed:
                ttl = int(self.config.cache.ttl_days * 86400)
                self.store.cache_result(key, result, ttl_seconds=ttl)
            mine.set_result(result)
            return result, False
        except BaseException as error:
            mine.set_exception(error)
            raise
        finally:
            with self._inflight_lock:
                self._inflight.pop(key, None)

    def _call_providers(
        self,
        image: SourceImage,
        options: TagOptions,
        deadline: Deadline,
        s3: S3Location | None,
        retry: RetryPolicy | None,
    ) -> TagResult:
        async def attempt() -> TagResult:
            try:
                result = await self.tagger.tag(image, options, deadline=deadline, s3=s3)
            except AllProvidersFailedError as error:
                record_provider_failures(error.result)
                raise
            record_provider_failures(result)
            return result

        def on_retry(error: AutotagError, attempt_no: int, delay: float) -> None:
            logger.info(
                "tagging failed transiently; retrying",
                extra={
                    "s3_uri": s3.uri if s3 else None,
                    "sha256": image.sha256,
                    "error_code": error.code,
                    "attempt": attempt_no,
                    "delay": delay,
                },
            )

        coro = retry_async(attempt, policy=retry or self._retry, deadline=deadline, on_retry=on_retry)
        # A little beyond the deadline: providers stop at it themselves; this only guards a hang.
        return self._loop.run(coro, timeout=deadline.remaining() + 2.0)

    def _skip(self, location: S3Location, etag: str | None, reason: str, *, store: bool) -> ImageRecord:
        record = ImageRecord(
            bucket=location.bucket,
            key=location.key,
            version_id=location.version_id,
            etag=etag,
            status=ImageStatus.SKIPPED,
            error=reason,
        )
        if store:
            self.store.put(record)
        logger.info("object skipped", extra={"s3_uri": location.uri, "reason": reason})
        return record

    def _refused(self, location: S3Location, error: InvalidS3ReferenceError) -> NoReturn:
        logger.warning(
            "S3 refused the object reference",
            extra={"s3_uri": location.uri, "version_id": location.version_id, "reason": str(error)},
        )
        raise TerminalProcessingError(None, error) from error

    def _fail(self, base: dict[str, Any], error: AutotagError, image: SourceImage | None) -> NoReturn:
        providers = getattr(error, "result", None)
        record = ImageRecord(
            **base,
            status=ImageStatus.FAILED,
            sha256=image.sha256 if image else None,
            width=image.upright_size[0] if image else None,
            height=image.upright_size[1] if image else None,
            providers=providers.providers if isinstance(providers, TagResult) else (),
            error_code=error.code,
            error=str(error),
        )
        self.store.put(record)
        self.publisher.publish(ImageTaggingFailedDetail.from_record(record))
        logger.warning(
            "image cannot be tagged",
            extra={
                "s3_uri": f"s3://{record.bucket}/{record.key}",
                "error_code": error.code,
                "reason": str(error),
            },
        )
        raise TerminalProcessingError(record, error) from error

    def close(self) -> None:
        """Release the providers' resources (HTTP client) and stop the background loop."""
        for closer in self._on_close:
            try:
                self._loop.run(_awaited(closer), timeout=5)
            except Exception:
                logger.debug("error while closing", exc_info=True)
        self._on_close = []
        self._loop.close()


async def _awaited(call: Callable[[], Awaitable[None]]) -> None:
    await call()


# --- Wiring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsClients:
    """boto3 clients for the function's resources, created on first use (never at import)."""

    settings: RuntimeSettings
    max_pool_connections: int = 20
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._cache:
                import boto3
                from botocore.config import Config

                self._cache[service] = boto3.session.Session().client(
                    service,
                    endpoint_url=self.settings.aws_endpoint_url,
                    config=Config(
                        retries={"mode": "standard", "max_attempts": 5},
                        max_pool_connections=self.max_pool_connections,
                    ),
                )
            return self._cache[service]


@lru_cache(maxsize=1)
def aws_clients() -> AwsClients:
    config = get_config()
    return AwsClients(get_settings(), max_pool_connections=max(20, config.processing.concurrency * 3))


@lru_cache(maxsize=1)
def build_service() -> TaggingService:
    """The process-wide service wired to AWS from the function's settings and config (cached;
    ``reset_service()`` drops it)."""
    from autotag.credentials import Credentials
    from autotag.events import EventBridgePublisher
    from autotag.objects import S3ObjectStorage
    from autotag.pipeline import Tagger
    from autotag.providers.base import ProviderContext
    from autotag.providers.http import make_client
    from autotag.store.dynamodb import DynamoImageStore

    config, settings, clients = get_config(), get_settings(), aws_clients()
    s3 = clients.client("s3")

    def presign(location: S3Location, seconds: int) -> str:
        params = {"Bucket": location.bucket, "Key": location.key}
        if location.version_id:
            params["VersionId"] = location.version_id
        return str(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds))

    http = make_client()
    context = ProviderContext(
        http=http, credentials=Credentials(), presign=presign, aws_endpoint_url=settings.aws_endpoint_url
    )
    return TaggingService(
        config=config,
        tagger=Tagger(config, context),
        store=DynamoImageStore(clients.client("dynamodb"), settings.table_name),
        objects=S3ObjectStorage(s3),
        publisher=EventBridgePublisher(clients.client("events"), settings.event_bus_name),
        on_close=[http.aclose],
    )


def reset_service() -> None:
    """Forget the cached service, clients, config and settings (tests; config changes)."""
    if build_service.cache_info().currsize:
        build_service().close()
    build_service.cache_clear()
    aws_clients.cache_clear()
    get_config.cache_clear()
    get_settings.cache_clear()
