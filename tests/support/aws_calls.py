"""Count the AWS requests a piece of code makes, by service and operation, and the DynamoDB
capacity they consume, from the client side (a botocore event hook).

:class:`AwsCallLog` hooks every botocore client created while it is installed (the hook rides on
``botocore.handlers.BUILTIN_HANDLERS``, which each new botocore session registers, so it sees the
functions' own clients and Powertools' idempotency client alike). It records one entry per API call
(not per retry attempt) with the DynamoDB capacity the call consumes under DynamoDB's published
sizing rules (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html
and .../CapacityUnitCalculations.html):

- a write costs 1 write unit per 1 KB of item (rounded up), a transactional write twice that;
- a strongly consistent read 1 read unit per 4 KB returned (rounded up), an eventually consistent
  read half that, a transactional read twice that; a Query or Scan rounds the sum of what it
  returns up to 4 KB once;
- an item's size is the UTF-8 length of its attribute names plus its values: strings by UTF-8
  length, binary by bytes, numbers by 1 byte per two significant digits plus 1, booleans and nulls
  1 byte, lists and maps 3 bytes plus 1 per element plus their elements, sets their elements.

- a write to an item that a global secondary index holds (it has the index's key attributes,
  before or after) also writes the index: 1 write unit per 1 KB of the index entry (the table's
  and the index's keys plus the projected attributes), a put or a delete, or a delete and a put
  when the write changes the index's keys; none when it changes nothing the index holds
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes).

A write whose item the request does not carry (UpdateItem, DeleteItem, a transaction's Update or
Delete) is sized by the larger of the item before and after, as DynamoDB sizes it. With a reader
client (``AwsCallLog(reader=...)``) an UpdateItem or DeleteItem is sized at once: the item as it was
from the response (``ReturnValues: ALL_OLD``, which the claim asks for) and as it is now, read
back right after the call on the same thread with calls not logged. Without a reader (or for a
transaction's actions) :meth:`AwsCallLog.size_updates` reads each such item back once at the end,
which is exact only for items that never shrink later. A conditional write that fails still
consumes its units, as DynamoDB's do. Index writes are counted only with a reader: it reads each
item a write touches before and after the call (calls not logged) and the table's indexes once.
Used by the request-count test and by ``bench/bench_aws_calls.py``.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.handlers import BUILTIN_HANDLERS

from tests.support.images import jpeg_bytes

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096


# --- DynamoDB item sizes ----------------------------------------------------------------------------


def _number_size(text: str) -> int:
    digits = Decimal(text).normalize().as_tuple().digits
    significant = len(digits) if any(digits) else 1
    return math.ceil(significant / 2) + 1


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one DynamoDB AttributeValue (low-level form, e.g. ``{"S": "x"}``)."""
    (kind, content), *_ = value.items()
    if kind == "S":
        return len(content.encode())
    if kind == "N":
        return _number_size(content)
    if kind == "B":
        return len(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in content)
    if kind == "NS":
        return sum(_number_size(n) for n in content)
    if kind == "BS":
        return sum(len(b) for b in content)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in content)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in content.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes of a DynamoDB item by the published rules (attribute names plus values)."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int, *, transactional: bool = False) -> int:
    units = max(1, math.ceil(size / WRITE_UNIT_BYTES))
    return units * 2 if transactional else units


def read_units(size: int, *, consistent: bool, transactional: bool = False) -> float:
    units = float(max(1, math.ceil(size / READ_UNIT_BYTES)))
    if transactional:
        return units * 2
    return units if consistent else units / 2


# --- The log -----------------------------------------------------------------------------------------


@dataclass
class PendingWrite:
    """A write whose item size is known only once the item is read back."""

    table: str
    key: dict[str, Any]
    transactional: bool
    size: int | None = None


