"""Tag corrections: what people decided about an image's tags, kept apart from what providers said.

A correction adds or removes tags on a stored image. Decisions are an append-only log
(:class:`TagCorrections`, versioned) stored beside the provider output, never inside it, so:

- they win: the tags in force (:func:`effective_tags`) are the providers' tags minus the removed
  ones, plus the added ones (confidence 1.0, provider ``person``), latest decision per tag;
- they survive re-tagging, redrives, backfills and re-uploads of the same bytes: every write of
  the provider output carries the stored decisions over (the store), and the pipeline applies them
  before it writes the object's S3 tags (the claim returns them with the record;
  :func:`reconcile_object_tags`);
- a decision is bound to the bytes it was made on (``sha256``): different bytes under the same key
  are a different image, and the old decisions stay in the log without applying to it.

The store's conditional writes (a revision number on the image item) make concurrent corrections
and a re-tag racing a correction serialize: a correction retries on conflict and keeps a claim it
finds; the re-tag's claimed write retries with the corrections made meanwhile (docs/storage.md), so
no decision and no provider result is lost. The object's S3 tags are written after the store commit;
:func:`reconcile_object_tags` re-reads the record afterwards and writes again if a newer decision
landed meanwhile, so the last writer always leaves the newest decisions on the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from autotag.config import S3TagPolicy
from autotag.decisions import CorrectionAction, TagCorrections, TagDecision
from autotag.errors import ImageNotTaggedError, NotFoundError
from autotag.events import EventPublisher, ImageTagsCorrectedDetail
from autotag.image import S3Location
from autotag.s3tags import ObjectTagWriter, desired_tags
from autotag.store.base import ImageRecord, ImageStatus, ImageStore, S3TagWrite

logger = Logger(service="autotag", child=True)

MAX_TAGS_PER_CORRECTION = 50
"""Tags one correction may add, and as many remove."""
MAX_TAG_NAME_CHARS = 128
"""The longest tag a person may write (an S3 tag key is 128 characters, prefix included)."""
_RECONCILE_ROUNDS = 5


# --- Who decided ---------------------------------------------------------------------------------


def actor_of(request_context: dict[str, Any] | None) -> str:
    """Who made a request, from API Gateway's request context: the API key *id* (never the key
    itself), else the IAM caller or the authorizer's principal."""
    context = request_context or {}
    identity = context.get("identity") or {}
    authorizer = context.get("authorizer") or {}
    if identity.get("apiKeyId"):
        return f"apikey:{identity['apiKeyId']}"
    for principal in (identity.get("userArn"), authorizer.get("principalId"), identity.get("caller")):
        if principal:
            return f"principal:{principal}"
    return "anonymous"


# --- Applying a correction ------------------------------------------------------------------------


@dataclass(frozen=True)
class CorrectionRequest:
    add: tuple[str, ...]
    remove: tuple[str, ...]
    by: str
    request_id: str | None = None


@dataclass(frozen=True)
class CorrectionOutcome:
    record: ImageRecord
    """As stored, with the corrections."""
    added: tuple[str, ...]
    removed: tuple[str, ...]
    s3_tags: S3TagWrite


def decisions_for(
    request: CorrectionRequest, record: ImageRecord, *, at: datetime | None = None
) -> list[TagDecision]:
    when = at or datetime.now(UTC)
    return [
        TagDecision(
            tag=" ".join(name.split()),
            action=action,
            by=request.by,
            at=when,
            request_id=request.request_id,
            sha256=record.sha256,
        )
        for action, names in ((CorrectionAction.REMOVE, request.remove), (CorrectionAction.ADD, request.add))
        for name in names
    ]


