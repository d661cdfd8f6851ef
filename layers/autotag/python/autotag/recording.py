"""The image record's side of one event: claiming the record, and writing what the event came to
under the claim (tagged, skipped, failed), with the object's S3 tags and the outcome event.

The claim (:mod:`autotag.ordering`) is one conditional write on the record: it serializes the
events of one key and says whether this event may change the record at all. Everything here writes
under a claim, or ends it (:meth:`RecordKeeper.release`); the orchestration is
:class:`autotag.tagging.TaggingService`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NoReturn

from aws_lambda_powertools import Logger

from autotag.config import AutotagConfig
from autotag.corrections import corrections_version, reconcile_object_tags
from autotag.decisions import effective_tags
from autotag.errors import AutotagError, InvalidS3ReferenceError, ObjectNotFoundError, TerminalProcessingError
from autotag.events import EventPublisher, ImageTaggedDetail, ImageTaggingFailedDetail
from autotag.image import S3Location, SourceImage
from autotag.models import TagResult
from autotag.objects import ObjectStorage
from autotag.ordering import Claim, Disposition, EventOrder, Refusal
from autotag.retry import Deadline
from autotag.s3tags import ObjectTagWriter
from autotag.store.base import CacheEntry, ImageRecord, ImageStatus, ImageStore

logger = Logger(service="autotag", child=True)

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


class RecordKeeper:
    """Claims image records and writes events' outcomes under the claims."""

    def __init__(
        self, *, config: AutotagConfig, store: ImageStore, objects: ObjectStorage, publisher: EventPublisher
    ) -> None:
        self.config = config
        self.store = store
        self.publisher = publisher
        self.tag_writer = ObjectTagWriter(objects)

    # --- The claim ---------------------------------------------------------------------------

    def claim(self, location: S3Location, order: EventOrder, deadline: Deadline) -> Claim | Refusal:
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

    def release(self, claim: Claim) -> None:
        try:
            self.store.release(claim)
        except Exception:  # it expires anyway
            logger.debug("claim not released", exc_info=True)

    # --- Outcomes ----------------------------------------------------------------------------

    def tagged(
        self,
        location: S3Location,
        result: TagResult,
        image: SourceImage,
        claim: Claim,
        *,
        base: dict[str, Any],
        owned: dict[str, str],
        cached: bool,
        cache: CacheEntry | None,
        tag_count: int | None = None,
    ) -> ObjectOutcome:
        """Write the object's S3 tags and the ``tagged`` record (with the cached result, one write
        request; see docs/storage.md), then announce it. ``tag_count``: the object's tags as its GET
        counted them (none: the tag set is not read before it is written)."""
        previous = claim.previous
        width, height = image.upright_size
        # People's corrections win over the provider output, on the object and in the index: the
        # claim returned them with the record (no extra read; a correction waits while it is held).
        corrections = previous.corrections if previous is not None else None
        in_force = effective_tags(result.tags, corrections, image.sha256)
        try:
            s3_tags = self.tag_writer.apply(
                location, in_force, self.config.s3_tags, owned=owned, tag_count=tag_count
            )
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
            stored = self.store.put(record, claim=claim, cache=cache)
        except BaseException:
            if cache is not None:  # the next attempt should not pay the providers again
                self._cache_quietly(cache)
            raise
        if corrections_version(stored) != corrections_version(record):
            # The stored corrections differ from what the object was written with (a write made
            # without a claim): the object follows the record.
            reconcile_object_tags(
                self.store,
                self.tag_writer,
                location,
                self.config.s3_tags,
                stored,
                owned={**owned, **s3_tags.written},
            )
        self.publisher.publish(ImageTaggedDetail.from_record(stored))
        logger.info(
            "image tagged",
            extra={
                "s3_uri": location.uri,
                "tag_count": len(stored.tags),
                "cached": cached,
                "s3_tags_written": len(s3_tags.written),
                "s3_tags_removed": len(s3_tags.removed),
                "s3_tags_dropped": len(s3_tags.dropped),
            },
        )
        return ObjectOutcome(stored, Disposition.PROCESSED)

    def gone(self, location: S3Location, etag: str | None, claim: Claim, *, request: bool) -> ObjectOutcome:
        """The object (version) does not exist. A request names it: a request error, the record of
        what does exist untouched. An S3 event (the newest for the key): recorded as skipped."""
        if request:
            raise ObjectNotFoundError(
                f"{location.uri}"
                + (f" version {location.version_id!r}" if location.version_id else "")
                + " does not exist"
            )
        record = self.skipped(location, etag, "object no longer exists")
        record = record.model_copy(update={"sequencer": claim.order.sequencer})
        self.store.put(record, claim=claim)
        return ObjectOutcome(record, Disposition.PROCESSED)

    def skipped(self, location: S3Location, etag: str | None, reason: str) -> ImageRecord:
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

    def refused(self, location: S3Location, error: InvalidS3ReferenceError) -> NoReturn:
        """S3 refused the reference itself: nothing is stored (it names no version to record
        against); terminal."""
        logger.warning(
            "S3 refused the object reference",
            extra={"s3_uri": location.uri, "version_id": location.version_id, "reason": str(error)},
        )
        raise TerminalProcessingError(None, error) from error

    def failed(
        self, base: dict[str, Any], error: AutotagError, image: SourceImage | None, claim: Claim
    ) -> NoReturn:
        """Store the ``failed`` record under the claim (ending it), announce it; terminal."""
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

    def _cache_quietly(self, entry: CacheEntry) -> None:
        try:
            self.store.cache_result(entry.key, entry.result, ttl_seconds=entry.ttl_seconds)
        except Exception:
            logger.debug("result not cached", exc_info=True)
