import hashlib
import json
import time

import pytest
from autotag.config import AutotagConfig, ProcessingPolicy
from autotag.errors import TransientError
from autotag.eventloop import EventLoopPortal
from autotag.notifications import REPLAY_ATTRIBUTE
from autotag.retry import RetryPolicy
from autotag.tagging import TaggingService
from autotag.tagstep import TagStep
from autotag.upload import UploadProcessor

from tests.support.events import next_sequencer, s3_notification, s3_record, sqs_batch, sqs_message
from tests.support.fakes import (
    FakeTagger,
    InMemoryDeadLetterQueue,
    InMemoryImageStore,
    InMemoryObjectStorage,
    InMemoryPublisher,
)
from tests.support.images import jpeg_bytes, truncated_jpeg
from tests.support.lambda_context import lambda_context

BUCKET = "photos"


@pytest.fixture(scope="module")
def portal():
    running = EventLoopPortal()
    yield running
    running.close()


def make(portal, *, concurrency=10, delay=0.0):
    config = AutotagConfig(processing=ProcessingPolicy(concurrency=concurrency, safety_margin_seconds=1))
    objects, store, dlq, tagger = (
        InMemoryObjectStorage(),
        InMemoryImageStore(),
        InMemoryDeadLetterQueue(),
        FakeTagger(delay=delay),
    )
    tag_step = TagStep(
        config=config, tagger=tagger, store=store, portal=portal, retry_policy=RetryPolicy(max_attempts=1)
    )
    service = TaggingService(config=config, tag_step=tag_step, objects=objects, publisher=InMemoryPublisher())
    processor = UploadProcessor(service=service, config=config, dead_letters=dlq)
    return processor, objects, store, dlq, tagger


def message_for(key, version="v1", *, sequencer=""):
    """A new S3 event for `key` (a fresh sequencer), unless `sequencer` names the event."""
    return sqs_message(
        s3_notification(s3_record(BUCKET, key, etag="etag", version_id=version, sequencer=sequencer))
    )


def test_batch_runs_concurrently_within_the_bound(portal):
    for concurrency, bound in ((10, 0.6), (2, None)):
        processor, objects, _store, _, tagger = make(portal, concurrency=concurrency, delay=0.2)
        keys = [f"k{i}.jpg" for i in range(10)]
        for i, key in enumerate(keys):
            objects.add(BUCKET, key, jpeg_bytes(32, 32, seed=i), version_id="v1")
        started = time.perf_counter()
        response = processor.handle(sqs_batch(*(message_for(k) for k in keys)), lambda_context())
        elapsed = time.perf_counter() - started
        processor.close()
        assert response == {"batchItemFailures": []}
        assert tagger.calls == 10
        if bound:
            assert elapsed < bound, f"10 x 200 ms took {elapsed:.2f}s with concurrency 10"
        else:
            assert elapsed >= 5 * 0.2 * 0.9, "concurrency 2 must take about five round trips"


def test_partial_failures_name_only_retryable_messages(portal):
    processor, objects, _store, dlq, tagger = make(portal)
    good = jpeg_bytes(32, 32, seed=1)
    flaky = jpeg_bytes(32, 32, seed=2)
    objects.add(BUCKET, "good.jpg", good, version_id="v1")
    objects.add(BUCKET, "flaky.jpg", flaky, version_id="v1")
    objects.add(BUCKET, "broken.jpg", truncated_jpeg(), version_id="v1")
    tagger.fail_images({hashlib.sha256(flaky).hexdigest(): TransientError("503")})
    messages = [message_for(k) for k in ("good.jpg", "flaky.jpg", "broken.jpg")]
    garbage = sqs_message("{not json")
    response = processor.handle(sqs_batch(*messages, garbage), lambda_context())
    assert response == {"batchItemFailures": [{"itemIdentifier": messages[1]["messageId"]}]}
    assert [
        (letter.error_code, letter.attributes.get("key"))
        for letter in sorted(dlq.letters, key=lambda x: x.error_code)
    ] == [
        ("corrupt_image", "broken.jpg"),
        ("invalid_event", None),
    ]
    processor.close()


