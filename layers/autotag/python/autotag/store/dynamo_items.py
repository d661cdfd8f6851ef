"""How the DynamoDB store's items hold records: the image item (the record, compressed, with the
attributes the index, the feed and the claims read), the tag index items, the writes one put makes
(conditions included), cached results, and DynamoDB's typed attribute values. Pure functions; the
calls to DynamoDB are :mod:`autotag.store.dynamodb`'s.

The image item holds each fact once, so a typical record stays under 1 KB (one write unit): the
bucket and key are read from ``pk``, ``updated_at`` from ``feed_sk``, the feed's status from
``feed_pk``; the record and the feed's summary are JSON compressed with a preset dictionary
(:data:`PRESET_DICTIONARY`). Items written before (with ``bucket``, ``key`` and ``updated_at``
attributes, a summary as JSON text, a record compressed without the dictionary, or as JSON text)
are read as they are.
"""

from __future__ import annotations

import json
import zlib
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from autotag.decisions import TagCorrections
from autotag.models import TagResult
from autotag.ordering import normalize_sequencer
from autotag.store.base import ImageRecord, ImageStatus, ImageSummary, TagHit
from autotag.store.keys import (
    FEED_PREFIX,
    IMAGE_PREFIX,
    META_SK,
    IndexEntry,
    feed_pk,
    feed_sk,
    image_id,
    image_pk,
    index_entries,
)

RECORD_ATTRIBUTE = "record_z"
"""The record as zlib-compressed JSON (binary), with :data:`PRESET_DICTIONARY`: a fifth of the
JSON's size. Items written before hold it compressed without the dictionary (zlib's header says
which), or ``record`` (JSON text); all are read."""
SUMMARY_ATTRIBUTE = "summary"
"""The feed's :class:`ImageSummary` (the ``feed`` index projects it): compressed JSON of what the
index item's keys do not say (bucket, key, status and time are in ``pk``, ``feed_pk``, ``feed_sk``);
JSON text of the whole summary in items written before."""
RESULT_ATTRIBUTE = "result_z"
"""A cached result, compressed (without the dictionary; ``result``, JSON text, before)."""
INDEX_KEY_SEPARATOR = "|"
"""In the image item's ``index_keys``: ``{tag pk}|{inverted confidence}`` (a tag key may hold ``|``:
the last one separates)."""
_RECORD_FIELDS_ON_ITEM = ("version_id", "etag", "status")
"""Record fields the image item holds as attributes: left out of the compressed JSON."""
_RECORD_FIELDS_IN_KEYS = ("bucket", "key", "updated_at")
"""Record fields the image item's keys hold (``pk``, ``feed_sk``): left out of the compressed JSON
and of the item's attributes."""
_SUMMARY_FIELDS_IN_KEYS = ("bucket", "key", "status", "updated_at")

PRESET_DICTIONARY = (
    b'"s3_tags":{"written":{"autotag:":""},"removed":[],"dropped":[{"key":"autotag:","value":"",'
    b'"reason":"user_tag""tag_limit"}],"user_tags_kept":,"reason":"no tags to write"},"cached":true,'
    b'"providers":[{"provider":"","status":"ok","latency_ms":.,"tag_count":,"error_code":"","error":"",'
    b'"retryable":false,"details":{"request_id":"","lang":"en","model":""}}],"classification":{"label":'
    b'"safe","unsafe","confidence":0.,"title":"","description":"",'
    b'"tags":[{"name":"","confidence":0.,"provider":"","kind":"label","names":{"en":""},"categories":[],'
    b'"parents":[],"aliases":[],"boxes":[{"left":0.,"top":0.,"width":0.,"height":0.}],'
    b'"sources":["basic","efficientnet","imagedescriber","rekognition","google_vision","coreviz","huawei"]},'
    b'{"sequencer":"","sha256":"","size":,"content_type":"image/jpeg","image/png","width":,"height":,'
    b'{"version_id":"","title":"","tag_count":,"corrected":true,"top_tags":[{"name":"","confidence":0.,'
    b'"provider":"basic"},{"name":"","confidence":0.,"provider":"efficientnet"},{"name":"","confidence":0.,'
    b'"provider":"imagedescriber"},{"name":"","confidence":0.,"provider":"rekognition"},{"name":"",'
)
"""zlib's preset dictionary for the record and summary JSON (field names and common values), so a
small JSON compresses well. NEVER change it: a stream written with it names it by its Adler-32 in the
zlib header and can be read only with it (a new dictionary would need the old one kept for reading)."""

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


