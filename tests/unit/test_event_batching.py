"""Outcome events of a batch go out together: at most 10 entries and 256 KB per PutEvents."""

from __future__ import annotations

from typing import Any

import pytest
from autotag.errors import TransientError
from autotag.events import (
    MAX_PUT_BYTES,
    BatchingPublisher,
    EventBridgePublisher,
    ImageTaggedDetail,
    collecting,
    entry_size,
    put_chunks,
)
from autotag.store.base import ImageRecord, ImageStatus


class FakeEventBridge:
    """Answers PutEvents like EventBridge; refuses the entries named in `refuse` (once each)."""

    def __init__(self, refuse: int = 0) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        self.refuse = refuse

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        assert len(Entries) <= 10
        assert sum(entry_size(e) for e in Entries) <= MAX_PUT_BYTES
        self.requests.append(Entries)
        results = []
        for _ in Entries:
            if self.refuse:
                self.refuse -= 1
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                results.append({"EventId": "id"})
        return {"FailedEntryCount": sum(1 for r in results if "ErrorCode" in r), "Entries": results}


def detail(n: int) -> ImageTaggedDetail:
    return ImageTaggedDetail.from_record(
        ImageRecord(bucket="b", key=f"k{n}.jpg", status=ImageStatus.TAGGED, sha256="ab" * 32)
    )


def test_a_batch_of_events_is_sent_in_requests_of_ten_after_the_block():
    client = FakeEventBridge()
    publisher = BatchingPublisher(EventBridgePublisher(client, "bus"))
    with collecting(publisher) as outbox:
        for n in range(23):
            publisher.publish(detail(n))
        assert client.requests == []  # held back until the batch ends
    assert [len(r) for r in client.requests] == [10, 10, 3]
    assert [e["Resources"][0] for r in client.requests for e in r] == [
        f"arn:aws:s3:::b/k{n}.jpg" for n in range(23)
    ]
    assert outbox.unpublished == 0
    publisher.publish(detail(99))  # outside a batch: at once
    assert len(client.requests) == 4


def test_requests_also_stay_under_256_kb():
    entries = [{"Source": "s", "DetailType": "d", "Detail": "x" * 60_000, "Resources": []} for _ in range(9)]
    chunks = put_chunks(entries)
    assert [len(c) for c in chunks] == [4, 4, 1]


def test_refused_entries_are_sent_again():
    client = FakeEventBridge(refuse=2)
    EventBridgePublisher(client, "bus").publish_many([detail(1), detail(2), detail(3)])
    assert [len(r) for r in client.requests] == [3, 2]


def test_events_that_cannot_be_published_are_counted_not_raised_after_the_batch():
    client = FakeEventBridge(refuse=100)
    publisher = BatchingPublisher(EventBridgePublisher(client, "bus"))
    with collecting(publisher) as outbox:
        publisher.publish(detail(1))
        publisher.publish(detail(2))
    assert outbox.unpublished == 2
    with pytest.raises(TransientError):
        publisher.publish(detail(3))  # outside a batch the caller sees the failure
