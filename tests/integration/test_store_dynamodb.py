import zlib
from datetime import UTC, datetime

import pytest
from autotag.models import Tag
from autotag.store.base import ImageRecord, ImageStatus, ImageSummary
from autotag.store.dynamo_items import to_item
from autotag.store.dynamodb import DynamoImageStore
from autotag.store.keys import META_SK, feed_pk, feed_sk, image_pk
from autotag.store.schema import create_table

from tests.support.aws import unique
from tests.support.aws_calls import WRITE_UNIT_BYTES, item_size
from tests.support.store_contract import FakeWallClock, ImageStoreContract

pytestmark = pytest.mark.integration


@pytest.fixture
def clock():
    return FakeWallClock()


@pytest.fixture
def table(aws_emulator):
    client = aws_emulator.client("dynamodb")
    name = unique("images")
    create_table(client, name)
    yield client, name
    client.delete_table(TableName=name)


@pytest.fixture
def store(table, clock):
    client, name = table
    return DynamoImageStore(client, name, clock=clock)


@pytest.fixture
def index_keys(table):
    client, name = table

    def keys():
        items = client.get_paginator("scan").paginate(TableName=name).build_full_result()["Items"]
        return {(i["pk"]["S"], i["sk"]["S"]) for i in items if i["pk"]["S"].startswith("TAG#")}

    return keys


class TestDynamoImageStore(ImageStoreContract):
    def test_table_has_ttl_on_expires_at(self, table):
        client, name = table
        ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl["AttributeName"] == "expires_at"
        assert ttl["TimeToLiveStatus"] == "ENABLED"


class ThrottlingClient:
    """The emulator's client, except that BatchWriteItem writes only the first `take` requests of
    each call and hands the rest back as unprocessed, as DynamoDB does under throttling."""

    def __init__(self, client, *, take: int, calls_before_clearing: int) -> None:
        self._client = client
        self.take = take
        self.calls_before_clearing = calls_before_clearing
        self.batch_writes = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def batch_write_item(self, RequestItems):
        self.batch_writes += 1
        ((table, requests),) = RequestItems.items()
        if self.batch_writes > self.calls_before_clearing:
            return self._client.batch_write_item(RequestItems=RequestItems)
        done, rest = requests[: self.take], requests[self.take :]
        if done:
            self._client.batch_write_item(RequestItems={table: done})
        return {"UnprocessedItems": {table: rest} if rest else {}}


def claimed_put(store, key, *pairs, sequencer="01"):
    from autotag.ordering import Claim, EventOrder

    from tests.support.store_contract import record

    claim = store.claim("b", key, EventOrder(sequencer=sequencer), lease_seconds=30)
    assert isinstance(claim, Claim)
    store.put(record("b", key, *pairs, sequencer=sequencer), claim=claim)


def test_unprocessed_writes_are_sent_again_until_the_record_and_its_index_are_whole(table, clock):
    client, name = table
    throttled = ThrottlingClient(client, take=2, calls_before_clearing=2)
    store = DynamoImageStore(throttled, name, clock=clock, sleep=lambda _s: None)
    claimed_put(store, "throttled.jpg", ("dog", 0.9), ("cat", 0.8), ("sofa", 0.7), ("tree", 0.6))
    assert throttled.batch_writes == 3
    record = store.get("b", "throttled.jpg")
    assert [t.name for t in record.tags] == ["dog", "cat", "sofa", "tree"]
    for name_ in ("dog", "cat", "sofa", "tree"):
        assert [h.key for h in store.images_with_tag(name_).items] == ["throttled.jpg"]


def test_writes_left_unprocessed_past_the_retries_are_a_retryable_error(table, clock):
    from autotag.errors import TransientError

    client, name = table
    throttled = ThrottlingClient(client, take=0, calls_before_clearing=10_000)
    store = DynamoImageStore(throttled, name, clock=clock, sleep=lambda _s: None)
    with pytest.raises(TransientError) as raised:
        claimed_put(store, "stuck.jpg", ("dog", 0.9))
    assert raised.value.retryable
    assert store.get("b", "stuck.jpg") is None


# --- The image item's layout: each fact once; items of the earlier layout still read ----------------


def test_items_of_the_earlier_layout_are_read_and_listed(table):
    """An image item as written before (bucket, key and updated_at attributes, the summary as JSON
    text, the record compressed without the preset dictionary) is read by get and listed by the
    feed index beside one written now."""
    client, name = table
    store = DynamoImageStore(client, name)
    old = ImageRecord(
        bucket="photos",
        key="old #1.jpg",
        version_id="v1",
        etag="e1",
        status=ImageStatus.TAGGED,
        tags=(Tag(name="cat", confidence=0.9, provider="basic"),),
        title="A cat",
        updated_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    on_item = {"bucket", "key", "version_id", "etag", "status", "updated_at", "corrections"}
    updated_at = old.updated_at.isoformat()
    client.put_item(
        TableName=name,
        Item=to_item(
            {
                "pk": image_pk(old.bucket, old.key),
                "sk": META_SK,
                "type": "image",
                "bucket": old.bucket,
                "key": old.key,
                "version_id": old.version_id,
                "etag": old.etag,
                "status": old.status.value,
                "updated_at": updated_at,
                "record_z": zlib.compress(
                    old.model_dump_json(exclude_defaults=True, exclude=on_item).encode()
                ),
                "revision": 1,
                "feed_pk": feed_pk(old.status.value),
                "feed_sk": feed_sk(updated_at, old.bucket, old.key),
                "summary": ImageSummary.of(old).model_dump_json(),
            }
        ),
    )
    new = old.model_copy(update={"key": "new.jpg", "updated_at": datetime(2026, 1, 3, tzinfo=UTC)})
    store.put(new)
    assert store.get(old.bucket, old.key) == old
    assert store.get(new.bucket, new.key) == new
    listed = store.recent(ImageStatus.TAGGED).items
    assert listed == [ImageSummary.of(new), ImageSummary.of(old)]
    item = client.get_item(TableName=name, Key=to_item({"pk": image_pk(new.bucket, new.key), "sk": META_SK}))
    assert item_size(item["Item"]) <= WRITE_UNIT_BYTES
