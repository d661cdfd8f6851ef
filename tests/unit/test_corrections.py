"""Corrections over the real pipeline with in-memory fakes: people's decisions win over provider
output on the object's S3 tags, in the index and in events, and survive re-tagging."""

from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from autotag.corrections import CorrectionRequest, CorrectionService, actor_of, reconcile_object_tags
from autotag.decisions import (
    MAX_CORRECTION_LOG,
    CorrectionAction,
    TagCorrections,
    TagDecision,
    effective_tags,
)
from autotag.errors import ImageNotTaggedError, NotFoundError
from autotag.eventloop import EventLoopPortal
from autotag.events import IMAGE_TAGGED, IMAGE_TAGS_CORRECTED
from autotag.image import S3Location
from autotag.models import BoundingBox, Tag
from autotag.s3tags import ObjectTagWriter
from autotag.store.base import ImageStatus

from tests.support.events import load_schema
from tests.support.images import jpeg_bytes, truncated_jpeg
from tests.unit.test_tagging import BUCKET, USER_TAGS, Harness

AT = datetime(2025, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def portal():
    running = EventLoopPortal()
    yield running
    running.close()


@pytest.fixture
def h(portal):
    return Harness(portal)


def corrections_of(h):
    return CorrectionService(
        store=h.store, tag_writer=ObjectTagWriter(h.objects), policy=h.config.s3_tags, publisher=h.publisher
    )


def correct(h, key, *, add=(), remove=(), by="apikey:abc"):
    return corrections_of(h).correct(
        BUCKET, key, CorrectionRequest(add=tuple(add), remove=tuple(remove), by=by, request_id="r1")
    )


def object_tags(h, key):
    return h.objects.objects[(BUCKET, key)].tags


def test_correction_updates_s3_tags_index_and_announces(h):
    h.objects.add(BUCKET, "a.jpg", jpeg_bytes(64, 48), version_id="v1", tags=dict(USER_TAGS))
    h.process("a.jpg")
    outcome = correct(h, "a.jpg", add=["Golden retriever"], remove=["grass"])
    assert object_tags(h, "a.jpg") == {
        **USER_TAGS,
        "autotag:Golden retriever": "1.00",
        "autotag:dog": "0.90",
        "autotag:pet": "0.80",
    }
    assert outcome.s3_tags.removed == ("autotag:grass",)
    assert outcome.s3_tags.user_tags_kept == 3
    assert [hit.key for hit in h.store.images_with_tag("golden retriever").items] == ["a.jpg"]
    assert h.store.images_with_tag("grass").items == []
    (event,) = h.publisher.of_type(IMAGE_TAGS_CORRECTED)
    jsonschema.validate(event, load_schema("image_tags_corrected"))
    assert (event["added"], event["removed"], event["corrected_by"]) == (
        ["Golden retriever"],
        ["grass"],
        "apikey:abc",
    )
    assert event["corrections_version"] == 1
    assert [t["name"] for t in event["tags"]] == ["Golden retriever", "dog", "pet"]
    assert event["tags"][0]["provider"] == "person"


def test_correction_survives_retagging_the_same_bytes(h):
    data = jpeg_bytes(64, 48)
    h.objects.add(BUCKET, "b.jpg", data, version_id="v1")
    h.process("b.jpg")
    correct(h, "b.jpg", add=["sunset"], remove=["dog"])
    # A re-upload of the same bytes (new version), then a redrive: both re-run the pipeline.
    h.objects.add(BUCKET, "b.jpg", data, version_id="v2")
    record = h.process("b.jpg", version_id="v2")
    record = h.process("b.jpg", version_id="v2")
    assert [t.name for t in record.tags] == ["dog", "pet", "grass"]  # the provider said so
    stored = h.store.get(BUCKET, "b.jpg")
    assert [t.name for t in stored.tags_in_force] == ["sunset", "pet", "grass"]
    assert object_tags(h, "b.jpg") == {
        "autotag:sunset": "1.00",
        "autotag:pet": "0.80",
        "autotag:grass": "0.40",
    }
    assert h.store.images_with_tag("dog").items == []
    tagged = h.publisher.of_type(IMAGE_TAGGED)[-1]
    assert [t["name"] for t in tagged["tags"]] == ["sunset", "pet", "grass"]
    assert h.tagger.calls == 1  # the re-tags hit the content-hash cache; corrections still applied


def test_new_bytes_under_the_same_key_are_a_new_image(h):
    h.objects.add(BUCKET, "c.jpg", jpeg_bytes(64, 48), version_id="v1")
    h.process("c.jpg")
    correct(h, "c.jpg", remove=["dog"])
    h.objects.add(BUCKET, "c.jpg", jpeg_bytes(80, 60), version_id="v2")
    h.process("c.jpg", version_id="v2")
    assert "autotag:dog" in object_tags(h, "c.jpg")
    assert len(h.store.get(BUCKET, "c.jpg").corrections.log) == 1


def test_failed_or_unknown_images_cannot_be_corrected(h):
    h.objects.add(BUCKET, "bad.jpg", truncated_jpeg(), version_id="v1")
    with pytest.raises(Exception):  # noqa: B017 - terminal failure, recorded as failed
        h.process("bad.jpg")
    assert h.store.get(BUCKET, "bad.jpg").status is ImageStatus.FAILED
    with pytest.raises(ImageNotTaggedError):
        correct(h, "bad.jpg", add=["x"])
    with pytest.raises(NotFoundError):
        correct(h, "missing.jpg", add=["x"])
    assert h.publisher.of_type(IMAGE_TAGS_CORRECTED) == []


def test_reconcile_rewrites_object_tags_when_a_newer_decision_landed(h):
    h.objects.add(BUCKET, "d.jpg", jpeg_bytes(64, 48), version_id="v1")
    old = h.process("d.jpg")
    correct(h, "d.jpg", remove=["dog"])
    assert "autotag:dog" not in object_tags(h, "d.jpg")
    # A writer that saw the record before the correction writes its (older) view last...
    writer = ObjectTagWriter(h.objects)
    location = S3Location(BUCKET, "d.jpg", "v1")
    stale = writer.apply(location, old.tags, h.config.s3_tags, owned=old.s3_tags.written)
    assert object_tags(h, "d.jpg")["autotag:dog"] == "0.90"
    # ...then reconciles: the stored decisions are back on the object.
    reconcile_object_tags(
        h.store, writer, location, h.config.s3_tags, old, owned=old.s3_tags.written, last_write=stale
    )
    assert "autotag:dog" not in object_tags(h, "d.jpg")
    assert object_tags(h, "d.jpg") == {"autotag:pet": "0.80", "autotag:grass": "0.40"}


def test_a_tag_people_added_is_removed_again_by_a_later_correction(h):
    h.objects.add(BUCKET, "e.jpg", jpeg_bytes(64, 48), version_id="v1", tags=dict(USER_TAGS))
    h.process("e.jpg")
    correct(h, "e.jpg", add=["sunset"])
    assert object_tags(h, "e.jpg")["autotag:sunset"] == "1.00"
    correct(h, "e.jpg", remove=["sunset"])
    assert "autotag:sunset" not in object_tags(h, "e.jpg")
    # A re-tag of the same object also treats the tags corrections wrote as autotag's own.
    correct(h, "e.jpg", add=["beach"])
    h.process("e.jpg")
    assert object_tags(h, "e.jpg") == {
        **USER_TAGS,
        "autotag:beach": "1.00",
        "autotag:dog": "0.90",
        "autotag:pet": "0.80",
        "autotag:grass": "0.40",
    }


def decision(tag, action, minutes=0, sha="a"):
    return TagDecision(tag=tag, action=action, by="apikey:x", at=AT + timedelta(minutes=minutes), sha256=sha)


def test_effective_tags_rules():
    boxes = (BoundingBox(left=0.1, top=0.1, width=0.5, height=0.5),)
    tags = (
        Tag(name="Dog", confidence=0.6, provider="p", boxes=boxes),
        Tag(name="cat", confidence=0.5, provider="p"),
    )
    corrections = TagCorrections(
        version=3,
        log=(
            decision("dog", CorrectionAction.REMOVE),
            decision("DOG", CorrectionAction.ADD, 1),  # later wins: confirmed
            decision("cat", CorrectionAction.REMOVE, 2),
            decision("owl", CorrectionAction.ADD, 3, sha="other"),  # other bytes: not applied
        ),
    )
    result = effective_tags(tags, corrections, "a")
    assert [(t.name, t.confidence, t.provider, t.sources) for t in result] == [
        ("Dog", 1.0, "person", ("p", "person"))
    ]
    assert result[0].boxes == boxes  # a confirmed tag keeps where the provider saw it
    assert effective_tags(tags, None, "a") == tags


def test_log_is_compacted_not_lost():
    corrections = TagCorrections()
    for n in range(MAX_CORRECTION_LOG + 50):
        corrections = corrections.with_decisions([decision(f"t{n % 30}", CorrectionAction.ADD, n)])
    assert corrections.version == MAX_CORRECTION_LOG + 50
    assert len(corrections.log) <= MAX_CORRECTION_LOG
    assert set(corrections.in_force("a")) == {f"t{n}" for n in range(30)}


@pytest.mark.parametrize(
    ("context", "actor"),
    [
        ({"identity": {"apiKeyId": "k9", "apiKey": "SECRET"}}, "apikey:k9"),
        ({"identity": {"userArn": "arn:aws:iam::1:user/ann"}}, "principal:arn:aws:iam::1:user/ann"),
        ({"identity": {}, "authorizer": {"principalId": "user-7"}}, "principal:user-7"),
        ({}, "anonymous"),
        (None, "anonymous"),
    ],
)
def test_actor_is_the_key_id_or_principal_never_the_key(context, actor):
    assert actor_of(context) == actor
    assert "SECRET" not in actor_of(context)


def test_local_log_line_for_a_correction():
    from autotag.local.monitor import describe_event

    line = describe_event(
        {
            "detail-type": IMAGE_TAGS_CORRECTED,
            "detail": {
                "bucket": "b",
                "key": "k.jpg",
                "added": ["sunset"],
                "removed": ["cat"],
                "corrected_by": "apikey:abc",
                "corrected_at": "2025-05-01T10:00:00+00:00",
            },
        }
    )
    assert line is not None
    assert line.endswith("corrected  s3://b/k.jpg  [+sunset, -cat]  by apikey:abc")


def test_a_correction_made_while_an_upload_is_tagged_waits_and_is_on_the_object_and_in_the_index(portal):
    import threading

    from autotag.config import AutotagConfig, CachePolicy

    h = Harness(portal, config=AutotagConfig(cache=CachePolicy(enabled=False)))
    data = jpeg_bytes(64, 48)
    h.objects.add(BUCKET, "m.jpg", data, version_id="v1", tags=dict(USER_TAGS))
    h.process("m.jpg")
    # A re-upload of the same bytes; while the provider is being asked (the claim held), a person
    # removes "dog" and adds "sunset". The correction waits for the claimed write, then lands.
    h.objects.add(BUCKET, "m.jpg", data, version_id="v2", tags=dict(USER_TAGS))
    person = threading.Thread(target=lambda: correct(h, "m.jpg", add=["sunset"], remove=["dog"]))
    h.tagger.on_call = lambda _image: person.start()
    record = h.process("m.jpg", version_id="v2")
    h.tagger.on_call = None
    person.join(10)
    assert not person.is_alive()
    assert h.tagger.calls == 2
    assert [t.name for t in record.tags_in_force] == ["dog", "pet", "grass"]  # what the upload wrote
    stored = h.store.get(BUCKET, "m.jpg")
    assert stored.version_id == "v2"
    assert stored.corrections.version == 1
    assert [t.name for t in stored.tags_in_force] == ["sunset", "pet", "grass"]
    assert h.store.images_with_tag("dog").items == []
    assert [hit.key for hit in h.store.images_with_tag("sunset").items] == ["m.jpg"]
    assert object_tags(h, "m.jpg") == {
        **USER_TAGS,
        "autotag:sunset": "1.00",
        "autotag:pet": "0.80",
        "autotag:grass": "0.40",
    }
    (corrected,) = h.publisher.of_type(IMAGE_TAGS_CORRECTED)
    assert corrected["key"] == "m.jpg"
