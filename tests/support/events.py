"""Builders for the event shapes on_upload receives (S3 notifications inside SQS messages), plus
the samples in ``events/``. Keys are URL-encoded the way S3 encodes them (spaces as ``+``)."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
REGION = "us-east-1"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:autotag-tag-queue"


_sequence = itertools.count(time.time_ns())


def next_sequencer() -> str:
    """A sequencer newer than every one before (S3 gives each PUT of a key a larger one)."""
    return f"{next(_sequence):018X}"


def load_event(name: str) -> dict[str, Any]:
    """A sample from events/ (``name`` without ``.json``)."""
    return json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def load_schema(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8"))


def s3_record(
    bucket: str,
    key: str,
    *,
    etag: str | None = "d41d8cd98f00b204e9800998ecf8427e",
    version_id: str | None = None,
    size: int = 1024,
    event_name: str = "ObjectCreated:Put",
    sequencer: str | None = "",
) -> dict[str, Any]:
    """One S3 event notification record (structure version 2.1) for `key` (given decoded).

    Each call is a new event (a fresh, larger ``sequencer``) unless ``sequencer`` is given; None
    leaves it out, as some emitters do. Reuse the record itself for a duplicate delivery."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size}
    if sequencer is not None:
        obj["sequencer"] = sequencer or next_sequencer()
    if etag is not None:
        obj["eTag"] = etag
    if version_id is not None:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": "2025-01-15T10:30:00.000Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLEUSER"},
        "requestParameters": {"sourceIPAddress": "203.0.113.10"},
        "responseElements": {
            "x-amz-request-id": "C3D13FE58DE4C810",
            "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "autotag-object-created",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }


def s3_notification(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def s3_test_event(bucket: str) -> dict[str, Any]:
    return {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2025-01-15T10:29:58.000Z",
        "Bucket": bucket,
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }


def sqs_message(
    body: dict[str, Any] | str,
    *,
    message_id: str | None = None,
    receive_count: int = 1,
    queue_arn: str = QUEUE_ARN,
) -> dict[str, Any]:
    """One SQS record as Lambda's event source mapping delivers it."""
    message_id = message_id or str(uuid.uuid4())
    return {
        "messageId": message_id,
        "receiptHandle": f"AQEB{message_id.replace('-', '')}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1736937000000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1736937000500",
        },
        "messageAttributes": {},
        "md5OfBody": "7b270e59b47ff90a553787216d55d91d",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def sqs_batch(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(messages)}


def upload_batch(*objects: tuple[str, str, str | None, str | None]) -> dict[str, Any]:
    """An SQS batch with one S3 put notification per (bucket, key, etag, version_id)."""
    return sqs_batch(
        *(sqs_message(s3_notification(s3_record(b, k, etag=e, version_id=v))) for b, k, e, v in objects)
    )
