"""AWS requests per uploaded image, counted by operation against the emulator, and DynamoDB write
units per image from the real item sizes (tests/support/aws_calls.py). ``make bench`` prints the
same figures (bench/bench_aws_calls.py).

Issue 14's budget: at most 6 calls per image, each operation held to its own allowance so a change
that adds a request fails here by name. Measured before the change (HEAD + GET, a GetItem and a
PutItem for the cache, the record in a transaction, one PutEvents per image): 9 calls and 17 write
units per image; then 5.2 calls and 8 write units (10-image batches, ``bench.bench_aws_calls``,
every image with a user tag), the record item 1.5 KB. The tag set is read only for an object S3's
GET says has tags (``x-amz-tagging-count``): half the images here carry a user tag. The record
item now stores each fact once and fits in 1 KB: 8 write units per image, the feed index's write
counted (9 before by the same count).
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from autotag.image import S3Location
from autotag.objects import S3ObjectStorage
from autotag.upload import reset_upload_processor

from tests.support.aws_calls import USER_TAGS, WRITE_UNIT_BYTES, AwsCallLog, upload_unlogged
from tests.support.images import jpeg_bytes
from tests.support.upload_stack import upload_stack

CALLS_PER_IMAGE_BUDGET = 6.0
IMAGES = 4
USER_TAGS_EVERY = 2
"""Every second image is uploaded with a user tag."""
CALLS_PER_IMAGE_BY_OPERATION = {
    "s3.GetObject": 1.0,  # size, type, ETag and tag count from its headers: no HeadObject
    "s3.GetObjectTagging": 1 / USER_TAGS_EVERY,  # only objects with tags: the user's are kept
    "s3.PutObjectTagging": 1.0,
    "dynamodb.UpdateItem": 1.0,  # the claim: each PUT processed once (returns the old record)
    "dynamodb.BatchGetItem": 1 / IMAGES,  # the batch's cache lookups, together
    "dynamodb.BatchWriteItem": 1.0,  # record + index items + cached result, one request
    "eventbridge.PutEvents": 1 / IMAGES,  # the batch's outcome events, together
}
WRITE_UNITS_PER_IMAGE_BUDGET = 8.0
"""1 (the claim, on a new image) + 1 (the record: under 1 KB, each fact stored once; 2 while the
feed's summary repeated the record) + 1 (the ``feed`` index's entry for the record) + 4 (one per
tag index item: the test provider returns 4 tags) + 1 (the cached result); 17 before (the feed
index's write not counted then), 9 with the 1.5 KB record."""


@pytest.fixture(scope="module")
def stack(aws_emulator):
    with upload_stack(aws_emulator, concurrency=IMAGES) as built:
        yield built


@pytest.fixture(scope="module")
def counted(stack):
    log = AwsCallLog(reader=stack.emulator.client("dynamodb"))
    with log.installed():
        keys = [f"counted/photo {i}.jpg" for i in range(IMAGES)]
        messages = upload_unlogged(log, stack, keys, seed=4100, user_tags_every=USER_TAGS_EVERY)
        log.clear()
        calls_before = stack.provider.calls
        response = stack.invoke(*messages)
        with log.ignoring():
            log.size_updates(stack.emulator.client("dynamodb"))
            provider_calls = stack.provider.calls - calls_before
    assert response["batchItemFailures"] == []
    assert provider_calls == IMAGES
    return log


def test_the_counter_sees_the_functions_own_requests(counted):
    counts = counted.by_operation()
    # Each image's bytes are read once and its tags written once: the counter sees every client.
    assert counts["s3.GetObject"] == IMAGES
    assert counts["s3.PutObjectTagging"] == IMAGES
    assert counts["eventbridge.PutEvents"] >= 1


def test_aws_calls_per_image_stay_within_the_budget(counted):
    figures = counted.per_image(IMAGES)
    by_operation = figures["by_operation_per_image"]
    assert figures["calls_per_image"] <= CALLS_PER_IMAGE_BUDGET, by_operation
    # No operation beyond the allowed ones, none more often than allowed.
    assert set(by_operation) <= set(CALLS_PER_IMAGE_BY_OPERATION), by_operation
    for operation, calls in by_operation.items():
        assert calls <= round(CALLS_PER_IMAGE_BY_OPERATION[operation], 2), (operation, by_operation)


def test_no_transaction_and_no_separate_cache_or_record_reads(counted):
    counts = counted.by_operation()
    for operation in ("dynamodb.TransactWriteItems", "dynamodb.GetItem", "dynamodb.PutItem", "s3.HeadObject"):
        assert counts[operation] == 0, counts


def test_dynamodb_write_units_per_image_stay_within_the_budget(counted):
    figures = counted.per_image(IMAGES)
    assert 0 < figures["dynamodb_write_units_per_image"] <= WRITE_UNITS_PER_IMAGE_BUDGET, figures[
        "write_units_by_operation_per_image"
    ]
    # The feed index's entry is written once per new image (the claim puts no index keys).
    assert figures["dynamodb_index_write_units_per_image"] == 1.0


def test_every_item_written_is_one_write_unit(counted):
    """The record item included (measured by DynamoDB's sizing rules on what the requests carried)."""
    sizes = [size for table_sizes in counted.written_item_sizes().values() for size in table_sizes]
    assert sizes
    assert max(sizes) <= WRITE_UNIT_BYTES, sorted(sizes)


# --- The tag set is read only when S3 says the object has tags --------------------------------------


def test_the_emulators_get_tells_the_tag_count_only_when_there_are_tags(stack):
    """What the skipped read relies on: S3 sends x-amz-tagging-count with a GET of an object that
    has tags and leaves it out otherwise (so does the emulator, over HTTP)."""
    s3 = stack.s3
    data = jpeg_bytes(32, 32, seed=4200)
    s3.put_object(
        Bucket=stack.bucket, Key="count/tagged.jpg", Body=data, Tagging=urlencode({"a": "1", "b": "2"})
    )
    s3.put_object(Bucket=stack.bucket, Key="count/plain.jpg", Body=data)
    tagged = s3.get_object(Bucket=stack.bucket, Key="count/tagged.jpg")
    plain = s3.get_object(Bucket=stack.bucket, Key="count/plain.jpg")
    assert tagged["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "2"
    assert tagged["TagCount"] == 2
    assert "x-amz-tagging-count" not in plain["ResponseMetadata"]["HTTPHeaders"]
    assert "TagCount" not in plain
    storage = S3ObjectStorage(s3)
    for key, count in (("count/tagged.jpg", 2), ("count/plain.jpg", 0)):
        opened = storage.open(S3Location(stack.bucket, key))
        assert opened is not None
        with opened:
            assert opened.info.tag_count == count
            assert opened.info.version_id is not None


def _tag_reads(stack, keys, *, user_tags_every, seed):
    """Upload photos at `keys`, run them through on_upload (a cold start: its clients are made while
    the log is installed); the GetObjectTagging calls it made."""
    log = AwsCallLog()
    with log.installed():
        messages = upload_unlogged(log, stack, keys, seed=seed, user_tags_every=user_tags_every)
        reset_upload_processor()
        response = stack.invoke(*messages)
    assert response["batchItemFailures"] == []
    counts = log.by_operation()
    # The counter sees the function's S3 client: each object read once and tagged once.
    assert counts["s3.GetObject"] == counts["s3.PutObjectTagging"] == len(keys), counts
    return counts["s3.GetObjectTagging"]


def test_an_upload_without_tags_gets_ours_without_a_tag_set_read(stack):
    keys = ["untagged/one.jpg", "untagged/two.jpg"]
    assert _tag_reads(stack, keys, user_tags_every=0, seed=4300) == 0
    for key in keys:
        tags = stack.object_tags(key)
        assert tags
        assert all(k.startswith("autotag:") for k in tags), tags


def test_an_upload_with_tags_keeps_the_users_beside_ours(stack):
    keys = ["tagged/one.jpg", "tagged/two.jpg"]
    assert _tag_reads(stack, keys, user_tags_every=1, seed=4400) == len(keys)
    for key in keys:
        tags = stack.object_tags(key)
        assert {k: v for k, v in tags.items() if not k.startswith("autotag:")} == USER_TAGS
        assert any(k.startswith("autotag:") for k in tags), tags
