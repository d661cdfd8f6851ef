"""S3 event notifications (the body of an ``on_upload`` SQS message) and what identifies one event.

``parse_s3_notification`` turns a message into the objects to tag, ``notification_body`` writes one
for a backfill. ``event_ref`` is the one definition of an event's identity (bucket, key and which
event of the key), used to run each event once: within an upload batch, and as on_event's
idempotency key (:data:`EVENT_REF_JMESPATH`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from pydantic import BaseModel, ConfigDict, ValidationError

from autotag.config import ObjectFilters
from autotag.errors import InvalidEventError
from autotag.image import S3Location
from autotag.ordering import normalize_sequencer

REPLAY_ATTRIBUTE = "replay_id"
"""SQS message attribute marking a deliberate replay of a notification (``autotag redrive``,
``backfill --force``, S3 Batch Operations): the object is tagged again even though the record
already reflects the event."""

BACKFILL_CONFIGURATION_ID = "autotag-backfill"
"""``configurationId`` of the notifications a backfill sends (``autotag backfill``, and on_batch for
S3 Batch Operations); S3 puts the notification configuration's id there."""

EVENT_REF_JMESPATH = "[bucket, key, event]"
"""The idempotency key expression over an :func:`event_ref` (Powertools ``event_key_jmespath``)."""


def event_ref(bucket: str, key: str, event: str) -> dict[str, str]:
    """One event of one object: ``event`` tells it from the key's other events (``seq:...`` for
    S3's sequencer, a version id, ``etag:...``, or ``event:...`` for a bus event's id)."""
    return {"bucket": bucket, "key": key, "event": event}


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
        return event_ref(self.bucket, self.key, event)


@dataclass(frozen=True)
class ParsedNotification:
    objects: list[ObjectCreated]
    ignored: list[tuple[str, str]]
    """(s3 uri or event name, why) for records that are not tagged."""
    test_event: bool = False


def parse_s3_notification(body: str | dict[str, Any], filters: ObjectFilters) -> ParsedNotification:
    """An S3 event notification (an SQS message body) → the objects to tag.

    ``s3:TestEvent`` and non-ObjectCreated records are ignored, as are keys the filters exclude.
    Anything that is not an S3 notification is an :class:`~autotag.errors.InvalidEventError`.
    """
    try:
        data = json.loads(body) if isinstance(body, str) else body
    except ValueError:
        raise InvalidEventError("message body is not JSON") from None
    if isinstance(data, dict) and data.get("Event") == "s3:TestEvent":
        return ParsedNotification(objects=[], ignored=[("s3:TestEvent", "test event")], test_event=True)
    try:
        notification = _S3Notification.model_validate(data)
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise InvalidEventError(f"message is not an S3 event notification ({problem})") from None
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
        normalize_sequencer(sequencer)  # a malformed one is the message's error (invalid_event)
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


def notification_body(
    bucket: str, key: str, *, size: int | None, etag: str | None, region: str, version_id: str | None = None
) -> str:
    """An S3 ``ObjectCreated`` event notification for one object (the documented structure), as a
    backfill puts it on the tag queue."""
    obj: dict[str, Any] = {"key": quote_plus(key), "size": size, "eTag": (etag or "").strip('"')}
    if version_id:
        obj["versionId"] = version_id
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "autotag-backfill"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": BACKFILL_CONFIGURATION_ID,
            "bucket": {
                "name": bucket,
                "arn": f"arn:aws:s3:::{bucket}",
                "ownerIdentity": {"principalId": "-"},
            },
            "object": obj,
        },
    }
    return json.dumps({"Records": [record]})
