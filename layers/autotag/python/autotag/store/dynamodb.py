"""The DynamoDB ImageStore: one on-demand table holding image records, the tag index and the cache.

Key design in :mod:`autotag.store.keys` and docs/storage.md. A put replaces the record and its tag
index items in one transaction, guarded by a revision number on the record so two writers of the
same image cannot leave each other's index items behind.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from autotag.decisions import TagCorrections
from autotag.errors import ConflictError, TransientError
from autotag.models import TagResult
from autotag.ordering import Claim, ClaimLostError, EventOrder, Refusal, decide, normalize_sequencer
from autotag.resources import FEED_INDEX, TABLE, IndexSpec
from autotag.store.base import CorrectionUpdate, ImageRecord, ImageStatus, ImageSummary, Page, TagHit
from autotag.store.keys import (
    META_SK,
    cache_pk,
    check_limit,
    decode_cursor,
    decode_feed_cursor,
    encode_cursor,
    encode_feed_cursor,
    feed_pk,
    feed_sk,
    image_pk,
    index_entries,
    tag_pk,
)

TTL_ATTRIBUTE = "expires_at"
_PUT_ATTEMPTS = 8
_CONFLICT_BACKOFF = 0.02
_CLAIM_ATTRIBUTES = ("claim_token", "claim_until", "claim_sequencer")

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def index_definition(index: IndexSpec) -> dict[str, Any]:
    """CreateTable's GlobalSecondaryIndexes entry for an index spec."""
    projection: dict[str, Any] = {"ProjectionType": "KEYS_ONLY"}
    if index.projected_attributes:
        projection = {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(index.projected_attributes)}
    return {
        "IndexName": index.name,
        "KeySchema": [
            {"AttributeName": index.partition_key.name, "KeyType": "HASH"},
            {"AttributeName": index.sort_key.name, "KeyType": "RANGE"},
        ],
        "Projection": projection,
    }


