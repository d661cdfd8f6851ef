"""The lines the running local stack prints for failed batches, failed events and API requests."""

from __future__ import annotations

import json

from autotag.local.lambda_workers import Invocation
from autotag.local.sqs_source import BatchOutcome
from autotag.local.stack_output import batch_lines, event_failure_line, record_keys, request_line


def _s3_record(message_id: str, key: str) -> dict[str, object]:
    body = {"Records": [{"s3": {"bucket": {"name": "images"}, "object": {"key": key}}}]}
    return {"messageId": message_id, "body": json.dumps(body), "attributes": {"ApproximateReceiveCount": "2"}}


def test_record_keys_decode_notification_keys_and_read_eventbridge_details() -> None:
    assert list(record_keys(_s3_record("m", "photos/a+b%21.png"))) == ["s3://images/photos/a b!.png"]
    bridge = {"body": json.dumps({"detail": {"bucket": {"name": "b"}, "object": {"key": "k.jpg"}}})}
    assert list(record_keys(bridge)) == ["s3://b/k.jpg"]
    assert list(record_keys({"body": "not json"})) == []


def test_batch_lines_name_each_record_going_back_and_a_failed_invocation() -> None:
    failed = Invocation(request_id="r", error_type="Runtime.Error", error_message="boom\nstack")
    outcome = BatchOutcome(
        function="on_upload",
        received=2,
        failed_ids=("m1",),
        invocation=failed,
        records=(_s3_record("m1", "a.png"), _s3_record("m2", "b.png")),
    )
    lines = list(batch_lines(outcome, visibility=30, max_receives=5))
    assert len(lines) == 2
    assert "on_upload  invocation failed (Runtime.Error: boom); 2 message(s) return" in lines[0]
    assert lines[1].endswith("retry   s3://images/a.png  receive 2 of 5; back on the queue in 30 s")


def test_a_batch_without_failures_prints_nothing() -> None:
    outcome = BatchOutcome("on_upload", 1, (), Invocation(request_id="r"), (_s3_record("m", "a.png"),))
    assert list(batch_lines(outcome, visibility=30, max_receives=5)) == []


def test_event_and_request_lines() -> None:
    assert event_failure_line({"detail-type": "X"}, Invocation(request_id="r")) is None
    line = event_failure_line({"detail-type": "Tag Image Requested"}, Invocation("r", error_type="E"))
    assert line is not None
    assert "on_event  Tag Image Requested failed (E: ); retried later" in line
    request = request_line("GET", "/prod/v1/images?limit=2", 200, 12.4)
    assert request.endswith("GET /prod/v1/images -> 200  12 ms")
