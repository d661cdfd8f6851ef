"""The per-object flow shared by every entry point (on_upload, on_event, the API's store mode):
read the S3 object, check it, tag it (or reuse a cached result for the same bytes), write the
object tags, store the record and announce the outcome.

``TaggingService.process_object`` is synchronous and thread-safe: a batch handler runs several
objects at once in threads, while every provider call runs on the process's one event loop
(:mod:`autotag.eventloop`). ``TaggingService.tag_image`` is the tag step alone (cache, single
flight, retry, metrics: :mod:`autotag.tagstep`) for images that are not stored (the API's inline,
URL and S3-without-store sources), on the same loop and Tagger: one of each per process.

Every S3 event is ordered against the image record by S3's ``sequencer`` (:mod:`autotag.ordering`):
one conditional write on the record claims it for the event, or says the event is a duplicate
(the record is returned as it is), stale (older than what the record reflects; nothing is stored) or
busy (another event of the key is in flight: :class:`~autotag.errors.ObjectBusyError`, retryable).
A request (no sequencer) naming an unknown provider or an object that does not exist is refused
before the record is touched. What is written under the claim: :mod:`autotag.recording`.

Outcomes of ``process_object`` (``handle_event`` also says which disposition applied):
- returns the record: ``tagged``, or ``skipped`` (object deleted, or overwritten since the event);
- raises :class:`~autotag.errors.TerminalProcessingError` (the record is stored as ``failed`` and an
  ``Image Tagging Failed`` event is published first; or, when S3 refuses the reference itself,
  nothing is stored, since it names no object version to record against): retrying cannot help,
  route it to the DLQ;
- raises any other exception (an :class:`~autotag.errors.AutotagError` with ``retryable=True``,
  or an unexpected AWS/client error): try again later (SQS redelivery).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools import Logger

from autotag.cacheround import RoundLookup
from autotag.config import AutotagConfig
from autotag.corrections import owned_object_tags
from autotag.errors import (
    AutotagError,
    ClaimLostError,
    ImageTooLargeError,
    InvalidS3ReferenceError,
    ObjectGoneError,
    TerminalProcessingError,
    TransientError,
    UnsupportedFormatError,
)
from autotag.events import EventPublisher
from autotag.fanout import check_options
from autotag.image import S3Location, SourceImage
from autotag.intake.checks import inspect_image
from autotag.models import TagOptions, TagResult
from autotag.objects import ObjectInfo, ObjectStorage, OpenedObject
from autotag.ordering import Claim, Disposition, EventOrder, Refusal
from autotag.recording import ObjectOutcome, RecordKeeper
from autotag.retry import Deadline, RetryPolicy
from autotag.store.base import ImageRecord, ImageStatus
from autotag.tagstep import TagStep

logger = Logger(service="autotag", child=True)

_GENERIC_CONTENT_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})


class TaggingService:
    """One S3 object (or an image in hand) through the tag step, with its record, object tags and
    outcome event. One per process; ``tag_step`` brings the providers and the event loop."""

    def __init__(
        self,
        *,
        config: AutotagConfig,
        tag_step: TagStep,
        objects: ObjectStorage,
        publisher: EventPublisher,
    ) -> None:
        self.config = config
        self.tag_step = tag_step
        self.store = tag_step.store
        self.objects = objects
        self.publisher = publisher
        self.records = RecordKeeper(config=config, store=self.store, objects=objects, publisher=publisher)

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
        claimed = self.records.claim(location, order or EventOrder(), deadline)
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
                record = self.records.skipped(location, etag, claimed.reason)
            return ObjectOutcome(record, claimed.disposition)
        try:
            return self._process_claimed(
                _ClaimedEvent(location, options, deadline, etag, claimed, order is None, cache_lookup)
            )
        except ClaimLostError:
            logger.warning("record taken over while processing", extra={"s3_uri": location.uri})
            skipped = self.records.skipped(location, etag, "superseded while processing")
            return ObjectOutcome(skipped, Disposition.STALE)
        except TerminalProcessingError as error:
            if error.record is None:  # stored failures end the claim themselves
                self.records.release(claimed)
            raise
        except BaseException:
            self.records.release(claimed)
            raise

    def _process_claimed(self, event: _ClaimedEvent) -> ObjectOutcome:
        location = event.location
        try:
            opened = self.objects.open(location)  # one GET: headers first, the body if it passes
        except InvalidS3ReferenceError as error:
            self.records.refused(location, error)
        if opened is None:
            return self.records.gone(location, event.etag, event.claim, request=event.request)
        with opened:
            return self._process_opened(event, opened)

    def _process_opened(self, event: _ClaimedEvent, opened: OpenedObject) -> ObjectOutcome:
        etag, claim, cache_lookup = event.etag, event.claim, event.cache_lookup
        previous, info, location = claim.previous, opened.info, event.location
        if etag and info.etag and etag != info.etag and not location.version_id:
            self.records.release(claim)
            skipped = self.records.skipped(location, etag, "object was overwritten after this event")
            return ObjectOutcome(skipped, Disposition.STALE)
        location = S3Location(location.bucket, location.key, location.version_id or info.version_id)
        same_object = _describes(previous, info, location)
        if (
            previous is not None
            and same_object
            and previous.status is ImageStatus.TAGGED
            and not event.request
            and claim.order.sequencer is None
            and not claim.order.replay
        ):
            # An unordered notification (backfill) for the object the record already describes.
            self.records.release(claim)
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
            result, cached, to_cache = self.tag_step.tag(
                image, event.options, event.deadline, s3=location, defer_cache=True, cache_lookup=cache_lookup
            )
        except ObjectGoneError:
            return self.records.gone(location, etag, claim, request=event.request)
        except InvalidS3ReferenceError as error:
            self.records.refused(location, error)
        except AutotagError as error:
            if error.retryable:
                raise
            # The tags autotag wrote before are still on the object: the record keeps owning them.
            kept = previous.s3_tags if previous is not None and same_object else None
            self.records.failed({**base, "s3_tags": kept}, error, image, claim)
        finally:
            if cache_lookup is not None:  # the rest of the batch need not wait for this one
                cache_lookup.skip()
        return self.records.tagged(
            location,
            result,
            image,
            claim,
            base=base,
            owned=owned,
            cached=cached,
            cache=to_cache,
            tag_count=info.tag_count,
        )

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
        Raises the provider errors as they are (:class:`~autotag.errors.AllProvidersFailedError`,
        :class:`~autotag.errors.ProviderTimeoutError` on the deadline, ...).
        """
        result, _cached, _ = self.tag_step.tag(image, options or TagOptions(), deadline, s3=s3, retry=retry)
        return result

    def close(self) -> None:
        """Release the providers' resources (HTTP client) and stop the event loop."""
        self.tag_step.close()


@dataclass(frozen=True)
class _ClaimedEvent:
    """One event under its claim, as :meth:`TaggingService.handle_event` was given it."""

    location: S3Location
    options: TagOptions
    deadline: Deadline
    etag: str | None
    claim: Claim
    request: bool
    """A request (no S3 event order): the object must exist."""
    cache_lookup: RoundLookup | None


def _describes(record: ImageRecord | None, info: ObjectInfo, location: S3Location) -> bool:
    """Whether `record` is about the object the GET just described (same version and bytes)."""
    return (
        record is not None
        and record.version_id == location.version_id
        and record.etag is not None
        and record.etag == info.etag
    )