@dataclass(frozen=True)
class IndexShape:
    """A global secondary index, as DescribeTable tells it."""

    keys: tuple[str, ...]
    table_keys: tuple[str, ...]
    projection: str
    attributes: tuple[str, ...] = ()

    @classmethod
    def of_table(cls, table: Mapping[str, Any]) -> list[IndexShape]:
        table_keys = tuple(k["AttributeName"] for k in table["KeySchema"])
        return [
            cls(
                keys=tuple(k["AttributeName"] for k in index["KeySchema"]),
                table_keys=table_keys,
                projection=index["Projection"]["ProjectionType"],
                attributes=tuple(index["Projection"].get("NonKeyAttributes", ())),
            )
            for index in table.get("GlobalSecondaryIndexes", [])
        ]

    def entry(self, item: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The index's entry for a table item (low-level values), or None when the index holds none."""
        if not item or any(name not in item for name in self.keys):
            return None
        if self.projection == "ALL":
            return dict(item)
        names = {*self.table_keys, *self.keys, *self.attributes}
        return {k: v for k, v in item.items() if k in names}

    def write_units(self, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> int:
        """Write units the index consumes when a table item goes from `before` to `after`."""
        old, new = self.entry(before), self.entry(after)
        if old is None and new is None:
            return 0
        if old is None or new is None:
            return write_units(item_size(old or new or {}))
        if all(old.get(k) == new.get(k) for k in self.keys):
            return 0 if old == new else write_units(max(item_size(old), item_size(new)))
        return write_units(item_size(old)) + write_units(item_size(new))


@dataclass
class Call:
    service: str
    operation: str
    consistent: bool = False
    write_units: float = 0.0
    read_units: float = 0.0
    pending: list[PendingWrite] = field(default_factory=list)
    items_written: list[tuple[str, int]] = field(default_factory=list)
    """(table, size in bytes) of each item the request carries whole."""
    entries: int = 1
    """Billable entries: events in a PutEvents, messages in an SQS batch send; 1 otherwise."""
    touched: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = field(default_factory=list)
    """(table, key, item before the call) of each item the write touches (with a reader)."""
    index_write_units: float = 0.0
    """Write units of the global secondary indexes the call wrote (with a reader)."""

    @property
    def name(self) -> str:
        return f"{self.service}.{self.operation}"

    @property
    def total_write_units(self) -> float:
        return (
            self.write_units
            + self.index_write_units
            + sum(write_units(p.size or 0, transactional=p.transactional) for p in self.pending)
        )


_CONTEXT_KEY = "autotag_call_log"
_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


class AwsCallLog:
    """Every AWS API call made by clients created while installed (see the module docstring)."""

    def __init__(self, *, reader: Any = None) -> None:
        self.calls: list[Call] = []
        self.reader = reader
        """A DynamoDB client to size UpdateItem / DeleteItem writes right after each call, and the
        index writes of every write."""
        self._indexes: dict[str, tuple[tuple[str, ...], list[IndexShape]]] = {}
        self._lock = threading.Lock()
        self._ignored = threading.local()
        self._handlers: list[tuple[str, Callable[..., Any]]] = [
            ("before-parameter-build", self._before),
            ("after-call", self._after),
        ]

    # Installation ---------------------------------------------------------------------------------

    def install(self) -> None:
        BUILTIN_HANDLERS.extend(self._handlers)

    def uninstall(self) -> None:
        for handler in self._handlers:
            if handler in BUILTIN_HANDLERS:
                BUILTIN_HANDLERS.remove(handler)

    @contextmanager
    def installed(self) -> Iterator[AwsCallLog]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    @contextmanager
    def ignoring(self) -> Iterator[None]:
        """Calls made in this block (on this thread) are not logged: setup, checks, cleanup."""
        before = getattr(self._ignored, "active", False)
        self._ignored.active = True
        try:
            yield
        finally:
            self._ignored.active = before

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    # Hooks ----------------------------------------------------------------------------------------

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if getattr(self._ignored, "active", False):
            return
        call = Call(
            service=model.service_model.service_id.hyphenize(),
            operation=model.name,
            consistent=bool(params.get("ConsistentRead")),
        )
        if call.service == "dynamodb":
            _size_request(call, params)
            if self.reader is not None and call.operation in _WRITES:
                with self.ignoring():
                    for table, key in self._keys_written(call.operation, params):
                        call.touched.append((table, key, self._read(table, key)))
            if call.operation == "BatchGetItem":
                call.entries = sum(len(r.get("Keys", [])) for r in params.get("RequestItems", {}).values())
        elif "Entries" in params:  # PutEvents, SendMessageBatch, DeleteMessageBatch
            call.entries = len(params["Entries"])
        context[_CONTEXT_KEY] = call
        with self._lock:
            self.calls.append(call)

    def _after(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        call = context.get(_CONTEXT_KEY)
        if call is None or call.service != "dynamodb" or not isinstance(parsed, dict):
            return
        consistent = call.consistent
        if call.touched:
            with self.ignoring():
                for table, key, before in call.touched:
                    after = self._read(table, key)
                    call.index_write_units += sum(
                        index.write_units(before, after) for index in self._table_shape(table)[1]
                    )
        if call.operation in ("UpdateItem", "DeleteItem") and self.reader is not None:
            pending = call.pending[0]
            before = item_size(parsed.get("Attributes", {}))
            with self.ignoring():
                after = self.reader.get_item(TableName=pending.table, Key=pending.key, ConsistentRead=True)
            pending.size = max(before, item_size(after.get("Item", {})))
        elif call.operation == "GetItem":
            size = item_size(parsed["Item"]) if "Item" in parsed else 0
            call.read_units = read_units(size, consistent=consistent)
        elif call.operation in ("Query", "Scan"):
            size = sum(item_size(item) for item in parsed.get("Items", []))
            call.read_units = read_units(size, consistent=consistent)
        elif call.operation == "BatchGetItem":
            returned = [item for items in parsed.get("Responses", {}).values() for item in items]
            # A key that finds no item still costs the minimum read, as in a GetItem.
            misses = max(0, call.entries - len(returned))
            call.read_units = sum(
                read_units(item_size(item), consistent=consistent) for item in returned
            ) + misses * read_units(0, consistent=consistent)
        elif call.operation == "TransactGetItems":
            call.read_units = sum(
                read_units(item_size(r.get("Item", {})), consistent=True, transactional=True)
                for r in parsed.get("Responses", [])
            )

    # Index writes (with a reader) -------------------------------------------------------------------

    def _table_shape(self, table: str) -> tuple[tuple[str, ...], list[IndexShape]]:
        """The table's key attributes and its global secondary indexes (described once)."""
        if table not in self._indexes:
            described = self.reader.describe_table(TableName=table)["Table"]
            keys = tuple(k["AttributeName"] for k in described["KeySchema"])
            self._indexes[table] = (keys, IndexShape.of_table(described))
        return self._indexes[table]

    def _read(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.reader.get_item(TableName=table, Key=key, ConsistentRead=True).get(
            "Item"
        )
        return item

    def _keys_written(self, operation: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(table, key) of each item a write request touches."""
        found: list[tuple[str, dict[str, Any]]] = []

        def add_item(table: str, item: dict[str, Any]) -> None:
            found.append((table, {name: item[name] for name in self._table_shape(table)[0]}))

        if operation == "PutItem":
            add_item(params["TableName"], params["Item"])
        elif operation in ("UpdateItem", "DeleteItem"):
            found.append((params["TableName"], params["Key"]))
        elif operation == "BatchWriteItem":
            for table, requests in params.get("RequestItems", {}).items():
                for request in requests:
                    if "PutRequest" in request:
                        add_item(table, request["PutRequest"]["Item"])
                    else:
                        found.append((table, request["DeleteRequest"]["Key"]))
        elif operation == "TransactWriteItems":
            for entry in params.get("TransactItems", []):
                if "Put" in entry:
                    add_item(entry["Put"]["TableName"], entry["Put"]["Item"])
                elif "ConditionCheck" not in entry:
                    action = next(iter(entry.values()))
                    found.append((action["TableName"], action["Key"]))
        return found

    # Sizing writes the request does not carry -----------------------------------------------------

    def size_updates(self, dynamodb: Any) -> None:
        """Read back each item an UpdateItem / transactional Update or Delete wrote (once per key)."""
        sizes: dict[tuple[str, str], int] = {}
        with self.ignoring():
            for call in list(self.calls):
                for pending in call.pending:
                    if pending.size is not None:
                        continue
                    cache_key = (pending.table, repr(sorted(pending.key.items())))
                    if cache_key not in sizes:
                        response = dynamodb.get_item(
                            TableName=pending.table, Key=pending.key, ConsistentRead=True
                        )
                        sizes[cache_key] = item_size(response.get("Item", {}))
                    pending.size = sizes[cache_key]

    # Figures --------------------------------------------------------------------------------------

    def by_operation(self) -> Counter[str]:
        return Counter(call.name for call in self.calls)

    def write_units(self) -> float:
        return sum(call.total_write_units for call in self.calls)

    def read_units(self) -> float:
        return sum(call.read_units for call in self.calls)

    def written_item_sizes(self) -> dict[str, list[int]]:
        """Sizes in bytes of every item written, by table (whole items and read-back ones)."""
        found: dict[str, list[int]] = {}
        for call in self.calls:
            for table, size in call.items_written:
                found.setdefault(table, []).append(size)
            for pending in call.pending:
                if pending.size is not None:
                    found.setdefault(pending.table, []).append(pending.size)
        return found

    def index_write_units(self) -> float:
        return sum(call.index_write_units for call in self.calls)

    def per_image(self, images: int) -> dict[str, Any]:
        """Calls per image by operation, total calls, write and read units per image."""
        counts = self.by_operation()
        units: Counter[str] = Counter()
        for call in self.calls:
            if call.service == "dynamodb":
                units[call.name] += call.total_write_units
        entries: Counter[str] = Counter()
        for call in self.calls:
            entries[call.name] += call.entries
        return {
            "images": images,
            "calls_per_image": round(len(self.calls) / images, 2),
            "entries_by_operation_per_image": {
                name: round(n / images, 2) for name, n in sorted(entries.items())
            },
            "by_operation_per_image": {name: round(n / images, 2) for name, n in sorted(counts.items())},
            "dynamodb_write_units_per_image": round(self.write_units() / images, 2),
            "dynamodb_index_write_units_per_image": round(self.index_write_units() / images, 2),
            "dynamodb_read_units_per_image": round(self.read_units() / images, 2),
            "write_units_by_operation_per_image": {
                name: round(n / images, 2) for name, n in sorted(units.items()) if n
            },
        }


def _size_request(call: Call, params: dict[str, Any]) -> None:
    """Write units of the items a DynamoDB request carries; pending entries for the rest."""
    operation = call.operation
    if operation == "PutItem":
        size = item_size(params["Item"])
        call.items_written.append((params["TableName"], size))
        call.write_units = write_units(size)
    elif operation in ("UpdateItem", "DeleteItem"):
        call.pending.append(PendingWrite(params["TableName"], params["Key"], transactional=False))
    elif operation == "BatchWriteItem":
        for table, requests in params.get("RequestItems", {}).items():
            for request in requests:
                if "PutRequest" in request:
                    size = item_size(request["PutRequest"]["Item"])
                    call.items_written.append((table, size))
                    call.write_units += write_units(size)
                else:
                    call.write_units += 1  # a delete of an item no longer there to size
    elif operation == "TransactWriteItems":
        for entry in params.get("TransactItems", []):
            if "Put" in entry:
                size = item_size(entry["Put"]["Item"])
                call.items_written.append((entry["Put"]["TableName"], size))
                call.write_units += write_units(size, transactional=True)
            else:  # Update, Delete or ConditionCheck: sized from the stored item
                action = next(iter(entry.values()))
                call.pending.append(PendingWrite(action["TableName"], action["Key"], transactional=True))


@contextmanager
def counting_aws_calls() -> Iterator[AwsCallLog]:
    """A new :class:`AwsCallLog`, installed for the block."""
    with AwsCallLog().installed() as log:
        yield log


USER_TAGS = {"owner": "me"}


def upload_unlogged(
    log: AwsCallLog, stack: Any, keys: Sequence[str], *, seed: int, user_tags_every: int = 1
) -> list[dict[str, Any]]:
    """A distinct photo put at each key of the upload stack's bucket without being logged, and the
    SQS message each upload's notification is: what a measured on_upload run gets. Every
    ``user_tags_every``-th photo (the first, ...) is uploaded with a user tag (:data:`USER_TAGS`);
    0: none is."""
    messages = []
    with log.ignoring():
        for i, key in enumerate(keys):
            tagged = user_tags_every > 0 and i % user_tags_every == 0
            data = jpeg_bytes(320, 240, seed=seed + i)
            etag, version = stack.upload(key, data, tags=USER_TAGS if tagged else None)
            messages.append(stack.message(key, etag, version))
    return messages
