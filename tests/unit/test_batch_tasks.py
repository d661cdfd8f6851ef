"""on_batch's domain: the documented invocation schema in, the documented response out, and each
outcome's resultCode chosen from the error taxonomy."""

from __future__ import annotations

import inspect
import json
from typing import Any
from urllib.parse import quote

import pytest
from autotag import errors
from autotag.batch_tasks import (
    TREAT_MISSING_KEYS_AS,
    BatchTaskProcessor,
    JobArguments,
    ResultCode,
    aws_error,
    result_code_for,
)
from autotag.config import ObjectFilters
from autotag.notifications import BACKFILL_CONFIGURATION_ID, REPLAY_ATTRIBUTE
from autotag.store.base import ImageRecord, ImageStatus
from botocore.exceptions import ClientError, EndpointConnectionError

from tests.support.errors import example_error
from tests.support.fakes import InMemoryImageStore, InMemoryObjectStorage

BUCKET = "images"


class FakeQueue:
    def __init__(self, error: BaseException | None = None) -> None:
        self.sent: list[tuple[dict[str, Any], dict[str, dict[str, str]]]] = []
        self.error = error

    def send(self, body: str, attributes: dict[str, dict[str, str]]) -> str:
        if self.error is not None:
            raise self.error
        self.sent.append((json.loads(body), attributes))
        return f"m-{len(self.sent)}"


class BrokenStore(InMemoryImageStore):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def get(self, bucket: str, key: str) -> ImageRecord | None:
        raise self.error


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "Operation",
    )


def processor(
    *, store=None, queue=None, filters=None
) -> tuple[BatchTaskProcessor, InMemoryObjectStorage, Any]:
    objects = InMemoryObjectStorage()
    queue = queue or FakeQueue()
    return (
        BatchTaskProcessor(
            filters=filters or ObjectFilters(),
            store=store or InMemoryImageStore(),
            objects=objects,
            queue=queue,
            images_bucket=BUCKET,
            region="eu-west-1",
        ),
        objects,
        queue,
    )


def invocation(
    *keys: str, version: str = "2.0", arguments: dict[str, str] | None = None, **task: Any
) -> dict:
    tasks = []
    for index, key in enumerate(keys):
        entry = {"taskId": f"t{index}", "s3Key": quote(key, safe="/"), "s3VersionId": None, **task}
        if version == "2.0":
            entry.setdefault("s3Bucket", BUCKET)
        else:
            entry.setdefault("s3BucketArn", f"arn:aws:s3:::{BUCKET}")
        tasks.append(entry)
    job: dict[str, Any] = {"id": "job-1"}
    if version == "2.0":
        job["userArguments"] = arguments if arguments is not None else {"force": "false"}
    return {"invocationSchemaVersion": version, "invocationId": "inv-1", "job": job, "tasks": tasks}


def only_result(response: dict) -> dict:
    [result] = response["results"]
    return result


def test_response_echoes_the_invocation_and_answers_every_task():
    handler, objects, _queue = processor()
    objects.add(BUCKET, "a.jpg", b"x", etag="e1")
    response = handler.handle(invocation("a.jpg"))
    assert set(response) == {"invocationSchemaVersion", "treatMissingKeysAs", "invocationId", "results"}
    assert response["invocationSchemaVersion"] == "2.0"
    assert response["invocationId"] == "inv-1"
    assert response["treatMissingKeysAs"] == TREAT_MISSING_KEYS_AS == "PermanentFailure"
    result = only_result(response)
    assert set(result) == {"taskId", "resultCode", "resultString"}
    assert result["taskId"] == "t0"
    assert result["resultCode"] == "Succeeded"
    assert result["resultString"] == "enqueued for tagging: message m-1"


def test_url_encoded_key_and_version_reach_the_notification_decoded():
    handler, objects, queue = processor()
    key = "holiday photos/café + beach.jpg"
    objects.add(BUCKET, key, b"abc", etag="e2", version_id="v7")
    response = handler.handle(invocation(key, s3VersionId="v7"))
    assert only_result(response)["resultCode"] == "Succeeded"
    [(body, attributes)] = queue.sent
    [record] = body["Records"]
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["awsRegion"] == "eu-west-1"
    assert record["s3"]["configurationId"] == BACKFILL_CONFIGURATION_ID
    obj = record["s3"]["object"]
    from urllib.parse import unquote_plus

    assert unquote_plus(obj["key"]) == key
    assert obj["versionId"] == "v7"
    assert obj["eTag"] == "e2"
    assert obj["size"] == 3
    assert attributes == {"origin": {"DataType": "String", "StringValue": "backfill"}}


def test_plus_in_an_event_key_is_a_space():
    handler, objects, queue = processor()
    objects.add(BUCKET, "a b.jpg", b"x")
    event = invocation("x.jpg")
    event["tasks"][0]["s3Key"] = "a+b.jpg"
    assert only_result(handler.handle(event))["resultCode"] == "Succeeded"
    assert len(queue.sent) == 1


