"""The single-table key design, shared by the DynamoDB store and its in-memory fake.

Item types (``pk`` / ``sk``), see docs/storage.md:

- image record:  ``IMG#{bucket}#{key}`` / ``META``
- tag index:     ``TAG#{tag_key}`` / ``{inverted confidence, 7 digits}#{image id}``
- result cache:  ``CACHE#{cache key}`` / ``META`` (TTL attribute ``expires_at``)

Image records also carry the keys of the ``feed`` index (``FEED#{status}`` / ``{updated_at}#{image
id}``), queried newest first for the console's recent and failed images.

A Query on ``TAG#{tag_key}`` in ascending sort-key order returns the images carrying that tag,
highest confidence first, with tags that have no confidence last.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from autotag.errors import BadInputError
from autotag.models import Tag, tag_key

IMAGE_PREFIX = "IMG#"
TAG_PREFIX = "TAG#"
CACHE_PREFIX = "CACHE#"
FEED_PREFIX = "FEED#"
META_SK = "META"

MAX_INDEXED_TAGS = 49
"""Index items per image. A re-tag is one TransactWriteItems (at most 100 actions): the record,
up to 49 deletes of stale index items and up to 49 puts of new ones fit with room to spare."""

MAX_TAG_KEY_BYTES = 512
"""Tag keys longer than this (UTF-8) are kept on the record but not indexed."""

CONFIDENCE_SCALE = 1_000_000
_NO_CONFIDENCE = CONFIDENCE_SCALE + 1
_SCORE_DIGITS = 7


def image_pk(bucket: str, key: str) -> str:
    return f"{IMAGE_PREFIX}{bucket}#{key}"


def image_id(bucket: str, key: str) -> str:
    """A fixed-length id for an image (S3 keys run to 1,024 bytes; a sort key may not)."""
    return hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:32]


def tag_pk(tag: str) -> str:
    """The index partition for a tag name; case and whitespace do not matter."""
    return f"{TAG_PREFIX}{tag_key(tag)}"


def inverted_confidence(confidence: float | None) -> str:
    """Zero-padded so that ascending sort-key order is descending confidence; None sorts last."""
    if confidence is None:
        return str(_NO_CONFIDENCE).zfill(_SCORE_DIGITS)
    score = round(min(1.0, max(0.0, confidence)) * CONFIDENCE_SCALE)
    return str(CONFIDENCE_SCALE - score).zfill(_SCORE_DIGITS)


def tag_sk(confidence: float | None, bucket: str, key: str) -> str:
    return f"{inverted_confidence(confidence)}#{image_id(bucket, key)}"


def feed_pk(status: str) -> str:
    return f"{FEED_PREFIX}{status}"


def feed_sk(updated_at: str, bucket: str, key: str) -> str:
    """ISO-8601 UTC timestamps sort as text; the image id makes the key unique."""
    return f"{updated_at}#{image_id(bucket, key)}"


def cache_pk(cache_key: str) -> str:
    return f"{CACHE_PREFIX}{cache_key}"


@dataclass(frozen=True)
class IndexEntry:
    """One (tag, image) index item."""

    pk: str
    sk: str
    tag: str
    confidence: float | None
    providers: tuple[str, ...]


def index_entries(bucket: str, key: str, tags: Iterable[Tag]) -> list[IndexEntry]:
    """The index items for an image's tags: one per distinct tag key, best first, capped."""
    best: dict[str, Tag] = {}
    for tag in tags:
        if len(tag.key.encode()) > MAX_TAG_KEY_BYTES:
            continue
        current = best.get(tag.key)
        if current is None or _score(tag) > _score(current):
            best[tag.key] = tag
    ranked = sorted(best.values(), key=lambda t: -_score(t))[:MAX_INDEXED_TAGS]
    return [
        IndexEntry(
            pk=tag_pk(t.name),
            sk=tag_sk(t.confidence, bucket, key),
            tag=t.name,
            confidence=t.confidence,
            providers=t.sources or (t.provider,),
        )
        for t in ranked
    ]


def _score(tag: Tag) -> float:
    return -1.0 if tag.confidence is None else tag.confidence


MAX_PAGE_SIZE = 500


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise BadInputError(f"limit must be between 1 and {MAX_PAGE_SIZE}; got {limit}")


# --- Cursors -----------------------------------------------------------------------------------


def encode_cursor(pk: str, sk: str) -> str:
    """Opaque to clients: url-safe base64 of the last key returned."""
    raw = json.dumps({"pk": pk, "sk": sk}, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, expected_pk: str) -> tuple[str, str]:
    """The (pk, sk) a cursor names. Anything that is not a cursor for this query is a BadInputError."""
    invalid = BadInputError("invalid cursor: pass back the cursor of the previous page unchanged")
    if not cursor or len(cursor) > 4096:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw.decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid from None
    if not isinstance(data, dict) or set(data) != {"pk", "sk"}:
        raise invalid
    pk, sk = data["pk"], data["sk"]
    if not isinstance(pk, str) or not isinstance(sk, str) or pk != expected_pk or not sk:
        raise invalid
    return pk, sk


def encode_feed_cursor(feed_partition: str, feed_sort: str, pk: str) -> str:
    """A feed page's position: the index keys and the table key of the last item returned."""
    return encode_cursor(
        feed_partition, json.dumps([feed_sort, pk], separators=(",", ":"), ensure_ascii=False)
    )


def decode_feed_cursor(cursor: str, *, expected_feed_pk: str) -> tuple[str, str, str]:
    """(feed pk, feed sk, table pk) of a feed cursor; anything else is a BadInputError."""
    partition, packed = decode_cursor(cursor, expected_pk=expected_feed_pk)
    try:
        sort, pk = json.loads(packed)
    except (ValueError, TypeError):
        raise BadInputError("invalid cursor: pass back the cursor of the previous page unchanged") from None
    if not isinstance(sort, str) or not isinstance(pk, str) or not pk.startswith(IMAGE_PREFIX):
        raise BadInputError("invalid cursor: pass back the cursor of the previous page unchanged")
    return partition, sort, pk
