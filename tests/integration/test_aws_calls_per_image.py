"""AWS requests per uploaded image, counted by operation against the emulator, and DynamoDB write
units per image from the real item sizes (tests/support/aws_calls.py). ``make bench`` prints the
same figures (bench/bench_aws_calls.py).

Issue 14's budget: at most 6 calls per image, each operation held to its own allowance so a change
that adds a request fails here by name. Measured before the change (HEAD + GET, a GetItem and a
PutItem for the cache, the record in a transaction, one PutEvents per image): 9 calls and 17 write
units per image; now 5.2 calls and 8 write units (10-image batches, ``bench.bench_aws_calls``).
"""

from __future__ import annotations

import pytest

from tests.support.aws_calls import AwsCallLog, upload_unlogged
from tests.support.upload_stack import upload_stack

CALLS_PER_IMAGE_BUDGET = 6.0
IMAGES = 4
CALLS_PER_IMAGE_BY_OPERATION = {
    "s3.GetObject": 1.0,  # size, type and ETag from its headers: no HeadObject
    "s3.GetObjectTagging": 1.0,  # the user's tags are kept
    "s3.PutObjectTagging": 1.0,
    "dynamodb.UpdateItem": 1.0,  # the claim: each PUT processed once (returns the old record)
    "dynamodb.BatchGetItem": 1 / IMAGES,  # the batch's cache lookups, together
    "dynamodb.BatchWriteItem": 1.0,  # record + index items + cached result, one request
    "eventbridge.PutEvents": 1 / IMAGES,  # the batch's outcome events, together
}
WRITE_UNITS_PER_IMAGE_BUDGET = 8.0
"""1 (the claim, on a new image) + 2 (the record: 1.0-2.0 KB with the console feed's keys and
summary) + 4 (one per index item: the test provider returns 4 tags) + 1 (the cached result); 17
before."""


@pytest.fixture(scope="module")
def counted(aws_emulator):
    log = AwsCallLog(reader=aws_emulator.client("dynamodb"))
    with upload_stack(aws_emulator, concurrency=IMAGES) as stack, log.installed():
        messages = upload_unlogged(log, stack, [f"counted/photo {i}.jpg" for i in range(IMAGES)], seed=4100)
        log.clear()
        response = stack.invoke(*messages)
        with log.ignoring():
            log.size_updates(stack.emulator.client("dynamodb"))
            provider_calls = stack.provider.calls
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