def test_schema_1_0_with_a_bucket_arn_is_answered_in_1_0():
    handler, objects, _queue = processor()
    objects.add(BUCKET, "a.jpg", b"x")
    response = handler.handle(invocation("a.jpg", version="1.0"))
    assert response["invocationSchemaVersion"] == "1.0"
    assert only_result(response)["resultCode"] == "Succeeded"


def test_excluded_keys_succeed_without_being_enqueued():
    handler, objects, queue = processor(filters=ObjectFilters(exclude_prefixes=("tmp/",)))
    objects.add(BUCKET, "tmp/a.jpg", b"x")
    objects.add(BUCKET, "notes.txt", b"x")
    response = handler.handle(invocation("tmp/a.jpg", "notes.txt"))
    for result in response["results"]:
        assert result["resultCode"] == "Succeeded"
        assert "excluded by the filters" in result["resultString"]
    assert queue.sent == []


def _tagged(store: InMemoryImageStore, key: str, etag: str) -> None:
    store.put(ImageRecord(bucket=BUCKET, key=key, etag=etag, status=ImageStatus.TAGGED))


def test_already_tagged_at_the_current_etag_is_skipped_unless_forced():
    store = InMemoryImageStore()
    _tagged(store, "a.jpg", "same")
    _tagged(store, "b.jpg", "older")
    handler, objects, queue = processor(store=store)
    objects.add(BUCKET, "a.jpg", b"x", etag="same")
    objects.add(BUCKET, "b.jpg", b"x", etag="newer")
    results = handler.handle(invocation("a.jpg", "b.jpg"))["results"]
    assert [r["resultCode"] for r in results] == ["Succeeded", "Succeeded"]
    assert results[0]["resultString"].startswith("skipped: already processed at ETag same (status tagged)")
    assert results[1]["resultString"].startswith("enqueued")
    assert [unquote(body) for body in queue.sent] == ["b.jpg"]

    forced = handler.handle(invocation("a.jpg", arguments={"force": "true", "replayId": "run-9"}))
    assert only_result(forced)["resultString"] == "enqueued for tagging (forced): message m-2"
    _, attributes = queue.sent[-1]
    assert attributes[REPLAY_ATTRIBUTE] == {"DataType": "String", "StringValue": "run-9"}


def unquote(sent: tuple[dict[str, Any], Any]) -> str:
    from urllib.parse import unquote_plus

    return unquote_plus(sent[0]["Records"][0]["s3"]["object"]["key"])


def test_a_forced_job_without_replay_id_replays_under_the_job_id():
    handler, objects, queue = processor()
    objects.add(BUCKET, "a.jpg", b"x")
    handler.handle(invocation("a.jpg", arguments={"force": "true"}))
    assert queue.sent[0][1][REPLAY_ATTRIBUTE]["StringValue"] == "job-1"


def test_missing_object_is_a_permanent_failure_that_says_so():
    handler, _objects, _queue = processor()
    result = only_result(handler.handle(invocation("gone.jpg")))
    assert result["resultCode"] == "PermanentFailure"
    assert result["resultString"] == "not_found: s3://images/gone.jpg no longer exists"


def test_version_id_s3_refuses_is_permanent():
    handler, objects, _queue = processor()
    objects.add(BUCKET, "a.jpg", b"x")  # unversioned: a version id is refused
    result = only_result(handler.handle(invocation("a.jpg", s3VersionId="bogus")))
    assert result["resultCode"] == "PermanentFailure"
    assert result["resultString"].startswith("invalid_s3_reference: ")


def test_another_bucket_is_refused_permanently():
    handler, _objects, queue = processor()
    result = only_result(handler.handle(invocation("a.jpg", s3Bucket="someone-elses")))
    assert result["resultCode"] == "PermanentFailure"
    assert "is not the watched bucket images" in result["resultString"]
    assert queue.sent == []


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (client_error("AWS.SimpleQueueService.RequestThrottled", 400), "TemporaryFailure", "throttled: "),
        (client_error("InternalError", 500), "TemporaryFailure", "transient: "),
        (client_error("ServiceUnavailable", 503), "TemporaryFailure", "transient: "),
        (EndpointConnectionError(endpoint_url="https://sqs"), "TemporaryFailure", "transient: "),
        (
            client_error("AccessDenied", 403),
            "PermanentFailure",
            "aws_refused: enqueuing s3://images/a.jpg: AccessDenied",
        ),
        (client_error("AWS.SimpleQueueService.NonExistentQueue", 400), "PermanentFailure", "aws_refused: "),
    ],
)
def test_queue_errors_map_to_result_codes(error, code, text):
    handler, objects, _queue = processor(queue=FakeQueue(error))
    objects.add(BUCKET, "a.jpg", b"x")
    result = only_result(handler.handle(invocation("a.jpg")))
    assert result["resultCode"] == code
    assert result["resultString"].startswith(text)


def test_store_throttling_is_temporary():
    store = BrokenStore(client_error("ProvisionedThroughputExceededException", 400))
    handler, objects, _queue = processor(store=store)
    objects.add(BUCKET, "a.jpg", b"x")
    result = only_result(handler.handle(invocation("a.jpg")))
    assert result["resultCode"] == "TemporaryFailure"
    assert result["resultString"].startswith("throttled: reading the record of s3://images/a.jpg")


