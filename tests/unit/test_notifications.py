"""S3 event notifications: parsing what on_upload receives, the body a backfill sends, and the one
definition of an event's identity."""

import jmespath
import pytest
from autotag.config import ObjectFilters
from autotag.errors import BadInputError, InvalidEventError
from autotag.notifications import (
    BACKFILL_CONFIGURATION_ID,
    EVENT_REF_JMESPATH,
    event_ref,
    notification_body,
    parse_s3_notification,
)

from tests.support.events import load_event, s3_notification, s3_record, s3_test_event


def test_sample_put_notification_decodes_the_key():
    parsed = parse_s3_notification(load_event("s3_put_notification"), ObjectFilters())
    (obj,) = parsed.objects
    assert obj.key == "uploads/2025/Summer Holiday/chat noir \u2013 été 😺.jpg"
    assert obj.version_id == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert obj.etag == "9b2cf535f27731c974343645a3985328"
    assert obj.sequencer == "0055AED6DCD90281E5"
    assert obj.event_ref == {"bucket": obj.bucket, "key": obj.key, "event": "seq:" + "0" * 46 + obj.sequencer}


def test_each_put_is_its_own_event_and_the_etag_is_only_a_fallback():
    same_bytes = [s3_record("b", "a+b.jpg", etag="e1") for _ in range(2)]
    first, second = (
        parse_s3_notification(s3_notification(r), ObjectFilters()).objects[0] for r in same_bytes
    )
    assert first.key == "a+b.jpg"
    assert first.event_ref != second.event_ref  # the same bytes uploaded twice: two events
    unsequenced = s3_record("b", "a.jpg", etag="e1", sequencer=None)
    (obj,) = parse_s3_notification(s3_notification(unsequenced), ObjectFilters()).objects
    assert obj.event_ref["event"] == "etag:e1"


def test_a_malformed_sequencer_is_an_invalid_event():
    with pytest.raises(BadInputError) as caught:
        parse_s3_notification(s3_notification(s3_record("b", "a.jpg", sequencer="not-hex")), ObjectFilters())
    assert caught.value.code == "invalid_event"


def test_test_event_is_ignored():
    parsed = parse_s3_notification(s3_test_event("b"), ObjectFilters())
    assert parsed.test_event
    assert parsed.objects == []


def test_filters_and_event_names_exclude_records():
    filters = ObjectFilters(include_prefixes=("in/",))
    body = s3_notification(
        s3_record("b", "in/ok.JPG"),
        s3_record("b", "in/notes.txt"),
        s3_record("b", "out/x.jpg"),
        s3_record("b", "in/removed.jpg", event_name="ObjectRemoved:Delete"),
    )
    parsed = parse_s3_notification(body, filters)
    assert [o.key for o in parsed.objects] == ["in/ok.JPG"]
    assert len(parsed.ignored) == 3


def test_mixed_case_suffixes_are_accepted_and_other_files_skipped_before_any_read():
    # S3 delivers every object under the prefix (suffixes are not in the subscription): the
    # function keeps images whatever the case of their extension and drops the rest unread.
    body = s3_notification(
        s3_record("b", "in/IMG_0001.Jpg"),
        s3_record("b", "in/scan.TiFF"),
        s3_record("b", "in/clip.mov"),
    )
    parsed = parse_s3_notification(body, ObjectFilters(include_prefixes=("in/",)))
    assert [o.key for o in parsed.objects] == ["in/IMG_0001.Jpg", "in/scan.TiFF"]
    assert parsed.ignored == [("s3://b/in/clip.mov", "excluded by the object filters")]


@pytest.mark.parametrize("body", ["not json", "[]", '{"Records": [{"eventName": "x"}]}', '{"foo": 1}'])
def test_garbage_is_an_invalid_event(body):
    with pytest.raises(BadInputError) as caught:
        parse_s3_notification(body, ObjectFilters())
    assert caught.value.code == "invalid_event"


def test_a_backfill_notification_parses_as_the_object_it_names():
    body = notification_body(
        "b", "in/Summer Holiday+1.jpg", size=12, etag='"e1"', region="eu-west-1", version_id="v9"
    )
    (obj,) = parse_s3_notification(body, ObjectFilters()).objects
    assert (obj.bucket, obj.key, obj.version_id, obj.etag, obj.size) == (
        "b",
        "in/Summer Holiday+1.jpg",
        "v9",
        "e1",
        12,
    )
    assert obj.event_name == "ObjectCreated:Put"
    assert obj.raw["s3"]["configurationId"] == BACKFILL_CONFIGURATION_ID
    assert obj.event_ref["event"] == "v9"  # no sequencer: the version id tells the events apart


def test_the_idempotency_expression_reads_an_event_ref():
    ref = event_ref("b", "k.jpg", "event:123")
    assert jmespath.search(EVENT_REF_JMESPATH, ref) == ["b", "k.jpg", "event:123"]


def test_invalid_events_are_typed():
    with pytest.raises(InvalidEventError):
        parse_s3_notification("not json", ObjectFilters())
