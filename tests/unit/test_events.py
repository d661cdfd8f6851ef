import json

import jsonschema
import pytest
from autotag.dlq import DeadLetter, message_attributes
from autotag.events import SCHEMA_FILES, ImageTaggedDetail, ImageTaggingFailedDetail, render_schema
from autotag.models import ProviderOutcome, ProviderStatus, Tag
from autotag.store.base import ImageRecord, ImageStatus, S3TagWrite

from tests.support.events import EVENTS_DIR, load_event, load_schema


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_committed_schemas_match_the_models(name):
    committed = (EVENTS_DIR / "schemas" / name).read_text(encoding="utf-8")
    assert committed == render_schema(SCHEMA_FILES[name]), (
        "regenerate: python -m autotag.events events/schemas"
    )


def _record(**fields):
    values = {
        "bucket": "b",
        "key": "k.jpg",
        "version_id": None,
        "status": ImageStatus.TAGGED,
        "tags": tuple(Tag(name=f"t{i}", confidence=0.5, provider="p") for i in range(150)),
        "providers": (ProviderStatus(provider="p", status=ProviderOutcome.OK, latency_ms=3.0),),
        "s3_tags": S3TagWrite(written={"autotag:t0": "0.50"}, reason="1 of 10"),
    }
    values.update(fields)
    return ImageRecord(**values)


def test_tagged_detail_is_capped_and_valid():
    detail = json.loads(ImageTaggedDetail.from_record(_record()).model_dump_json())
    jsonschema.validate(detail, load_schema("image_tagged"))
    assert len(detail["tags"]) == 100
    assert detail["tag_count"] == 150
    assert detail["s3_tags_written"] == ["autotag:t0"]


def test_failed_detail_is_valid_and_schema_rejects_missing_code():
    record = _record(status=ImageStatus.FAILED, tags=(), error_code="corrupt_image", error="truncated")
    detail = json.loads(ImageTaggingFailedDetail.from_record(record).model_dump_json())
    schema = load_schema("image_tagging_failed")
    jsonschema.validate(detail, schema)
    del detail["error_code"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(detail, schema)


def test_dead_letter_attributes_are_sqs_safe_and_bounded():
    letter = DeadLetter(
        body="{}", error_code="corrupt_image", reason="bad\x00" + "x" * 5000, attributes={"key": "a\x01b"}
    )
    attributes = message_attributes(letter)
    assert attributes["error_code"] == {"DataType": "String", "StringValue": "corrupt_image"}
    assert attributes["error_reason"]["StringValue"].startswith("bad?")
    assert len(attributes["error_reason"]["StringValue"]) == 1024
    assert attributes["key"]["StringValue"] == "a?b"


def test_tagged_detail_reports_removed_and_dropped_object_tags():
    from autotag.store.base import DroppedTag, DroppedTagReason

    record = ImageRecord(
        bucket="b",
        key="k.jpg",
        status=ImageStatus.TAGGED,
        tags=(Tag(name="dog", confidence=0.9, provider="fake"),),
        s3_tags=S3TagWrite(
            written={"autotag:dog": "0.90"},
            removed=("autotag:cat",),
            dropped=(DroppedTag(key="autotag:pet", value="0.80", reason=DroppedTagReason.TAG_LIMIT),),
        ),
    )
    detail = json.loads(ImageTaggedDetail.from_record(record).model_dump_json())
    jsonschema.validate(detail, load_schema("image_tagged"))
    assert detail["s3_tags_removed"] == ["autotag:cat"]
    assert detail["s3_tags_dropped"] == [{"key": "autotag:pet", "value": "0.80", "reason": "tag_limit"}]


def test_sample_events_match_the_documented_schema_and_models():
    schema = load_schema("tag_image_requested")
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(load_event("eventbridge_tag_image_requested")["detail"])
    from autotag.subscriber import tag_image_requested_schema

    assert schema == tag_image_requested_schema(), "regenerate with: python -m autotag.subscriber"
