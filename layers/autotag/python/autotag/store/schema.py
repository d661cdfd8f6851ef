"""The DynamoDB tables' schema, defined once: key names, the TTL attribute, the feed index and the
idempotency table. The CDK stack (:mod:`infra.storage`), the local stack (:mod:`autotag.local.provision`),
the store (:mod:`autotag.store.dynamodb`) and the integration tests all build from these specs
(see autotag.store.keys and docs/storage.md for what the keys hold)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

# Single-table design.
TABLE_PARTITION_KEY = "pk"
TABLE_SORT_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"
"""Epoch seconds; set on result-cache items only."""
FEED_INDEX = "feed"
"""Global secondary index over image records: by status, most recently processed first."""
FEED_PARTITION_KEY = "feed_pk"
FEED_SORT_KEY = "feed_sk"
FEED_PROJECTED_ATTRIBUTES = ("summary",)
"""Besides the keys, what the feed index carries (a small JSON summary of the image)."""

# Powertools idempotency defaults (DynamoDBPersistenceLayer): key ``id``, TTL ``expiration``.
IDEMPOTENCY_PARTITION_KEY = "id"
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AttributeSpec(_Spec):
    name: str
    type: Literal["S", "N", "B"] = "S"


class IndexSpec(_Spec):
    name: str
    partition_key: AttributeSpec
    sort_key: AttributeSpec
    projected_attributes: tuple[str, ...] = ()


class TableSpec(_Spec):
    partition_key: AttributeSpec
    sort_key: AttributeSpec | None = None
    indexes: tuple[IndexSpec, ...] = ()
    ttl_attribute: str | None = None
    billing_mode: Literal["PAY_PER_REQUEST"] = "PAY_PER_REQUEST"
    point_in_time_recovery: bool = True


TABLE = TableSpec(
    partition_key=AttributeSpec(name=TABLE_PARTITION_KEY),
    sort_key=AttributeSpec(name=TABLE_SORT_KEY),
    ttl_attribute=TTL_ATTRIBUTE,
    indexes=(
        IndexSpec(
            name=FEED_INDEX,
            partition_key=AttributeSpec(name=FEED_PARTITION_KEY),
            sort_key=AttributeSpec(name=FEED_SORT_KEY),
            projected_attributes=FEED_PROJECTED_ATTRIBUTES,
        ),
    ),
)
"""The images table: image records, tag index items, cached results."""
IDEMPOTENCY_TABLE = TableSpec(
    partition_key=AttributeSpec(name=IDEMPOTENCY_PARTITION_KEY),
    ttl_attribute=IDEMPOTENCY_TTL_ATTRIBUTE,
)


def _key_schema(partition_key: AttributeSpec, sort_key: AttributeSpec | None) -> list[dict[str, str]]:
    keys = [{"AttributeName": partition_key.name, "KeyType": "HASH"}]
    if sort_key is not None:
        keys.append({"AttributeName": sort_key.name, "KeyType": "RANGE"})
    return keys


def index_definition(index: IndexSpec) -> dict[str, Any]:
    """CreateTable's GlobalSecondaryIndexes entry for an index spec."""
    projection: dict[str, Any] = {"ProjectionType": "KEYS_ONLY"}
    if index.projected_attributes:
        projection = {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(index.projected_attributes)}
    return {
        "IndexName": index.name,
        "KeySchema": _key_schema(index.partition_key, index.sort_key),
        "Projection": projection,
    }


def table_definition(name: str, spec: TableSpec = TABLE) -> dict[str, Any]:
    """CreateTable arguments for a table spec."""
    keys = [spec.partition_key, spec.sort_key]
    for index in spec.indexes:
        keys += [index.partition_key, index.sort_key]
    attributes: dict[str, str] = {}
    for attribute in keys:
        if attribute is not None:
            attributes.setdefault(attribute.name, attribute.type)
    definition: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in attributes.items()],
        "KeySchema": _key_schema(spec.partition_key, spec.sort_key),
        "BillingMode": spec.billing_mode,
    }
    if spec.indexes:
        definition["GlobalSecondaryIndexes"] = [index_definition(index) for index in spec.indexes]
    return definition


def create_table(client: Any, name: str, spec: TableSpec = TABLE) -> None:
    """Create a table from its spec (with TTL and point-in-time recovery) and wait until it is
    active: the local stack and the integration tests, in the AWS emulator."""
    client.create_table(**table_definition(name, spec))
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    if spec.ttl_attribute:
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute}
        )
    if spec.point_in_time_recovery:
        client.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
