import pytest
from autotag.store.dynamodb import DynamoImageStore, create_table

from tests.support.aws import unique
from tests.support.store_contract import FakeWallClock, ImageStoreContract

pytestmark = pytest.mark.integration


@pytest.fixture
def clock():
    return FakeWallClock()


@pytest.fixture
def table(aws_emulator):
    client = aws_emulator.client("dynamodb")
    name = unique("images")
    create_table(client, name)
    yield client, name
    client.delete_table(TableName=name)


@pytest.fixture
def store(table, clock):
    client, name = table
    return DynamoImageStore(client, name, clock=clock)


@pytest.fixture
def index_keys(table):
    client, name = table

    def keys():
        items = client.get_paginator("scan").paginate(TableName=name).build_full_result()["Items"]
        return {(i["pk"]["S"], i["sk"]["S"]) for i in items if i["pk"]["S"].startswith("TAG#")}

    return keys


class TestDynamoImageStore(ImageStoreContract):
    def test_table_has_ttl_on_expires_at(self, table):
        client, name = table
        ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl["AttributeName"] == "expires_at"
        assert ttl["TimeToLiveStatus"] == "ENABLED"
