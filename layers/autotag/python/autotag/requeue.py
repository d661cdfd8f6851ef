"""Sending an object through the upload path again, as both backfills (the one-machine
``autotag backfill`` in :mod:`autotag.ops.backfill`, the S3 Batch Operations tasks in
:mod:`autotag.batch_tasks`) and the redrive do: the S3 event notification on_upload parses for an
upload, whether the stored record already covers this very object, and the message attribute that
marks a deliberate replay. Kept light: on_batch imports it, not the upload pipeline.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

from autotag.store.base import ImageStore

REPLAY_ATTRIBUTE = "replay_id"
"""SQS message attribute marking a deliberate replay (``autotag redrive``, ``backfill --force``):
the object is tagged again even though the record already reflects the event."""
BACKFILL_CONFIGURATION_ID = "autotag-backfill"
"""``configurationId`` of the notifications a backfill sends (S3 puts the notification's id there)."""


def notification_body(
    bucket: str, key: str, *, size: int | None, etag: str | None, region: str, version_id: str | None = None
) -> str:
    """An S3 ``ObjectCreated`` event notification for one object (the documented structure)."""
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


def already_tagged(store: ImageStore, bucket: str, key: str, etag: str | None) -> str | None:
    """The stored record's status when it is for this very object (same ETag), else None."""
    record = store.get(bucket, key)
    if record is None or record.etag is None or etag is None:
        return None
    return record.status.value if record.etag.strip('"') == etag.strip('"') else None