# --- DynamoDB's typed values -------------------------------------------------------------------


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """Plain values → DynamoDB attribute values (None values left out)."""
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute values → plain values."""
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def number(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def key_of(pk: str, sk: str = META_SK) -> dict[str, Any]:
    """An item's primary key as DynamoDB attribute values."""
    return to_item({"pk": pk, "sk": sk})


# --- Image items -------------------------------------------------------------------------------


def image_item(record: ImageRecord, entries: list[IndexEntry], *, revision: int) -> dict[str, Any]:
    """The image item (plain values) for `record`, naming its index items ``entries``."""
    return {
        "pk": image_pk(record.bucket, record.key),
        "sk": META_SK,
        "type": "image",
        "version_id": record.version_id,
        "etag": record.etag,
        "sequencer": normalize_sequencer(record.sequencer),
        "status": record.status.value,
        RECORD_ATTRIBUTE: pack(
            record.model_dump_json(
                exclude_defaults=True,
                exclude={*_RECORD_FIELDS_ON_ITEM, *_RECORD_FIELDS_IN_KEYS, "corrections"},
            )
        ),
        "tag_count": len(record.tags),
        "corrections": record.corrections.model_dump_json() if record.corrections else None,
        "index_keys": [f"{e.pk}{INDEX_KEY_SEPARATOR}{e.sk.partition('#')[0]}" for e in entries],
        "revision": revision,
        "feed_pk": feed_pk(record.status.value),
        "feed_sk": feed_sk(record.updated_at.isoformat(), record.bucket, record.key),
        SUMMARY_ATTRIBUTE: pack(
            ImageSummary.of(record).model_dump_json(
                exclude_defaults=True, exclude=set(_SUMMARY_FIELDS_IN_KEYS)
            )
        ),
    }


def _fields_in_keys(item: dict[str, Any]) -> dict[str, Any]:
    """The bucket, key and time an image item's keys hold (``IMG#{bucket}#{key}``: a bucket name has
    no ``#``; ``{updated_at}#{image id}``), or its attributes in items written before."""
    bucket, _, key = str(item["pk"]).removeprefix(IMAGE_PREFIX).partition("#")
    fields: dict[str, Any] = {"bucket": bucket, "key": key}
    if "feed_sk" in item:
        fields["updated_at"] = str(item["feed_sk"]).rpartition("#")[0]
    fields.update({name: item[name] for name in _RECORD_FIELDS_IN_KEYS if name in item})
    return fields


def record_of(item: dict[str, Any] | None) -> ImageRecord | None:
    """The record an image item holds, with its corrections (None for an item that is only a claim
    so far)."""
    if not item:
        return None
    if RECORD_ATTRIBUTE in item:
        fields = json.loads(unpack(item[RECORD_ATTRIBUTE]))
        fields.update(_fields_in_keys(item))
        fields.update({name: item[name] for name in _RECORD_FIELDS_ON_ITEM if name in item})
        record = ImageRecord.model_validate(fields)
    elif "record" in item:  # written before compression
        record = ImageRecord.model_validate_json(item["record"])
    else:
        return None
    return record.model_copy(update={"corrections": corrections_of(item)})


def summary_of(item: dict[str, Any]) -> ImageSummary:
    """The feed's summary of an image item (as the ``feed`` index returns it: keys and summary)."""
    raw = item[SUMMARY_ATTRIBUTE]
    if isinstance(raw, str):  # written before: the whole summary as JSON text
        return ImageSummary.model_validate_json(raw)
    fields = json.loads(unpack(raw))
    fields.update(_fields_in_keys(item))
    fields["status"] = str(item["feed_pk"]).removeprefix(FEED_PREFIX)
    return ImageSummary.model_validate(fields)


def pack(text: str) -> bytes:
    """JSON text zlib-compressed with :data:`PRESET_DICTIONARY`."""
    compressor = zlib.compressobj(9, zdict=PRESET_DICTIONARY)
    return compressor.compress(text.encode()) + compressor.flush()


def unpack(data: Any) -> bytes:
    """What :func:`pack` compressed, or a stream compressed without the dictionary (written before)."""
    decompressor = zlib.decompressobj(zdict=PRESET_DICTIONARY)
    return decompressor.decompress(bytes(data)) + decompressor.flush()


def corrections_of(item: dict[str, Any] | None) -> TagCorrections | None:
    raw = (item or {}).get("corrections")
    return None if raw is None else TagCorrections.model_validate_json(raw)


