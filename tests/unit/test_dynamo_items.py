"""How the DynamoDB store's image item holds a record: each fact once, so a typical record is one
write unit (1 KB by DynamoDB's sizing rules, tests/support/aws_calls.py), and items written in the
earlier layouts are still read."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime

import pytest
from autotag.models import ProviderStatus, Tag
from autotag.store.base import ImageRecord, ImageStatus, ImageSummary, S3TagWrite
from autotag.store.dynamo_items import (
    PRESET_DICTIONARY,
    from_item,
    image_item,
    record_of,
    summary_of,
    to_item,
)
from autotag.store.keys import feed_pk, feed_sk, image_pk, index_entries

from tests.support.aws_calls import WRITE_UNIT_BYTES, item_size, write_units

FEED_INDEX_ATTRIBUTES = ("pk", "sk", "feed_pk", "feed_sk", "summary")
"""What the ``feed`` index returns: the table's and the index's keys, and the projected summary."""


def _record(tags: tuple[Tag, ...], **fields: object) -> ImageRecord:
    return ImageRecord(
        bucket="images-849da6e989",
        key="calls/photo 000.jpg",
        version_id="d06d1a48-d4e1-4b71-9c53-9f82d5dc7ade",
        etag="9e08b61e4c7bafcb41e2e7547bc681e1",
        sequencer="0018ED3264A211A462",
        sha256="0a4cd2eacb1a34da24bc6bf861e41e7e89c228518e2bc985c519c2a7b7ac7bbb",
        size=22036,
        content_type="image/jpeg",
        width=320,
        height=240,
        status=ImageStatus.TAGGED,
        tags=tags,
        providers=(
            ProviderStatus(
                provider=tags[0].provider,
                status="ok",
                latency_ms=412.7,
                tag_count=len(tags),
                details={"request_id": "1891602b047b4dea876dd70bb4683fee"},
            ),
        ),
        s3_tags=S3TagWrite(written={f"autotag:{t.name}": "" for t in tags[:10]}, user_tags_kept=1),
        updated_at=datetime(2026, 12, 1, 17, 46, 45, 18467, tzinfo=UTC),
        **fields,
    )


DESCRIBED = _record(
    tuple(Tag(name=n, provider="imagedescriber") for n in ("cat", "pet", "whiskers", "indoor")),
    title="A cat at home",
    description="A tabby cat sitting on a sofa in a sunlit living room.",
)
"""What the test stack's describing provider returns (bench_aws_calls' images)."""
LABELLED = _record(
    tuple(
        Tag(name=n, confidence=c, provider="efficientnet")
        for n, c in [
            ("tabby cat", 0.91),
            ("cat", 0.88),
            ("sofa", 0.71),
            ("living room", 0.66),
            ("pet", 0.6),
            ("cushion", 0.52),
            ("indoor", 0.5),
            ("whiskers", 0.45),
            ("furniture", 0.41),
            ("window", 0.33),
        ]
    )
)
"""A label provider's ten best tags with confidences (the S3 tag limit's worth)."""


def _stored(record: ImageRecord) -> dict:
    """The image item as DynamoDB holds it and a read returns it (typed values, binary as Binary)."""
    entries = index_entries(record.bucket, record.key, record.tags_in_force)
    return to_item(image_item(record, entries, revision=3))


@pytest.mark.parametrize("record", [DESCRIBED, LABELLED], ids=["described", "ten labels"])
def test_a_typical_record_item_is_one_write_unit(record):
    size = item_size(_stored(record))
    assert size <= WRITE_UNIT_BYTES, size
    assert write_units(size) == 1


@pytest.mark.parametrize("record", [DESCRIBED, LABELLED], ids=["described", "ten labels"])
def test_the_record_and_the_feeds_summary_read_back_whole(record):
    item = from_item(_stored(record))
    assert record_of(item) == record
    projected = {name: item[name] for name in FEED_INDEX_ATTRIBUTES}
    assert summary_of(projected) == ImageSummary.of(record)


def test_no_fact_is_stored_twice():
    item = from_item(_stored(DESCRIBED))
    # The bucket, key and time are in the keys; the summary does not repeat the keys or the status.
    assert not {"bucket", "key", "updated_at"} & set(item)
    summary = json.loads(zlib.decompressobj(zdict=PRESET_DICTIONARY).decompress(bytes(item["summary"])))
    assert not {"bucket", "key", "status", "updated_at"} & set(summary)


def _written_before(record: ImageRecord, *, compressed: bool) -> dict:
    """An image item in the layout written before this one: bucket, key and updated_at attributes,
    the summary as JSON text, the record compressed without a dictionary (or as JSON text)."""
    updated_at = record.updated_at.isoformat()
    item = {
        "pk": image_pk(record.bucket, record.key),
        "sk": "META",
        "type": "image",
        "bucket": record.bucket,
        "key": record.key,
        "version_id": record.version_id,
        "etag": record.etag,
        "status": record.status.value,
        "updated_at": updated_at,
        "tag_count": len(record.tags),
        "revision": 1,
        "feed_pk": feed_pk(record.status.value),
        "feed_sk": feed_sk(updated_at, record.bucket, record.key),
        "summary": ImageSummary.of(record).model_dump_json(),
    }
    if compressed:
        on_item = {"bucket", "key", "version_id", "etag", "status", "updated_at", "corrections"}
        text = record.model_dump_json(exclude_defaults=True, exclude=on_item)
        item["record_z"] = zlib.compress(text.encode(), 9)
    else:
        item["record"] = record.model_dump_json()
    return from_item(to_item(item))


@pytest.mark.parametrize("compressed", [True, False], ids=["record_z", "record JSON"])
def test_items_written_before_are_read(compressed):
    item = _written_before(DESCRIBED, compressed=compressed)
    assert record_of(item) == DESCRIBED
    projected = {name: item[name] for name in FEED_INDEX_ATTRIBUTES}
    assert summary_of(projected) == ImageSummary.of(DESCRIBED)


def test_a_key_with_hashes_reads_back():
    record = DESCRIBED.model_copy(update={"key": "a#b/c #d.jpg", "status": ImageStatus.FAILED, "tags": ()})
    item = from_item(_stored(record))
    assert record_of(item) == record
    assert summary_of({name: item[name] for name in FEED_INDEX_ATTRIBUTES}) == ImageSummary.of(record)
