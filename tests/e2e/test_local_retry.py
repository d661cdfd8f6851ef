"""Failures on the local stack: a provider down for the first delivery is retried by SQS
redelivery; one down for every delivery lands in the DLQ, and `autotag redrive` brings it back.

The provider is the imagedescriber double on 127.0.0.1 (its documented wire format); the stack's
config gives the queue a short visibility timeout so a redelivery takes seconds.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from urllib.parse import unquote_plus

import pytest

from tests.e2e.conftest import FAST_CONFIG, RunningStack, png, start_stack, wait_for
from tests.support.provider_servers import Faults, ImageDescriberServer

pytestmark = pytest.mark.e2e

API_KEY = "e2e-imagedescriber-key"
ALL_FAIL = Faults(error_rate=1.0)


@pytest.fixture(scope="module")
def provider() -> Iterator[ImageDescriberServer]:
    with ImageDescriberServer(api_key=API_KEY, tags=("sunset", "beach", "sea"), credits=10_000) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, provider: ImageDescriberServer) -> Iterator[RunningStack]:
    config = copy.deepcopy(FAST_CONFIG)
    # One HTTP attempt per delivery: the retries under test are SQS's.
    config["tagging"]["providers"] = [{"name": "imagedescriber", "endpoint": provider.url, "max_attempts": 1}]
    config["tagging"]["cache"] = {"enabled": False}
    running = start_stack(
        tmp_path_factory.mktemp("retry"),
        config,
        env={"AUTOTAG_SECRET_IMAGEDESCRIBER": json.dumps({"api_key": API_KEY})},
        workers=1,
    )
    yield running
    assert running.stop() == 0


def dlq_keys(stack: RunningStack) -> list[str]:
    """Keys of the objects in the tag DLQ (peeked: made visible again at once)."""
    sqs = stack.client("sqs")
    url = stack.state.resources.dlq_url
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    )
    keys = []
    for message in messages:
        for record in json.loads(message["Body"]).get("Records", []):
            keys.append(unquote_plus(record["s3"]["object"]["key"]))
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return keys


def test_provider_down_for_the_first_delivery_is_tagged_after_redelivery(
    stack: RunningStack, provider: ImageDescriberServer
) -> None:
    provider.faults = ALL_FAIL
    before = provider.calls
    key = "photos/retry-me.png"
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=png((200, 90, 40)))

    wait_for(
        lambda: "retry   s3://autotag-local-images/photos/retry-me.png  receive 1 of 2" in stack.log(),
        timeout=20,
        what="the first delivery to fail",
    )
    failed_calls = provider.calls - before
    assert failed_calls >= 1
    assert stack.store().get(stack.bucket, key) is None  # nothing stored for a retryable failure
    provider.faults = Faults()  # the provider is back before the message becomes visible again

    record = stack.wait_record(key, timeout=40)
    assert [t.name for t in record.tags] == ["sunset", "beach", "sea"]
    assert provider.calls - before == failed_calls + 1  # the redelivery's one successful call
    assert "photos/retry-me.png" not in dlq_keys(stack)


def test_dead_lettered_after_max_receives_then_redriven(
    stack: RunningStack, provider: ImageDescriberServer
) -> None:
    provider.faults = ALL_FAIL
    key = "photos/dead-letter-me.png"
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=png((20, 60, 160)))

    # max_receive_count = 2: two failed deliveries, then SQS moves the message to the DLQ.
    wait_for(lambda: key in dlq_keys(stack), timeout=90, interval=1, what="the message in the DLQ")
    assert stack.store().get(stack.bucket, key) is None

    provider.faults = Faults()  # the cause is fixed
    dry = stack.cli("redrive", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would have moved 1 message(s) back (retries_exhausted: 1)" in dry.stdout
    assert key in dlq_keys(stack)

    other_code = stack.cli("redrive", "--code", "corrupt_image")
    assert "moved 0 message(s) back; left 1 in the DLQ (retries_exhausted: 1)" in other_code.stdout

    moved = stack.cli("redrive")
    assert moved.returncode == 0, moved.stderr
    assert "moved 1 message(s) back (retries_exhausted: 1)" in moved.stdout

    record = stack.wait_record(key, timeout=30)
    assert record.tags
    assert dlq_keys(stack) == []
