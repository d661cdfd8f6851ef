"""What the local-stack tests put into it from outside: objects that predate autotag, and
``Tag Image Requested`` events sent to its bus."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from tests.e2e.conftest import RunningStack


@contextlib.contextmanager
def notifications_paused(stack: RunningStack) -> Iterator[Any]:
    """An S3 client; objects it writes here predate autotag (the bucket notifies nobody meanwhile)."""
    s3 = stack.client("s3")
    notifications = s3.get_bucket_notification_configuration(Bucket=stack.bucket)
    notifications.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=stack.bucket, NotificationConfiguration={})
    try:
        yield s3
    finally:
        s3.put_bucket_notification_configuration(Bucket=stack.bucket, NotificationConfiguration=notifications)


def request_tagging(stack: RunningStack, key: str) -> None:
    """A ``Tag Image Requested`` event for `key` in the stack's bucket, put on its bus."""
    response = stack.client("events").put_events(
        Entries=[
            {
                "Source": "autotag",
                "DetailType": "Tag Image Requested",
                "EventBusName": stack.state.resources.event_bus_name,
                "Detail": json.dumps({"bucket": stack.bucket, "key": key}),
            }
        ]
    )
    assert response["FailedEntryCount"] == 0
