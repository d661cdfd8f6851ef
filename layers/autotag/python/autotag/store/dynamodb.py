"""The DynamoDB ImageStore: one on-demand table holding image records, the tag index and the cache.

Key design in :mod:`autotag.store.keys` and docs/storage.md. A claimed put (every S3 event and
request: :mod:`autotag.ordering`) writes the record, its index items and the cached result in one
BatchWriteItem under the claim; an unclaimed put replaces the record and its index items in one
transaction, guarded by a revision number on the record so two writers of the same image cannot
leave each other's index items behind.
"""

from __future__ import annotations

import json
import random
import time
import uuid
import zlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from autotag.decisions import TagCorrections
from autotag.errors import ConflictError, TransientError
from autotag.models import TagResult
from autotag.ordering import Claim, ClaimLostError, EventOrder, Refusal, decide, normalize_sequencer
from autotag.store.base import (
    CORRECTION_WAIT_SECONDS,
    CacheEntry,
    CorrectionUpdate,
    ImageRecord,
    ImageStatus,
    ImageSummary,
    Page,
    TagHit,
)
from autotag.store.keys import (
    CACHE_PREFIX,
    META_SK,
    cache_pk,
    check_limit,
    decode_cursor,
    decode_feed_cursor,
    encode_cursor,
    encode_feed_cursor,
    feed_pk,
    feed_sk,
    image_id,
    image_pk,
    index_entries,
    tag_pk,
)
from autotag.store.schema import FEED_INDEX, TTL_ATTRIBUTE

