"""DynamoDB sizing rules of the request counter (tests/support/aws_calls.py), on examples worked
from DynamoDB's documented rules."""

from __future__ import annotations

import pytest

from tests.support.aws_calls import Call, IndexShape, _size_request, item_size, read_units, write_units


def test_item_size_counts_names_and_values_by_the_published_rules():
    assert item_size({"pk": {"S": "IMG#ab"}}) == 2 + 6
    assert item_size({"café": {"S": "é"}}) == 5 + 2  # UTF-8 bytes, names included
    assert item_size({"n": {"N": "123"}}) == 1 + 2 + 1  # 3 significant digits -> 2 bytes, + 1
    assert item_size({"n": {"N": "1000"}}) == 1 + 1 + 1  # trailing zeroes are not significant
    assert item_size({"n": {"N": "0.0015"}}) == 1 + 1 + 1
    assert item_size({"b": {"B": b"\x00\x01\x02"}, "t": {"BOOL": True}, "z": {"NULL": True}}) == 4 + 2 + 2
    assert item_size({"s": {"SS": ["ab", "c"]}}) == 1 + 3
    # Lists and maps: 3 bytes, plus 1 per element, plus the elements (map keys included).
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "7"}]}}) == 1 + 3 + (1 + 2) + (1 + 2)
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + (1 + 1 + 1)


@pytest.mark.parametrize(
    ("size", "transactional", "units"),
    [(0, False, 1), (1024, False, 1), (1025, False, 2), (3000, False, 3), (1025, True, 4), (100, True, 2)],
)
def test_write_units_round_up_per_kilobyte_and_double_in_transactions(size, transactional, units):
    assert write_units(size, transactional=transactional) == units


def test_read_units_round_up_per_4_kilobytes_and_halve_when_eventually_consistent():
    assert read_units(4096, consistent=True) == 1
    assert read_units(4097, consistent=True) == 2
    assert read_units(100, consistent=False) == 0.5
    assert read_units(100, consistent=True, transactional=True) == 2


def test_a_transaction_costs_twice_its_items_and_leaves_updates_to_be_sized_from_the_table():
    call = Call(service="dynamodb", operation="TransactWriteItems")
    big = {"pk": {"S": "x" * 1500}}
    _size_request(
        call,
        {
            "TransactItems": [
                {"Put": {"TableName": "t", "Item": big}},
                {"Update": {"TableName": "t", "Key": {"pk": {"S": "k"}}, "UpdateExpression": "SET a = :a"}},
            ]
        },
    )
    assert call.write_units == 4  # 1.5 KB -> 2 units, twice
    assert len(call.pending) == 1
    assert call.pending[0].transactional
    call.pending[0].size = 10
    assert call.total_write_units == 4 + 2


FEED = IndexShape(
    keys=("feed_pk", "feed_sk"), table_keys=("pk", "sk"), projection="INCLUDE", attributes=("s",)
)


def _image(feed_sk: str | None, summary: str = "x", **more: dict) -> dict:
    item = {
        "pk": {"S": "IMG#b#k"},
        "sk": {"S": "META"},
        "big": {"S": "y" * 3000},
        "s": {"S": summary},
        **more,
    }
    if feed_sk is not None:
        item |= {"feed_pk": {"S": "FEED#tagged"}, "feed_sk": {"S": feed_sk}}
    return item


def test_an_index_entry_holds_the_keys_and_the_projected_attributes_only():
    entry = FEED.entry(_image("t1"))
    assert set(entry) == {"pk", "sk", "feed_pk", "feed_sk", "s"}
    assert FEED.entry(_image(None)) is None  # no index keys: the index holds no entry
    every = IndexShape(keys=("feed_pk", "feed_sk"), table_keys=("pk", "sk"), projection="ALL")
    assert set(every.entry(_image("t1"))) >= {"big"}


def test_index_writes_follow_the_index_keys():
    # A claim on a new image (no index keys), then the record with them: one put in the index.
    assert FEED.write_units(None, _image(None)) == 0
    assert FEED.write_units(_image(None), _image("t1")) == 1
    # The index entry unchanged (only attributes it does not hold changed): no index write.
    assert FEED.write_units(_image("t1"), _image("t1", claim={"S": "token"})) == 0
    # A projected attribute changed in place: one write; the index key moved: a delete and a put.
    assert FEED.write_units(_image("t1"), _image("t1", summary="z")) == 1
    assert FEED.write_units(_image("t1"), _image("t2")) == 2
    # Deleted: the entry's delete. Sizes round up per KB like the table's writes.
    assert FEED.write_units(_image("t1"), None) == 1
    assert FEED.write_units(None, _image("t1", summary="z" * 1500)) == 2