def index_keys_of(item: dict[str, Any] | None, bucket: str, key: str) -> set[tuple[str, str]]:
    """The (pk, sk) of the index items an image item names: ``{tag pk}|{inverted confidence}``
    strings (the sort key's image id follows from the item), or ``{pk, sk}`` maps (written before)."""
    keys: set[tuple[str, str]] = set()
    for entry in (item or {}).get("index_keys", []):
        if isinstance(entry, dict):
            keys.add((entry["pk"], entry["sk"]))
        else:
            pk, _, score = str(entry).rpartition(INDEX_KEY_SEPARATOR)
            keys.add((pk, f"{score}#{image_id(bucket, key)}"))
    return keys


# --- Writes -----------------------------------------------------------------------------------


def put_actions(
    table: str,
    record: ImageRecord,
    current: dict[str, Any] | None,
    *,
    claim_token: str | None = None,
    unclaimed_at: float | None = None,
) -> list[dict[str, Any]]:
    """The writes that put `record` over the image item `current` (plain values, or None): the
    image item under its condition (``claim_token``: only while that claim is held; ``unclaimed_at``:
    only while no claim is live at that time; else guarded by the item's revision), deletes of the
    index items it named and no longer does, and its index items. As TransactWriteItems actions."""
    tags = record.tags_in_force if record.status is ImageStatus.TAGGED else ()
    entries = index_entries(record.bucket, record.key, tags)
    new_keys = {(e.pk, e.sk) for e in entries}
    old_keys = index_keys_of(current, record.bucket, record.key)
    revision = int(current.get("revision", 0)) if current else 0
    conditions: list[str] = []
    values: dict[str, Any] = {}
    if claim_token is not None:
        # The claim's attributes are not in the new item: the write ends the claim.
        conditions.append("claim_token = :token")
        values[":token"] = {"S": claim_token}
    elif unclaimed_at is not None:
        # A correction: only while nobody holds a live claim (the claimed write replaces the
        # whole item); an expired claim's attributes are dropped with this write.
        conditions.append("(attribute_not_exists(claim_until) OR claim_until < :now)")
        values[":now"] = to_item({"n": number(unclaimed_at)})["n"]
    if current is None and claim_token is None:
        conditions.append("attribute_not_exists(pk)")
    elif current is None or "revision" not in current:  # no record yet (perhaps only a claim)
        conditions.append("attribute_not_exists(revision)")
    else:
        conditions.append("revision = :revision")
        values[":revision"] = {"N": str(revision)}
    put_image: dict[str, Any] = {
        "TableName": table,
        "Item": to_item(image_item(record, entries, revision=revision + 1)),
        "ConditionExpression": " AND ".join(conditions),
    }
    if values:
        put_image["ExpressionAttributeValues"] = values
    actions: list[dict[str, Any]] = [{"Put": put_image}]
    # A key in both sets is overwritten by its Put (one transaction may not touch an item twice).
    for stale_pk, stale_sk in sorted(old_keys - new_keys):
        actions.append({"Delete": {"TableName": table, "Key": key_of(stale_pk, stale_sk)}})
    for entry in entries:
        actions.append({"Put": {"TableName": table, "Item": to_item(index_item(record, entry))}})
    return actions


# --- Tag index items ---------------------------------------------------------------------------


def index_item(record: ImageRecord, entry: IndexEntry) -> dict[str, Any]:
    """One (tag, image) index item (plain values)."""
    return {
        "pk": entry.pk,
        "sk": entry.sk,
        "type": "tag",
        "tag": entry.tag,
        "confidence": number(entry.confidence),
        "providers": list(entry.providers),
        "bucket": record.bucket,
        "key": record.key,
        "version_id": record.version_id,
        "updated_at": record.updated_at.isoformat(),
    }


def hit_of(item: dict[str, Any]) -> TagHit:
    confidence = item.get("confidence")
    return TagHit(
        bucket=item["bucket"],
        key=item["key"],
        version_id=item.get("version_id"),
        tag=item["tag"],
        confidence=None if confidence is None else float(confidence),
        providers=tuple(item.get("providers", ())),
        updated_at=item.get("updated_at"),
    )


# --- Cached results ----------------------------------------------------------------------------


def compressed_result(result: TagResult) -> bytes:
    return zlib.compress(result.model_dump_json(exclude_defaults=True).encode(), 9)


def result_of(values: dict[str, Any]) -> TagResult:
    """The cached result a cache item holds."""
    if RESULT_ATTRIBUTE in values:
        return TagResult.model_validate_json(zlib.decompress(bytes(values[RESULT_ATTRIBUTE])))
    return TagResult.model_validate_json(values["result"])  # written before compression