def table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments for the table this store expects (the local stack and tests use it;
    the CDK stack declares the same keys)."""
    attributes = [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ]
    for index in TABLE.indexes:
        attributes += [
            {"AttributeName": index.partition_key.name, "AttributeType": index.partition_key.type},
            {"AttributeName": index.sort_key.name, "AttributeType": index.sort_key.type},
        ]
    return {
        "TableName": name,
        "AttributeDefinitions": attributes,
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "GlobalSecondaryIndexes": [index_definition(index) for index in TABLE.indexes],
    }


def create_table(client: Any, name: str) -> None:
    """Create the table (with its TTL attribute) and wait until it is active."""
    client.create_table(**table_definition(name))
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )


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
                    ConditionExpression="claim_token = :token AND attribute_not_exists(#record)",
                    ExpressionAttributeNames={"#record": "record"},
                    ExpressionAttributeValues=values,
                )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    # --- Writes ----------------------------------------------------------------------------------

    def put(self, record: ImageRecord, *, claim: Claim | None = None) -> ImageRecord:
        if claim is not None:
            return self._put_claimed(record, claim)

        def keep_corrections(current: dict[str, Any] | None) -> tuple[ImageRecord, TagCorrections | None]:
            # The provider output is replaced; people's decisions stay as stored.
            return record, _corrections_of(current)

        stored = self._write(record.bucket, record.key, keep_corrections)
        if stored is None:
            raise TransientError(
                f"image record {record.bucket}/{record.key} kept changing while being written"
            )
        return stored

    def correct(self, bucket: str, key: str, update: CorrectionUpdate) -> ImageRecord | None:
        def apply(current: dict[str, Any] | None) -> tuple[ImageRecord, TagCorrections | None] | None:
            record = _record_of(current)
            if record is None:  # no item, or only a claim so far
                raise _NoRecord
            return record, update(record)

        try:
            # A claim held on the record stays held: its final write re-applies this correction.
            stored = self._write(bucket, key, apply, keep_claim=True)
        except _NoRecord:
            return None
        if stored is None:
            raise ConflictError(f"image record {bucket}/{key} kept changing; try the correction again")
        return stored

    def _write(
        self,
        bucket: str,
        key: str,
        plan: Callable[[dict[str, Any] | None], tuple[ImageRecord, TagCorrections | None] | None],
        *,
        keep_claim: bool = False,
    ) -> ImageRecord | None:
        """Read the image item, plan the new record and corrections from it, write both with the
        index items in one transaction guarded by the item's revision; on conflict read again.
        The record as written, or None when the item kept changing."""
        for attempt in range(_PUT_ATTEMPTS):
            current = self._get_image_item(bucket, key)
            planned = plan(current)
            if planned is None:
                return None
            record, corrections = planned
            stored = record.model_copy(update={"corrections": corrections})
            try:
                self._client.transact_write_items(
                    TransactItems=self._put_actions(stored, current, keep_claim=keep_claim)
                )
                return stored
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                # Another writer changed this image between our read and write: re-read, retry
                # after a jittered pause so racing writers spread out.
                self._sleep(random.uniform(0, _CONFLICT_BACKOFF * 2**attempt))
        return None

    def _put_claimed(self, record: ImageRecord, claim: Claim) -> ImageRecord:
        """No read: the claim returned the item as it was (with its corrections), and only a
        correction writes while it is held. The write requires the claim and the revision the claim
        saw; a correction made meanwhile bumped the revision, so the item is read again and the
        write retried with that correction applied."""
        current = claim.snapshot or None
        for attempt in range(_PUT_ATTEMPTS):
            stored = record.model_copy(update={"corrections": _corrections_of(current)})
            try:
                self._client.transact_write_items(
                    TransactItems=self._put_actions(stored, current, claim_token=claim.token)
                )
                return stored
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                current = self._get_image_item(record.bucket, record.key)
                if current is None or current.get("claim_token") != claim.token:
                    raise ClaimLostError(f"{record.bucket}/{record.key}") from None
                self._sleep(random.uniform(0, _CONFLICT_BACKOFF * 2**attempt))
        raise TransientError(f"image record {record.bucket}/{record.key} kept changing while being written")

    def _put_actions(
        self,
        record: ImageRecord,
        current: dict[str, Any] | None,
        *,
        claim_token: str | None = None,
        keep_claim: bool = False,
    ) -> list[dict[str, Any]]:
        pk = image_pk(record.bucket, record.key)
        tags = record.tags_in_force if record.status is ImageStatus.TAGGED else ()
        entries = index_entries(record.bucket, record.key, tags)
        new_keys = {(e.pk, e.sk) for e in entries}
        old_keys = {(k["pk"], k["sk"]) for k in (current or {}).get("index_keys", [])}
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
            "sha256": record.sha256,
            "status": record.status.value,
            "updated_at": updated_at,
            "tag_count": len(record.tags),
            "record": record.model_dump_json(exclude={"corrections"}),
            "corrections": record.corrections.model_dump_json() if record.corrections else None,
            "index_keys": [{"pk": e.pk, "sk": e.sk} for e in entries],
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
        elif keep_claim and current is not None and current.get("claim_token") is not None:
            # A correction during a claim: the claim stays as it is (its holder re-applies the
            # correction when it writes; the revision below makes that write see it).
            for name in _CLAIM_ATTRIBUTES:
                image_item[name] = current.get(name)
            conditions.append("claim_token = :token")
            values[":token"] = {"S": current["claim_token"]}
        elif keep_claim:
            conditions.append("attribute_not_exists(claim_token)")
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
        values = _plain(item)
        # TTL deletion lags (up to days): an expired item still read back is a miss.
        if float(values.get(TTL_ATTRIBUTE, 0)) <= self._clock():
            return None
        return TagResult.model_validate_json(values["result"])

    def cache_result(self, cache_key: str, result: TagResult, *, ttl_seconds: int) -> None:
        item = {
            "pk": cache_pk(cache_key),
            "sk": META_SK,
            "type": "cache",
            "result": result.model_dump_json(),
            TTL_ATTRIBUTE: int(self._clock() + ttl_seconds),
        }
        self._client.put_item(TableName=self._table, Item=_item(item))


def _record_of(item: dict[str, Any] | None) -> ImageRecord | None:
    """The record an image item holds, with its corrections (None for an item that is only a claim
    so far)."""
    if not item or "record" not in item:
        return None
    record = ImageRecord.model_validate_json(item["record"])
    return record.model_copy(update={"corrections": _corrections_of(item)})


class _NoRecord(Exception):
    """No image record to correct."""


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
