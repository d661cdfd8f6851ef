"""The DynamoDB ImageStore: one on-demand table holding image records, the tag index and the cache.

Key design in :mod:`autotag.store.keys` and docs/storage.md. A claimed put (every S3 event and
request: :mod:`autotag.ordering`) writes the record, its index items and the cached result in one
BatchWriteItem under the claim; an unclaimed put replaces the record and its index items in one
transaction, guarded by a revision number on the record so two writers of the same image cannot
leave each other's index items behind.

How items hold records: :mod:`autotag.store.dynamo_items`; the tag index and feed queries:
:mod:`autotag.store.dynamo_queries`.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from autotag.decisions import TagCorrections
from autotag.errors import ClaimLostError, ConflictError, TransientError
from autotag.models import TagResult
from autotag.ordering import Claim, EventOrder, Refusal, decide
from autotag.store import dynamo_queries
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
from autotag.store.dynamo_items import (
    RECORD_ATTRIBUTE,
    RESULT_ATTRIBUTE,
    compressed_result,
    corrections_of,
    from_item,
    key_of,
    number,
    put_actions,
    record_of,
    result_of,
    to_item,
)
from autotag.store.keys import CACHE_PREFIX, META_SK, cache_pk, image_pk
from autotag.store.schema import FEED_INDEX, TTL_ATTRIBUTE

BATCH_WRITE_MAX = 25
"""Requests per BatchWriteItem."""
BATCH_GET_MAX = 100
"""Keys per BatchGetItem."""
CLAIM_WRITE_GUARD_SECONDS = 1.0
"""A claimed write is sent only while the claim has at least this long to run."""
_PUT_ATTEMPTS = 8
_CONFLICT_BACKOFF = 0.02


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
        return record_of(self._get_image_item(bucket, key))

    def _get_image_item(self, bucket: str, key: str) -> dict[str, Any] | None:
        response = self._client.get_item(
            TableName=self._table,
            Key=key_of(image_pk(bucket, key)),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else from_item(item)

    # --- Claims (autotag.ordering) --------------------------------------------------------------

    def claim(self, bucket: str, key: str, order: EventOrder, *, lease_seconds: float) -> Claim | Refusal:
        """One conditional UpdateItem on the record item: the rules of :func:`autotag.ordering.decide`
        as a condition expression; a refusal is classified from the item DynamoDB returns."""
        now = self._clock()
        until = now + lease_seconds
        claim_token = uuid.uuid4().hex
        values: dict[str, Any] = {":now": number(now), ":until": number(until), ":token": claim_token}
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
            "Key": key_of(image_pk(bucket, key)),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": to_item(values),
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
            old = from_item(error.response.get("Item") or {}) or self._get_image_item(bucket, key)
            return self._refusal(order, old, now)
        old = from_item(response.get("Attributes") or {}) or None
        return Claim(
            bucket=bucket,
            key=key,
            order=order,
            until=until,
            previous=record_of(old),
            token=claim_token,
            snapshot=old,
        )

    def _refusal(self, order: EventOrder, old: dict[str, Any] | None, now: float) -> Refusal:
        old = old or {}
        until = old.get("claim_until")
        refusal = decide(
            order,
            record=record_of(old),
            stored_sequencer=old.get("sequencer"),
            claim_until=None if until is None else float(until),
            claim_sequencer=old.get("claim_sequencer"),
            now=now,
        )
        # The condition failed, so decide() refuses too unless the item changed in between: then
        # the event is retried as busy (the next attempt sees the item as it now is).
        return refusal or Refusal(None, "the record changed while being claimed", record_of(old), 1.0)

    def release(self, claim: Claim) -> None:
        key = key_of(image_pk(claim.bucket, claim.key))
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
            return record, corrections_of(current)

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
            record = record_of(current)
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
                    TransactItems=put_actions(
                        self._table, stored, current, unclaimed_at=self._clock() if unclaimed else None
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
        :data:`autotag.recording.CLAIM_MARGIN_SECONDS`), so a writer still running holds it; one that
        finds it (nearly) lapsed writes nothing (:class:`ClaimLostError`). The record item carries no
        claim attributes: the write ends the claim. Unprocessed items are sent again while the claim
        lasts. Why the index still matches the record: docs/storage.md."""
        if claim.until - self._clock() < CLAIM_WRITE_GUARD_SECONDS:
            raise ClaimLostError(f"{record.bucket}/{record.key}")
        current = claim.snapshot or None
        stored = record.model_copy(update={"corrections": corrections_of(current)})
        actions = put_actions(self._table, stored, current, claim_token=claim.token)
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

    # --- The tag index -------------------------------------------------------------------------

    def images_with_tag(self, tag: str, *, limit: int = 50, cursor: str | None = None) -> Page[TagHit]:
        return dynamo_queries.images_with_tag(self._client, self._table, tag, limit=limit, cursor=cursor)

    # --- The feed of recent images -----------------------------------------------------------------

    def recent(
        self, status: ImageStatus, *, limit: int = 50, cursor: str | None = None
    ) -> Page[ImageSummary]:
        return dynamo_queries.recent(
            self._client, self._table, FEED_INDEX, status, limit=limit, cursor=cursor
        )

    # --- The content-hash cache ----------------------------------------------------------------

    def cached_result(self, cache_key: str) -> TagResult | None:
        response = self._client.get_item(TableName=self._table, Key=key_of(cache_pk(cache_key)))
        item = response.get("Item")
        if item is None:
            return None
        return self._cached_of(from_item(item))

    def cached_results(self, cache_keys: list[str]) -> dict[str, TagResult]:
        """BatchGetItem, 100 keys a request; keys DynamoDB leaves unprocessed are asked again."""
        found: dict[str, TagResult] = {}
        unique = list(dict.fromkeys(cache_keys))
        for start in range(0, len(unique), BATCH_GET_MAX):
            keys = [key_of(cache_pk(k)) for k in unique[start : start + BATCH_GET_MAX]]
            request: dict[str, Any] = {self._table: {"Keys": keys}}
            for attempt in range(_PUT_ATTEMPTS):
                response = self._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    values = from_item(item)
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
        return result_of(values)

    def cache_result(self, cache_key: str, result: TagResult, *, ttl_seconds: int) -> None:
        self._client.put_item(TableName=self._table, Item=self._cache_item(cache_key, result, ttl_seconds))

    def _cache_item(self, cache_key: str, result: TagResult, ttl_seconds: int) -> dict[str, Any]:
        item = {
            "pk": cache_pk(cache_key),
            "sk": META_SK,
            "type": "cache",
            RESULT_ATTRIBUTE: compressed_result(result),
            TTL_ATTRIBUTE: int(self._clock() + ttl_seconds),
        }
        return to_item(item)


class _NoRecord(Exception):
    """No image record to correct."""


class _ClaimHeld(Exception):
    """The image is being tagged (a live claim): a correction waits for the claimed write."""
