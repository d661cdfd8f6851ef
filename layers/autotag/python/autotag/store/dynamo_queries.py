"""The DynamoDB store's paged reads: the tag index (images carrying a tag, best first) and the feed
of recent images by status (the ``feed`` index, newest first). Each asks for one item more than
the page, so a cursor is returned only when there really is a next page."""

from __future__ import annotations

from typing import Any

from autotag.store.base import ImageStatus, ImageSummary, Page, TagHit
from autotag.store.dynamo_items import from_item, hit_of, key_of, summary_of, to_item
from autotag.store.keys import (
    META_SK,
    check_limit,
    decode_cursor,
    decode_feed_cursor,
    encode_cursor,
    encode_feed_cursor,
    feed_pk,
    tag_pk,
)


def images_with_tag(client: Any, table: str, tag: str, *, limit: int, cursor: str | None) -> Page[TagHit]:
    check_limit(limit)
    pk = tag_pk(tag)
    query: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": pk}},
        "ScanIndexForward": True,
    }
    if cursor is not None:
        start_pk, start_sk = decode_cursor(cursor, expected_pk=pk)
        query["ExclusiveStartKey"] = key_of(start_pk, start_sk)
    page, more = _page(client, query, limit)
    return Page[TagHit](
        items=[hit_of(i) for i in page],
        cursor=encode_cursor(pk, page[-1]["sk"]) if more and page else None,
    )


def recent(
    client: Any, table: str, index: str, status: ImageStatus, *, limit: int, cursor: str | None
) -> Page[ImageSummary]:
    check_limit(limit)
    partition = feed_pk(status.value)
    query: dict[str, Any] = {
        "TableName": table,
        "IndexName": index,
        "KeyConditionExpression": "feed_pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": partition}},
        "ScanIndexForward": False,
    }
    if cursor is not None:
        start_partition, start_sort, start_pk = decode_feed_cursor(cursor, expected_feed_pk=partition)
        query["ExclusiveStartKey"] = to_item(
            {"feed_pk": start_partition, "feed_sk": start_sort, "pk": start_pk, "sk": META_SK}
        )
    page, more = _page(client, query, limit)
    last = page[-1] if page else None
    return Page[ImageSummary](
        items=[summary_of(i) for i in page],
        cursor=encode_feed_cursor(partition, last["feed_sk"], last["pk"]) if more and last else None,
    )


def _page(client: Any, query: dict[str, Any], limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` items (plain values) and whether there are more: one more than asked is read,
    following DynamoDB's own pages until there is one more or none."""
    query = {**query, "Limit": limit + 1}
    items: list[dict[str, Any]] = []
    while len(items) <= limit:
        response = client.query(**query)
        items.extend(from_item(i) for i in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            break
        query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return items[:limit], len(items) > limit