RECORD_ATTRIBUTE = "record_z"
"""The record as zlib-compressed JSON (binary): a third of the JSON's size, so a typical record item
stays under 1 KB, one write unit. Items written before hold ``record`` (JSON text); both are read."""
RESULT_ATTRIBUTE = "result_z"
"""A cached result, compressed the same way (``result`` before)."""
INDEX_KEY_SEPARATOR = "|"
"""In the image item's ``index_keys``: ``{tag pk}|{inverted confidence}`` (a tag key may hold ``|``:
the last one separates)."""
BATCH_WRITE_MAX = 25
"""Requests per BatchWriteItem."""
BATCH_GET_MAX = 100
"""Keys per BatchGetItem."""
CLAIM_WRITE_GUARD_SECONDS = 1.0
"""A claimed write is sent only while the claim has at least this long to run."""
_PUT_ATTEMPTS = 8
_CONFLICT_BACKOFF = 0.02

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def _number(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


class DynamoImageStore:
    """ImageStore over a DynamoDB table (`client` is a boto3 DynamoDB client)."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._sleep = sleep
        self._table = table_name
        self._clock = clock

    # --- Image records -------------------------------------------------------------------------

    def get(self, bucket: str, key: str) -> ImageRecord | None:
        return _record_of(self._get_image_item(bucket, key))

    def _get_image_item(self, bucket: str, key: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=_item({"pk": image_pk(bucket, key), "sk": META_SK}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else _plain(item)

    # --- Claims (autotag.ordering) --------------------------------------------------------------

    def claim(self, bucket: str, key: str, order: EventOrder, *, lease_seconds: float) -> Claim | Refusal:
        """One conditional UpdateItem on the record item: the rules of :func:`autotag.ordering.decide`
        as a condition expression; a refusal is classified from the item DynamoDB returns."""
        now = self._clock()
        until = now + lease_seconds
        claim_token = uuid.uuid4().hex
        values: dict[str, Any] = {":now": _number(now), ":until": _number(until), ":token": claim_token}
        condition = "(attribute_not_exists(claim_until) OR claim_until < :now)"
        sequencer = order.normalized
        if sequencer is not None:
            values[":seq"] = sequencer
            if order.replay:
                condition += " AND (attribute_not_exists(sequencer) OR sequencer <= :seq)"
            else:
                values[":failed"] = ImageStatus.FAILED.value
                condition += (
                    " AND (attribute_not_exists(sequencer) OR sequencer < :seq"
                    " OR (sequencer = :seq AND #status = :failed))"
                )
            update = "SET claim_token = :token, claim_until = :until, claim_sequencer = :seq"
        else:
            update = "SET claim_token = :token, claim_until = :until REMOVE claim_sequencer"
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": _item({"pk": image_pk(bucket, key), "sk": META_SK}),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": {k: _serializer.serialize(v) for k, v in values.items()},
            "ReturnValues": "ALL_OLD",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if ":failed" in values:
            request["ExpressionAttributeNames"] = {"#status": "status"}
        try:
            response = self._client.update_item(**request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            old = _plain(error.response.get("Item") or {}) or self._get_image_item(bucket, key)
            return self._refusal(order, old, now)
        old = _plain(response.get("Attributes") or {}) or None
        return Claim(
            bucket=bucket,
            key=key,
            order=order,
            until=until,
            previous=_record_of(old),
            token=claim_token,
            snapshot=old,
        )

    def _refusal(self, order: EventOrder, old: dict[str, Any] | None, now: float) -> Refusal:
        old = old or {}
        until = old.get("claim_until")
        refusal = decide(
            order,
            record=_record_of(old),
            stored_sequencer=old.get("sequencer"),
            claim_until=None if until is None else float(until),
            claim_sequencer=old.get("claim_sequencer"),
            now=now,
        )
        # The condition failed, so decide() refuses too unless the item changed in between: then
        # the event is retried as busy (the next attempt sees the item as it now is).
        return refusal or Refusal(None, "the record changed while being claimed", _record_of(old), 1.0)

    def release(self, claim: Claim) -> None:
        key = _item({"pk": image_pk(claim.bucket, claim.key), "sk": META_SK})
        values = {":token": {"S": claim.token}}
        try:
            if claim.snapshot:
                self._client.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="REMOVE claim_token, claim_until, claim_sequencer",
                    ConditionExpression="claim_token = :token",
                    ExpressionAttributeValues=values,
                )
            else:  # the claim created the item: remove it again
                self._client.delete_item(
                    TableName=self._table,
                    Key=key,
                    ConditionExpression=(
                        "claim_token = :token AND attribute_not_exists(#record) AND attribute_not_exists(#z)"
                    ),
                    ExpressionAttributeNames={"#record": "record", "#z": RECORD_ATTRIBUTE},
                    ExpressionAttributeValues=values,
                )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    # --- Writes ----------------------------------------------------------------------------------

    def put(
        self, record: ImageRecord, *, claim: Claim | None = None, cache: CacheEntry | None = None
    ) -> ImageRecord:
        if claim is not None:
            return self._put_claimed(record, claim, cache)

        def keep_corrections(current: dict[str, Any] | None) -> tuple[ImageRecord, TagCorrections | None]:
            # The provider output is replaced; people's decisions stay as stored.
            return record, _corrections_of(current)

        stored = self._write(record.bucket, record.key, keep_corrections)
        if stored is None:
            raise TransientError(
                f"image record {record.bucket}/{record.key} kept changing while being written"
            )
        if cache is not None:
            self.cache_result(cache.key, cache.result, ttl_seconds=cache.ttl_seconds)
        return stored

    def correct(self, bucket: str, key: str, update: CorrectionUpdate) -> ImageRecord | None:
        def apply(current: dict[str, Any] | None) -> tuple[ImageRecord, TagCorrections | None] | None:
            record = _record_of(current)
            if record is None:  # no item, or only a claim so far
                raise _NoRecord
            if self._claim_live(current):
                raise _ClaimHeld
            return record, update(record)

        deadline = self._clock() + CORRECTION_WAIT_SECONDS
        attempt = 0
        while True:
            try:
                # Never while a claim is held: the claimed write replaces the whole item (one
                # BatchWriteItem, no condition), so a correction waits for it and is then kept.
                stored = self._write(bucket, key, apply, unclaimed=True)
            except _NoRecord:
                return None
            except _ClaimHeld:
                if self._clock() >= deadline:
                    raise ConflictError(
                        f"image {bucket}/{key} is being tagged; try the correction again"
                    ) from None
                self._sleep(min(0.5, _CONFLICT_BACKOFF * 2**attempt))
                attempt += 1
                continue
            if stored is None:
                raise ConflictError(f"image record {bucket}/{key} kept changing; try the correction again")
            return stored

    def _claim_live(self, item: dict[str, Any] | None) -> bool:
        until = (item or {}).get("claim_until")
        return until is not None and float(until) >= self._clock()

    def _write(
        self,
        bucket: str,
        key: str,
        plan: Callable[[dict[str, Any] | None], tuple[ImageRecord, TagCorrections | None] | None],
        *,
        unclaimed: bool = False,
    ) -> ImageRecord | None:
        """Read the image item, plan the new record and corrections from it, write both with the
        index items in one transaction guarded by the item's revision (and, ``unclaimed``, by no
        live claim); on conflict read again. The record as written, or None when the item kept
        changing."""
        for attempt in range(_PUT_ATTEMPTS):
            current = self._get_image_item(bucket, key)
            planned = plan(current)
            if planned is None:
                return None
            record, corrections = planned
            stored = record.model_copy(update={"corrections": corrections})
            try:
                self._client.transact_write_items(
                    TransactItems=self._put_actions(
                        stored, current, unclaimed_at=self._clock() if unclaimed else None
                    )
                )
                return stored
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                # Another writer changed this image between our read and write: re-read, retry
                # after a jittered pause so racing writers spread out.
                self._sleep(random.uniform(0, _CONFLICT_BACKOFF * 2**attempt))
        return None

    def _put_claimed(self, record: ImageRecord, claim: Claim, cache: CacheEntry | None) -> ImageRecord:
        """One BatchWriteItem, no transaction (half the write units): the record, the index items it
        names, deletes of the ones its previous version named and no longer does, and the cached
        result. No read: the claim returned the item as it was, with people's corrections, and nobody
        else writes while it is held (a correction waits for the claim to end). The claim is the
        guard: a claim lasts until the function's own timeout (see
        :data:`autotag.service.CLAIM_MARGIN_SECONDS`), so a writer still running holds it; one that
        finds it (nearly) lapsed writes nothing (:class:`ClaimLostError`). The record item carries no
        claim attributes: the write ends the claim. Unprocessed items are sent again while the claim
        lasts. Why the index still matches the record: docs/storage.md."""
        if claim.until - self._clock() < CLAIM_WRITE_GUARD_SECONDS:
            raise ClaimLostError(f"{record.bucket}/{record.key}")
        current = claim.snapshot or None
        stored = record.model_copy(update={"corrections": _corrections_of(current)})
        actions = self._put_actions(stored, current, claim_token=claim.token)
        requests: list[dict[str, Any]] = []
        for action in actions:
            if "Put" in action:
                requests.append({"PutRequest": {"Item": action["Put"]["Item"]}})
            else:
                requests.append({"DeleteRequest": {"Key": action["Delete"]["Key"]}})
        if cache is not None:
            item = self._cache_item(cache.key, cache.result, cache.ttl_seconds)
            requests.append({"PutRequest": {"Item": item}})
        self._batch_write(requests, until=claim.until, what=f"{record.bucket}/{record.key}")
        return stored

    def _batch_write(self, requests: list[dict[str, Any]], *, until: float, what: str) -> None:
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            pending = requests[start : start + BATCH_WRITE_MAX]
            attempt = 0
            while pending:
                response = self._client.batch_write_item(RequestItems={self._table: pending})
                pending = response.get("UnprocessedItems", {}).get(self._table, [])
                if not pending:
                    break
                if until - self._clock() < CLAIM_WRITE_GUARD_SECONDS or attempt >= _PUT_ATTEMPTS:
                    raise TransientError(
                        f"image record {what}: DynamoDB left {len(pending)} writes unprocessed"
                    )
                self._sleep(random.uniform(0, _CONFLICT_BACKOFF * 2**attempt))
                attempt += 1

    def _put_actions(
        self,
        record: ImageRecord,
        current: dict[str, Any] | None,
        *,
        claim_token: str | None = None,
        unclaimed_at: float | None = None,
    ) -> list[dict[str, Any]]:
        pk = image_pk(record.bucket, record.key)
        tags = record.tags_in_force if record.status is ImageStatus.TAGGED else ()
        entries = index_entries(record.bucket, record.key, tags)
        new_keys = {(e.pk, e.sk) for e in entries}
        old_keys = _index_keys(current, record.bucket, record.key)
        revision = int(current.get("revision", 0)) if current else 0
        updated_at = record.updated_at.isoformat()
        image_item = {
            "pk": pk,
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
            "revision": revision + 1,
            "feed_pk": feed_pk(record.status.value),
            "feed_sk": feed_sk(updated_at, record.bucket, record.key),
            "summary": ImageSummary.of(record).model_dump_json(),
        }
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
            values[":now"] = _item({"n": _number(unclaimed_at)})["n"]
        if current is None and claim_token is None:
            conditions.append("attribute_not_exists(pk)")
        elif current is None or "revision" not in current:  # no record yet (perhaps only a claim)
            conditions.append("attribute_not_exists(revision)")
        else:
            conditions.append("revision = :revision")
            values[":revision"] = {"N": str(revision)}
        put_image: dict[str, Any] = {
            "TableName": self._table,
            "Item": _item(image_item),
            "ConditionExpression": " AND ".join(conditions),
        }
        if values:
            put_image["ExpressionAttributeValues"] = values
        actions: list[dict[str, Any]] = [{"Put": put_image}]
        # A key in both sets is overwritten by its Put (one transaction may not touch an item twice).
        for stale_pk, stale_sk in sorted(old_keys - new_keys):
            actions.append(
                {"Delete": {"TableName": self._table, "Key": _item({"pk": stale_pk, "sk": stale_sk})}}
            )
        for entry in entries:
            index_item = {
                "pk": entry.pk,
                "sk": entry.sk,
                "type": "tag",
                "tag": entry.tag,
                "confidence": _number(entry.confidence),
                "providers": list(entry.providers),
                "bucket": record.bucket,
                "key": record.key,
                "version_id": record.version_id,
                "updated_at": updated_at,
            }
            actions.append({"Put": {"TableName": self._table, "Item": _item(index_item)}})
        return actions

    # --- The tag index -------------------------------------------------------------------------

    def images_with_tag(self, tag: str, *, limit: int = 50, cursor: str | None = None) -> Page[TagHit]:
        check_limit(limit)
        pk = tag_pk(tag)
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ScanIndexForward": True,
            # One more than asked: a cursor is returned only when there really is a next page.
            "Limit": limit + 1,
        }
        if cursor is not None:
            start_pk, start_sk = decode_cursor(cursor, expected_pk=pk)
            query["ExclusiveStartKey"] = _item({"pk": start_pk, "sk": start_sk})
        items: list[dict[str, Any]] = []
        while len(items) <= limit:
            response = self._client.query(**query)
            items.extend(_plain(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        page, more = items[:limit], len(items) > limit
        return Page[TagHit](
            items=[_hit(i) for i in page],
            cursor=encode_cursor(pk, page[-1]["sk"]) if more and page else None,
        )

    # --- The feed of recent images -----------------------------------------------------------------

    def recent(
        self, status: ImageStatus, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ImageSummary]:
        check_limit(limit)
        partition = feed_pk(status.value)
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": FEED_INDEX,
            "KeyConditionExpression": "feed_pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": partition}},
            "ScanIndexForward": False,
            "Limit": limit + 1,
        }
        if cursor is not None:
            start_partition, start_sort, start_pk = decode_feed_cursor(cursor, expected_feed_pk=partition)
            query["ExclusiveStartKey"] = _item(
                {"feed_pk": start_partition, "feed_sk": start_sort, "pk": start_pk, "sk": META_SK}
            )
        items: list[dict[str, Any]] = []
        while len(items) <= limit:
            response = self._client.query(**query)
            items.extend(_plain(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        page, more = items[:limit], len(items) > limit
        last = page[-1] if page else None
        return Page[ImageSummary](
            items=[ImageSummary.model_validate_json(i["summary"]) for i in page],
            cursor=encode_feed_cursor(partition, last["feed_sk"], last["pk"]) if more and last else None,
        )

    # --- The content-hash cache ----------------------------------------------------------------

    def cached_result(self, cache_key: str) -> TagResult | None:
        response = self._client.get_item(
            TableName=self._table, Key=_item({"pk": cache_pk(cache_key), "sk": META_SK})
        )
        item = response.get("Item")
        if item is None:
            return None
        return self._cached_of(_plain(item))

    def cached_results(self, cache_keys: list[str]) -> dict[str, TagResult]:
        """BatchGetItem, 100 keys a request; keys DynamoDB leaves unprocessed are asked again."""
        found: dict[str, TagResult] = {}
        unique = list(dict.fromkeys(cache_keys))
        for start in range(0, len(unique), BATCH_GET_MAX):
            keys = [_item({"pk": cache_pk(k), "sk": META_SK}) for k in unique[start : start + BATCH_GET_MAX]]
            request: dict[str, Any] = {self._table: {"Keys": keys}}
            for attempt in range(_PUT_ATTEMPTS):
                response = self._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    values = _plain(item)
                    result = self._cached_of(values)
                    if result is not None:
                        found[str(values["pk"]).removeprefix(CACHE_PREFIX)] = result
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._sleep(random.uniform(0, _CONFLICT_BACKOFF * 2**attempt))
        return found

    def _cached_of(self, values: dict[str, Any]) -> TagResult | None:
        # TTL deletion lags (up to days): an expired item still read back is a miss.
        if float(values.get(TTL_ATTRIBUTE, 0)) <= self._clock():
            return None
        if RESULT_ATTRIBUTE in values:
            return TagResult.model_validate_json(zlib.decompress(bytes(values[RESULT_ATTRIBUTE])))
        return TagResult.model_validate_json(values["result"])  # written before compression

    def cache_result(self, cache_key: str, result: TagResult, *, ttl_seconds: int) -> None:
        self._client.put_item(TableName=self._table, Item=self._cache_item(cache_key, result, ttl_seconds))

    def _cache_item(self, cache_key: str, result: TagResult, ttl_seconds: int) -> dict[str, Any]:
        item = {
            "pk": cache_pk(cache_key),
            "sk": META_SK,
            "type": "cache",
            RESULT_ATTRIBUTE: zlib.compress(result.model_dump_json(exclude_defaults=True).encode(), 9),
            TTL_ATTRIBUTE: int(self._clock() + ttl_seconds),
        }
        return _item(item)


_RECORD_FIELDS_ON_ITEM = ("bucket", "key", "version_id", "etag", "status", "updated_at")
"""Record fields the image item holds as attributes: left out of the compressed JSON."""


def _compressed(record: ImageRecord) -> bytes:
    text = record.model_dump_json(exclude_defaults=True, exclude={*_RECORD_FIELDS_ON_ITEM, "corrections"})
    return zlib.compress(text.encode(), 9)


def _index_keys(item: dict[str, Any] | None, bucket: str, key: str) -> set[tuple[str, str]]:
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


def _record_of(item: dict[str, Any] | None) -> ImageRecord | None:
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
    return record.model_copy(update={"corrections": _corrections_of(item)})


class _NoRecord(Exception):
    """No image record to correct."""


class _ClaimHeld(Exception):
    """The image is being tagged (a live claim): a correction waits for the claimed write."""


def _corrections_of(item: dict[str, Any] | None) -> TagCorrections | None:
    raw = (item or {}).get("corrections")
    return None if raw is None else TagCorrections.model_validate_json(raw)


def _hit(item: dict[str, Any]) -> TagHit:
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
