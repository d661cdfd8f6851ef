"""on_event's accepted events: told apart by ``source``, checked against the names in autotag.events."""

from __future__ import annotations

import pytest
from autotag.errors import InvalidEventError
from autotag.events import EVENT_SOURCE, OBJECT_CREATED, S3_EVENT_SOURCE, TAG_IMAGE_REQUESTED
from autotag.subscriber import S3ObjectCreatedEvent, TagImageRequestedEvent, parse_bus_event

from tests.support.events import load_event


def test_each_sample_parses_as_its_model_with_the_names_of_autotag_events():
    requested = parse_bus_event(load_event("eventbridge_tag_image_requested"))
    assert isinstance(requested, TagImageRequestedEvent)
    assert (requested.source, requested.detail_type) == (EVENT_SOURCE, TAG_IMAGE_REQUESTED)
    created = parse_bus_event(load_event("eventbridge_s3_object_created"))
    assert isinstance(created, S3ObjectCreatedEvent)
    assert (created.source, created.detail_type) == (S3_EVENT_SOURCE, OBJECT_CREATED)


@pytest.mark.parametrize(
    ("sample", "change", "reason"),
    [
        (
            "eventbridge_tag_image_requested",
            {"source": "someone.else"},
            "source should be 'autotag' or 'aws.s3'",
        ),
        ("eventbridge_tag_image_requested", {"source": None}, "source should be 'autotag' or 'aws.s3'"),
        (
            "eventbridge_tag_image_requested",
            {"detail-type": OBJECT_CREATED},
            "detail-type: Input should be 'Tag Image Requested'",
        ),
        (
            "eventbridge_s3_object_created",
            {"detail-type": TAG_IMAGE_REQUESTED},
            "detail-type: Input should be 'Object Created'",
        ),
    ],
    ids=["unknown-source", "no-source", "requested-wrong-type", "created-wrong-type"],
)
def test_other_events_are_refused_with_the_reason(sample, change, reason):
    event = {**load_event(sample), **change}
    if change.get("source", "") is None:
        del event["source"]
    with pytest.raises(InvalidEventError) as caught:
        parse_bus_event(event)
    assert "not a Tag Image Requested or S3 Object Created event" in caught.value.message
    assert reason in caught.value.message
