"""How the DynamoDB store's items hold records: the image item (the record, compressed, with the
attributes the index, the feed and the claims read), the tag index items, and DynamoDB's typed
attribute values. Pure functions; the operations are :mod:`autotag.store.dynamodb`'s.
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
from autotag.store.base import ImageRecord, ImageSummary, TagHit
from autotag.store.keys import META_SK, IndexEntry, feed_pk, feed_sk, image_id, image_pk

RECORD_ATTRIBUTE = "record_z"
"""The record as zlib-compressed JSON (binary): a third of the JSON's size, so a typical record item
stays under 1 KB, one write unit. Items written before hold ``record`` (JSON text); both are read."""
RESULT_ATTRIBUTE = "result_z"
"""A cached result, compressed the same way (``result`` before)."""
INDEX_KEY_SEPARATOR = "|"
"""In the image item's ``index_keys``: ``{tag pk}|{inverted confidence}`` (a tag key may hold ``|``:
the last one separates)."""
_RECORD_FIELDS_ON_ITEM = ("bucket", "key", "version_id", "etag", "status", "updated_at")
"""Record fields the image item holds as attributes: left out of the compressed JSON."""

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
    updated_at = record.updated_at.isoformat()
    return {
        "pk": image_pk(record.bucket, record.key),
        "sk": META_SK,
        "type": "image",
        "bucket": record.bucket,
        "key": record.key,
        "version_id": record.version_id,
        "etag": record.etag,
        "sequencer": normalize_sequencer(record.sequencer),
        "status": record.status.value,
        "updated_at": updated_at,
        RECORD_ATTRIBUTE: _compressed(record),
        "tag_count": len(record.tags),
        "corrections": record.corrections.model_dump_json() if record.corrections else None,
        "index_keys": [f"{e.pk}{INDEX_KEY_SEPARATOR}{e.sk.partition('#')[0]}" for e in entries],
        "revision": revision,
        "feed_pk": feed_pk(record.status.value),
        "feed_sk": feed_sk(updated_at, record.bucket, record.key),
        "summary": ImageSummary.of(record).model_dump_json(),
    }


def record_of(item: dict[str, Any] | None) -> ImageRecord | None:
    """The record an image item holds, with its corrections (None for an item that is only a claim
    so far)."""
    if not item:
        return None
    if RECORD_ATTRIBUTE in item:
        fields = json.loads(zlib.decompress(bytes(item[RECORD_ATTRIBUTE])))
        fields.update({name: item[name] for name in _RECORD_FIELDS_ON_ITEM if name in item})
        record = ImageRecord.model_validate(fields)
    elif "record" in item:  # written before compression
        record = ImageRecord.model_validate_json(item["record"])
    else:
        return None
    return record.model_copy(update={"corrections": corrections_of(item)})


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


def _compressed(record: ImageRecord) -> bytes:
    text = record.model_dump_json(exclude_defaults=True, exclude={*_RECORD_FIELDS_ON_ITEM, "corrections"})
    return zlib.compress(text.encode(), 9)


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
