"""The per-object tagging pipeline shared by every entry point (on_upload, on_event, the API's
store mode): read the S3 object, check it, tag it (or reuse a cached result for the same bytes),
write the object tags, store the record and announce the outcome.

``TaggingService.process_object`` is synchronous and thread-safe: a batch handler runs several
objects at once in threads, while every provider call runs on one background event loop that owns
the shared HTTP client (an ``httpx.AsyncClient`` must stay on the loop it was first used on).
``TaggingService.tag_image`` is the tag step alone (cache, single flight, retry, metrics) for images
that are not stored (the API's inline, URL and S3-without-store sources), on the same loop and
Tagger: one of each per process.

Every S3 event is ordered against the image record by S3's ``sequencer`` (:mod:`autotag.ordering`):
one conditional write on the record claims it for the event, or says the event is a duplicate
(the record is returned as it is), stale (older than what the record reflects; nothing is stored) or
busy (another event of the key is in flight: :class:`~autotag.ordering.ObjectBusyError`, retryable).
A request (no sequencer) naming an unknown provider or an object that does not exist is refused
before the record is touched.

Outcomes of ``process_object`` (``handle_event`` also says which disposition applied):
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
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NoReturn, Protocol, TypeVar
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, ValidationError

from autotag.cacheround import RoundLookup
from autotag.config import AutotagConfig, ObjectFilters, get_config
from autotag.corrections import corrections_version, owned_object_tags, reconcile_object_tags
from autotag.decisions import effective_tags
from autotag.errors import (
    AutotagError,
    BadInputError,
    ImageTooLargeError,
    InvalidS3ReferenceError,
    ObjectNotFoundError,
    ProviderTimeoutError,
    TransientError,
    UnsupportedFormatError,
)
from autotag.events import EventPublisher, ImageTaggedDetail, ImageTaggingFailedDetail
from autotag.image import S3Location, SourceImage
from autotag.intake.checks import inspect_image
from autotag.models import TagOptions, TagResult
from autotag.objects import ObjectGoneError, ObjectInfo, ObjectStorage, OpenedObject
from autotag.observability import record_provider_failures
from autotag.ordering import Claim, ClaimLostError, Disposition, EventOrder, Refusal, normalize_sequencer
from autotag.pipeline import AllProvidersFailedError, check_options
from autotag.retry import Deadline, RetryPolicy, retry_async
from autotag.s3tags import ObjectTagWriter
from autotag.settings import RuntimeSettings, get_settings
from autotag.store.base import CacheEntry, ImageRecord, ImageStatus, ImageStore

logger = Logger(service="autotag", child=True)

T = TypeVar("T")

CACHE_FORMAT = 1
"""Bump to invalidate every cached result (e.g. when the normalized model changes meaning)."""

_GENERIC_CONTENT_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
CLAIM_MARGIN_SECONDS = 5.0
"""A claim outlives the processing deadline by this much (then another delivery may take over)."""
BUSY_WAIT_SECONDS = 10.0
"""How long an event waits, at most, for another event of the same key to finish (then it is
retried later: ``object_busy``)."""
BUSY_FIRST_PAUSE_SECONDS = 0.1


@dataclass(frozen=True)
class ObjectOutcome:
    """What one event did: the record it wrote (or the one that already reflected it), and whether
    it was processed, a duplicate, or stale (older than what the record reflects; nothing stored)."""

    record: ImageRecord
    disposition: Disposition


def _describes(record: ImageRecord | None, info: ObjectInfo, location: S3Location) -> bool:
    """Whether `record` is about the object the GET just described (same version and bytes)."""
    return (
        record is not None
        and record.version_id == location.version_id
        and record.etag is not None
        and record.etag == info.etag
    )


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
    sequencer: str | None = None
    """S3's order of this event among the key's events (None from emitters that leave it out)."""

    @property
    def location(self) -> S3Location:
        return S3Location(self.bucket, self.key, self.version_id)

    @property
    def event_ref(self) -> dict[str, str]:
        """What identifies this event: the key and S3's sequencer (each PUT has its own), else the
        versionId or ETag (notifications without a sequencer)."""
        event = (
            f"seq:{normalize_sequencer(self.sequencer)}"
            if self.sequencer
            else self.version_id or f"etag:{self.etag}"
        )
        return {"bucket": self.bucket, "key": self.key, "event": event}


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
        sequencer = record.s3.object.sequencer or None
        try:
            normalize_sequencer(sequencer)
        except BadInputError as error:
            raise BadInputError(str(error), code="invalid_event") from None
        objects.append(
            ObjectCreated(
                bucket=bucket,
                key=key,
                version_id=record.s3.object.versionId or None,
                etag=record.s3.object.eTag or None,
                size=record.s3.object.size,
                event_name=record.eventName,
                raw=raw,
                sequencer=sequencer,
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
        order: EventOrder | None = None,
    ) -> ImageRecord:
        """Tag one S3 object end to end; the record (see :meth:`handle_event` for the rest)."""
        return self.handle_event(location, options=options, deadline=deadline, etag=etag, order=order).record

    def handle_event(
        self,
        location: S3Location,
        *,
        options: TagOptions | None = None,
        deadline: Deadline,
        etag: str | None = None,
        order: EventOrder | None = None,
        cache_lookup: RoundLookup | None = None,
    ) -> ObjectOutcome:
        """Tag one S3 object end to end; see the module docstring for outcomes and errors.

        ``cache_lookup``: where to ask the content-hash cache (a batch's shared read,
        :mod:`autotag.cacheround`); the store directly when None.

        ``order`` is the S3 event's place among the key's events (:mod:`autotag.ordering`): a
        duplicate or an older event does no work and changes nothing. None means a request (Tag
        Image Requested, the API's store mode): it must name an object (version) that exists
        (else :class:`~autotag.errors.ObjectNotFoundError`, nothing stored) and options this
        deployment can run (else :class:`~autotag.errors.UnknownProviderError`, nothing stored).

        ``etag`` is the ETag the trigger saw (unversioned buckets): if the object has been
        overwritten since, the newer object's own notification covers it and this one is skipped.
        """
        options = options or TagOptions()
        check_options(self.config, options)  # a bad request never touches the record
        if deadline.expired:
            raise TransientError("no time left to process the object", code="deadline")
        claimed = self._claim(location, order or EventOrder(), deadline)
        if isinstance(claimed, Refusal):
            claimed.raise_if_busy()
            assert claimed.disposition is not None
            logger.info(
                "event already reflected by the record",
                extra={
                    "s3_uri": location.uri,
                    "disposition": claimed.disposition.value,
                    "reason": claimed.reason,
                },
            )
            record = claimed.record
            if claimed.disposition is not Disposition.DUPLICATE or record is None:
                record = self._skip(location, etag, claimed.reason)
            return ObjectOutcome(record, claimed.disposition)
        try:
            return self._process_claimed(
                location, options, deadline, etag, claimed, request=order is None, cache_lookup=cache_lookup
            )
        except ClaimLostError:
            logger.warning("record taken over while processing", extra={"s3_uri": location.uri})
            return ObjectOutcome(self._skip(location, etag, "superseded while processing"), Disposition.STALE)
        except TerminalProcessingError as error:
            if error.record is None:  # stored failures end the claim themselves
                self._release(claimed)
            raise
        except BaseException:
            self._release(claimed)
            raise

    def _claim(self, location: S3Location, order: EventOrder, deadline: Deadline) -> Claim | Refusal:
        """Claim the record; while another event holds it, wait a little for it to finish (most
        take well under a second) rather than send this one back to the queue at once."""
        waited, pause = 0.0, BUSY_FIRST_PAUSE_SECONDS
        while True:
            claimed = self.store.claim(
                location.bucket,
                location.key,
                order,
                lease_seconds=deadline.remaining() + CLAIM_MARGIN_SECONDS,
            )
            budget = min(BUSY_WAIT_SECONDS - waited, deadline.remaining() / 2)
            if not isinstance(claimed, Refusal) or claimed.disposition is not None or budget < pause:
                return claimed
            time.sleep(pause)
            waited += pause
            pause = min(pause * 2, 2.0)

    def _release(self, claim: Claim) -> None:
        try:
            self.store.release(claim)
        except Exception:  # it expires anyway
            logger.debug("claim not released", exc_info=True)

    def _process_claimed(
        self,
        location: S3Location,
        options: TagOptions,
        deadline: Deadline,
        etag: str | None,
        claim: Claim,
        *,
        request: bool,
        cache_lookup: RoundLookup | None = None,
    ) -> ObjectOutcome:
        try:
            opened = self.objects.open(location)  # one GET: headers first, the body if it passes
        except InvalidS3ReferenceError as error:
            self._refused(location, error)
        if opened is None:
            return self._gone(location, etag, claim, request=request)
        with opened:
            return self._process_opened(
                location, options, deadline, etag, claim, opened, request=request, cache_lookup=cache_lookup
            )

    def _process_opened(
        self,
        location: S3Location,
        options: TagOptions,
        deadline: Deadline,
        etag: str | None,
        claim: Claim,
        opened: OpenedObject,
        *,
        request: bool,
        cache_lookup: RoundLookup | None = None,
    ) -> ObjectOutcome:
        previous, info = claim.previous, opened.info
        if etag and info.etag and etag != info.etag and not location.version_id:
            self._release(claim)
            return ObjectOutcome(
                self._skip(location, etag, "object was overwritten after this event"), Disposition.STALE
            )
        location = S3Location(location.bucket, location.key, location.version_id or info.version_id)
        same_object = _describes(previous, info, location)
        if (
            previous is not None
            and same_object
            and previous.status is ImageStatus.TAGGED
            and not request
            and claim.order.sequencer is None
            and not claim.order.replay
        ):
            # An unordered notification (backfill) for the object the record already describes.
            self._release(claim)
            return ObjectOutcome(previous, Disposition.DUPLICATE)
        base = {
            "bucket": location.bucket,
            "key": location.key,
            "version_id": location.version_id,
            "etag": info.etag,
            "sequencer": claim.order.sequencer or (previous.sequencer if previous else None),
            "size": info.size,
            "content_type": info.content_type,
        }
        owned = owned_object_tags(previous, self.config.s3_tags)
        image: SourceImage | None = None
        try:
            self._check_object(info)
            data = opened.read(self.config.limits.max_bytes)
            image = inspect_image(data, limits=self.config.limits)
            result, cached, to_cache = self._tag(
                image, options, deadline, s3=location, defer_cache=True, cache_lookup=cache_lookup
            )
        except ObjectGoneError:
            return self._gone(location, etag, claim, request=request)
        except InvalidS3ReferenceError as error:
            self._refused(location, error)
        except AutotagError as error:
            if error.retryable:
                raise
            # The tags autotag wrote before are still on the object: the record keeps owning them.
            kept = previous.s3_tags if previous is not None and same_object else None
            self._fail({**base, "s3_tags": kept}, error, image, claim)
        finally:
            if cache_lookup is not None:  # the rest of the batch need not wait for this one
                cache_lookup.skip()
        width, height = image.upright_size
        # People's corrections win over the provider output, on the object and in the index: the
        # claim returned them with the record (no extra read; a correction waits while it is held).
        corrections = previous.corrections if previous is not None else None
        in_force = effective_tags(result.tags, corrections, image.sha256)
        try:
            s3_tags = self._tag_writer.apply(location, in_force, self.config.s3_tags, owned=owned)
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
            # The cached result rides with the record (one write request); see docs/storage.md.
            stored = self.store.put(record, claim=claim, cache=to_cache)
        except BaseException:
            if to_cache is not None:  # the next attempt should not pay the providers again
                self._cache_quietly(to_cache)
            raise
        if corrections_version(stored) != corrections_version(record):
            # The stored corrections differ from what the object was written with (a write made
            # without a claim): the object follows the record.
            reconcile_object_tags(
                self.store,
                self._tag_writer,
                location,
                self.config.s3_tags,
                stored,
                owned={**owned, **s3_tags.written},
            )
        record = stored
        self.publisher.publish(ImageTaggedDetail.from_record(record))
        logger.info(
            "image tagged",
            extra={
                "s3_uri": location.uri,
                "tag_count": len(record.tags),
                "cached": cached,
                "s3_tags_written": len(s3_tags.written),
                "s3_tags_removed": len(s3_tags.removed),
                "s3_tags_dropped": len(s3_tags.dropped),
            },
        )
        return ObjectOutcome(record, Disposition.PROCESSED)

    def _gone(self, location: S3Location, etag: str | None, claim: Claim, *, request: bool) -> ObjectOutcome:
        """The object (version) does not exist. A request names it: a request error, the record of
        what does exist untouched. An S3 event (the newest for the key): recorded as skipped."""
        if request:
            raise ObjectNotFoundError(
                f"{location.uri}"
                + (f" version {location.version_id!r}" if location.version_id else "")
                + " does not exist"
            )
        record = self._skip(location, etag, "object no longer exists")
        record = record.model_copy(update={"sequencer": claim.order.sequencer})
        self.store.put(record, claim=claim)
        return ObjectOutcome(record, Disposition.PROCESSED)

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
        result, _cached, _ = self._tag(image, options or TagOptions(), deadline, s3=s3, retry=retry)
        return result

    def _cache_quietly(self, entry: CacheEntry) -> None:
        try:
            self.store.cache_result(entry.key, entry.result, ttl_seconds=entry.ttl_seconds)
        except Exception:
            logger.debug("result not cached", exc_info=True)

    def _tag(
        self,
        image: SourceImage,
        options: TagOptions,
        deadline: Deadline,
        *,
        s3: S3Location | None,
        retry: RetryPolicy | None = None,
        defer_cache: bool = False,
        cache_lookup: RoundLookup | None = None,
    ) -> tuple[TagResult, bool, CacheEntry | None]:
        """The result for these bytes and options, whether it came from the cache, and (with
        ``defer_cache``) the cache entry the caller is to write, instead of writing it here."""
        if not self.config.cache.enabled:
            return self._call_providers(image, options, deadline, s3, retry), False, None
        key = cache_key(image.sha256, provider_fingerprint(self.config, options))
        cached = cache_lookup.get(key) if cache_lookup is not None else self.store.cached_result(key)
        if cached is not None:
            return cached, True, None
        # Single flight: identical bytes arriving together (copies in one batch) make one call.
        with self._inflight_lock:
            leader = self._inflight.get(key)
            if leader is None:
                mine: concurrent.futures.Future[TagResult] = concurrent.futures.Future()
                self._inflight[key] = mine
        if leader is not None:
            try:
                return leader.result(timeout=deadline.remaining()), True, None
            except concurrent.futures.TimeoutError:
                raise ProviderTimeoutError(
                    "tagging did not finish before the deadline", code="deadline"
                ) from None
        try:
            result = self._call_providers(image, options, deadline, s3, retry)
            entry = None
            if not result.failed:
                entry = CacheEntry(key, result, int(self.config.cache.ttl_days * 86400))
                if not defer_cache:
                    self.store.cache_result(entry.key, entry.result, ttl_seconds=entry.ttl_seconds)
                    entry = None
            mine.set_result(result)
            return result, False, entry
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

    def _skip(self, location: S3Location, etag: str | None, reason: str) -> ImageRecord:
        """A ``skipped`` record (the caller stores it, or not)."""
        logger.info("object skipped", extra={"s3_uri": location.uri, "reason": reason})
        return ImageRecord(
            bucket=location.bucket,
            key=location.key,
            version_id=location.version_id,
            etag=etag,
            status=ImageStatus.SKIPPED,
            error=reason,
        )

    def _refused(self, location: S3Location, error: InvalidS3ReferenceError) -> NoReturn:
        logger.warning(
            "S3 refused the object reference",
            extra={"s3_uri": location.uri, "version_id": location.version_id, "reason": str(error)},
        )
        raise TerminalProcessingError(None, error) from error

    def _fail(
        self, base: dict[str, Any], error: AutotagError, image: SourceImage | None, claim: Claim
    ) -> NoReturn:
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
        self.store.put(record, claim=claim)
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
    from autotag.events import BatchingPublisher, EventBridgePublisher
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
        publisher=BatchingPublisher(EventBridgePublisher(clients.client("events"), settings.event_bus_name)),
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