@dataclass(kw_only=True, eq=False)
class CorrectionService:
    """Records a correction, then brings the object's S3 tags in line and announces it."""

    store: ImageStore
    tag_writer: ObjectTagWriter
    policy: S3TagPolicy
    publisher: EventPublisher

    def correct(self, bucket: str, key: str, request: CorrectionRequest) -> CorrectionOutcome:
        seen: list[ImageRecord] = []

        def update(record: ImageRecord) -> TagCorrections:
            seen.append(record)
            if record.status is not ImageStatus.TAGGED:
                raise ImageNotTaggedError(
                    f"s3://{bucket}/{key} is {record.status.value}, not tagged: retry it before correcting"
                )
            current = record.corrections or TagCorrections()
            return current.with_decisions(decisions_for(request, record))

        stored = self.store.correct(bucket, key, update)
        if stored is None:
            raise NotFoundError(f"no record for s3://{bucket}/{key}", code="image_not_found")
        location = S3Location(bucket, key, stored.version_id)
        # The object carries what was in force before this correction (the record the write replaced).
        owned = owned_object_tags(seen[-1] if seen else stored, self.policy)
        s3_tags = reconcile_object_tags(
            self.store, self.tag_writer, location, self.policy, stored, owned=owned
        )
        outcome = CorrectionOutcome(
            record=stored,
            added=tuple(dict.fromkeys(request.add)),
            removed=tuple(dict.fromkeys(request.remove)),
            s3_tags=s3_tags,
        )
        self.publisher.publish(
            ImageTagsCorrectedDetail.of_correction(
                stored,
                added=list(outcome.added),
                removed=list(outcome.removed),
                corrected_by=request.by,
                corrected_at=stored.corrections.log[-1].at if stored.corrections else datetime.now(UTC),
                s3_tags=s3_tags,
            )
        )
        logger.info(
            "image tags corrected",
            extra={
                "s3_uri": location.uri,
                "added": len(outcome.added),
                "removed": len(outcome.removed),
                "corrections_version": stored.corrections.version if stored.corrections else 0,
                "by": request.by,
            },
        )
        return outcome


def corrections_version(record: ImageRecord | None) -> int:
    return record.corrections.version if record and record.corrections else 0


def owned_object_tags(record: ImageRecord | None, policy: S3TagPolicy) -> dict[str, str]:
    """The object tags autotag may have left on the object for ``record``: what the record says the
    pipeline wrote, and, once people corrected it, what a correction's write puts there (the tags in
    force); every other tag on the object is the user's (:mod:`autotag.s3tags`)."""
    if record is None:
        return {}
    owned = dict(record.s3_tags.written) if record.s3_tags else {}
    if record.corrections and record.corrections.log and record.status is ImageStatus.TAGGED:
        owned.update(desired_tags(record.tags_in_force, policy, slots=policy.max_tags))
    return owned


def reconcile_object_tags(
    store: ImageStore,
    writer: ObjectTagWriter,
    location: S3Location,
    policy: S3TagPolicy,
    written_for: ImageRecord,
    *,
    owned: Mapping[str, str] | None = None,
    last_write: S3TagWrite | None = None,
) -> S3TagWrite:
    """Write the object's S3 tags for the record as stored, until no newer decision has landed
    since the write (a concurrent writer may have put an older view on the object meanwhile).

    ``last_write`` is a write already made for ``written_for`` (the pipeline's); without it the
    first write is made here. ``owned``: the object tags autotag wrote before (default: what
    ``written_for``'s predecessors wrote, :func:`owned_object_tags`).
    """
    record = written_for
    write = last_write
    mine = dict(owned if owned is not None else owned_object_tags(written_for, policy))
    for _ in range(_RECONCILE_ROUNDS):
        if write is None:
            write = writer.apply(location, record.tags_in_force, policy, owned=mine)
        mine.update(write.written)
        latest = store.get(location.bucket, location.key)
        if latest is None or _same_decisions(latest, record):
            return write
        record, write = latest, None
    return write or S3TagWrite(reason="corrections kept changing; the next write brings the tags in line")


def _same_decisions(a: ImageRecord, b: ImageRecord) -> bool:
    return corrections_version(a) == corrections_version(b) and a.sha256 == b.sha256 and a.tags == b.tags