def test_unexpected_exception_is_permanent_and_named():
    handler, objects, _queue = processor(queue=FakeQueue(ValueError("boom")))
    objects.add(BUCKET, "a.jpg", b"x")
    result = only_result(handler.handle(invocation("a.jpg")))
    assert result == {
        "taskId": "t0",
        "resultCode": "PermanentFailure",
        "resultString": "internal_error: enqueuing s3://images/a.jpg: unexpected ValueError",
    }


@pytest.mark.parametrize("force", ["yes", "1", ""])
def test_invalid_user_arguments_fail_every_task_permanently(force):
    handler, objects, queue = processor()
    objects.add(BUCKET, "a.jpg", b"x")
    result = only_result(handler.handle(invocation("a.jpg", arguments={"force": force})))
    assert result["resultCode"] == "PermanentFailure"
    assert result["resultString"].startswith("bad_input: user argument 'force'")
    assert queue.sent == []


def test_unknown_schema_version_fails_its_tasks():
    handler, _objects, _queue = processor()
    event = invocation("a.jpg")
    event["invocationSchemaVersion"] = "3.0"
    response = handler.handle(event)
    assert response["invocationSchemaVersion"] == "3.0"
    assert only_result(response)["resultCode"] == "PermanentFailure"


def test_malformed_task_is_answered_by_task_id():
    handler, _objects, _queue = processor()
    event = invocation("a.jpg")
    del event["tasks"][0]["s3Key"]
    result = only_result(handler.handle(event))
    assert result["taskId"] == "t0"
    assert result["resultCode"] == "PermanentFailure"
    assert "tasks.0.s3Key" in result["resultString"]


def test_an_event_with_nothing_to_answer_is_an_error():
    handler, _, _ = processor()
    with pytest.raises(errors.BadInputError):
        handler.handle({"hello": "world"})


def test_result_strings_are_bounded():
    handler, _objects, _queue = processor()
    long_key = "k" * 1100 + ".jpg"
    result = only_result(handler.handle(invocation(long_key)))
    assert len(result["resultString"]) <= 1000


def _error_classes() -> list[type[errors.AutotagError]]:
    return [
        cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, errors.AutotagError)
    ]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_has_the_result_code_its_retryability_says(cls):
    error = example_error(cls)
    expected = ResultCode.TEMPORARY_FAILURE if error.retryable else ResultCode.PERMANENT_FAILURE
    assert result_code_for(error) is expected


def test_known_retryable_and_terminal_classes():
    assert result_code_for(errors.ThrottledError("x")) is ResultCode.TEMPORARY_FAILURE
    assert result_code_for(errors.ProviderTimeoutError("x")) is ResultCode.TEMPORARY_FAILURE
    assert result_code_for(errors.NotFoundError("x")) is ResultCode.PERMANENT_FAILURE
    assert result_code_for(errors.AuthError("x")) is ResultCode.PERMANENT_FAILURE
    assert result_code_for(errors.CorruptImageError("x")) is ResultCode.PERMANENT_FAILURE


def test_aws_error_keeps_our_own_errors():
    original = errors.QuotaError("out of credits")
    assert aws_error(original, "x") is original


def test_job_arguments_round_trip():
    arguments = JobArguments(force=True, replay_id="r1")
    assert JobArguments.parse(arguments.user_arguments()) == arguments
    assert JobArguments.parse(None) == JobArguments()


def test_the_sample_event_in_events_is_answered():
    from pathlib import Path

    sample = json.loads(
        (Path(__file__).resolve().parents[2] / "events" / "s3_batch_invocation.json").read_text(
            encoding="utf-8"
        )
    )
    objects = InMemoryObjectStorage()
    queue = FakeQueue()
    handler = BatchTaskProcessor(
        filters=ObjectFilters(),
        store=InMemoryImageStore(),
        objects=objects,
        queue=queue,
        images_bucket="autotag-local-images",
        region="us-east-1",
    )
    objects.add("autotag-local-images", "photos/summer 2019/beach+1.jpg", b"x")
    response = handler.handle(sample)
    assert response["invocationId"] == sample["invocationId"]
    assert only_result(response)["resultCode"] == "Succeeded"


def test_keys_outside_the_job_prefix_are_not_tagged():
    handler, objects, queue = processor()
    objects.add(BUCKET, "archive/a.jpg", b"x")
    objects.add(BUCKET, "other/b.jpg", b"x")
    results = handler.handle(invocation("archive/a.jpg", "other/b.jpg", arguments={"prefix": "archive/"}))[
        "results"
    ]
    assert [r["resultCode"] for r in results] == ["Succeeded", "Succeeded"]
    assert results[0]["resultString"].startswith("enqueued")
    assert results[1]["resultString"] == "not tagged: s3://images/other/b.jpg is outside the prefix archive/"
    assert len(queue.sent) == 1