def test_multi_record_dead_letter_carries_only_the_failed_record(portal):
    processor, objects, _, dlq, _ = make(portal)
    objects.add(BUCKET, "ok.jpg", jpeg_bytes(16, 16), version_id="v1")
    objects.add(BUCKET, "bad.jpg", truncated_jpeg(), version_id="v1")
    body = s3_notification(
        s3_record(BUCKET, "ok.jpg", version_id="v1"), s3_record(BUCKET, "bad.jpg", version_id="v1")
    )
    assert processor.handle(sqs_batch(sqs_message(body)), lambda_context()) == {"batchItemFailures": []}
    (letter,) = dlq.letters
    assert json.loads(letter.body) == {"Records": [body["Records"][1]]}
    processor.close()


def test_same_object_twice_in_a_batch_is_processed_once(portal):
    processor, objects, _, _, tagger = make(portal, delay=0.1)
    objects.add(BUCKET, "twice.jpg", jpeg_bytes(16, 16), version_id="v1")
    event = next_sequencer()
    twice = [message_for("twice.jpg", sequencer=event) for _ in range(2)]
    response = processor.handle(sqs_batch(*twice), lambda_context())
    assert response == {"batchItemFailures": []}
    assert tagger.calls == 1
    assert objects.reads == 1
    processor.close()


def replayed(message, replay_id):
    attribute = {
        "stringValue": replay_id,
        "dataType": "String",
        "stringListValues": [],
        "binaryListValues": [],
    }
    return {**message, "messageAttributes": {REPLAY_ATTRIBUTE: attribute}}


def test_duplicates_are_absorbed_but_a_replay_is_processed_again(portal):
    processor, objects, store, _dlq, tagger = make(portal)
    objects.add(BUCKET, "cat.jpg", jpeg_bytes(32, 32, seed=5), version_id="v1")
    cat = message_for("cat.jpg")
    processor.handle(sqs_batch(cat), lambda_context())
    processor.handle(sqs_batch({**cat, "messageId": "another-delivery"}), lambda_context())
    assert tagger.calls == 1  # the duplicate delivery: the record already reflects its sequencer
    assert store.claims_taken == 1  # refused by the conditional claim itself, no further work

    # A deliberate replay of the same event (autotag redrive, backfill --force) is tagged again.
    response = processor.handle(sqs_batch(replayed(cat, "replay-1")), lambda_context())
    assert response == {"batchItemFailures": []}
    assert store.claims_taken == 2
    processor.close()


def test_a_terminal_failure_moved_back_from_the_dlq_is_processed_again(portal):
    """Redrive by any tool: the record stays failed for that event, so the same message (no marker,
    as ``aws sqs start-message-move-task`` moves it) is processed again."""
    processor, objects, store, dlq, tagger = make(portal)
    objects.add(BUCKET, "bad.jpg", truncated_jpeg(), version_id="v1")
    bad = message_for("bad.jpg")
    processor.handle(sqs_batch(bad), lambda_context())
    assert store.get(BUCKET, "bad.jpg").status.value == "failed"
    (letter,) = dlq.letters

    objects.add(BUCKET, "bad.jpg", jpeg_bytes(32, 32, seed=6), version_id="v1")  # the cause is fixed
    moved = sqs_message(letter.body, receive_count=1)
    assert processor.handle(sqs_batch(moved), lambda_context()) == {"batchItemFailures": []}
    assert store.get(BUCKET, "bad.jpg").status.value == "tagged"
    assert tagger.calls == 1
    # ...and a duplicate delivery of that now successful event is processed once.
    processor.handle(sqs_batch(sqs_message(letter.body)), lambda_context())
    assert tagger.calls == 1
    assert len(dlq.letters) == 1
    processor.close()


def test_an_older_event_never_overwrites_a_newer_record(portal):
    processor, objects, store, _dlq, tagger = make(portal)
    objects.add(BUCKET, "aba.jpg", jpeg_bytes(32, 32, seed=7), version_id="v1", etag="a")
    first = message_for("aba.jpg", "v1")
    objects.add(BUCKET, "aba.jpg", jpeg_bytes(32, 32, seed=8), version_id="v2", etag="b")
    second = message_for("aba.jpg", "v2")
    processor.handle(sqs_batch(second), lambda_context())
    assert store.get(BUCKET, "aba.jpg").version_id == "v2"
    # v1's notification arrives late (S3 does not deliver in order): acknowledged, nothing changes.
    assert processor.handle(sqs_batch(first), lambda_context()) == {"batchItemFailures": []}
    assert store.get(BUCKET, "aba.jpg").version_id == "v2"
    assert tagger.calls == 1
    processor.close()
