import pytest

from tests.support.fakes import InMemoryImageStore
from tests.support.store_contract import FakeWallClock, ImageStoreContract


@pytest.fixture
def clock():
    return FakeWallClock()


@pytest.fixture
def store(clock):
    return InMemoryImageStore(clock=clock)


@pytest.fixture
def index_keys(store):
    return lambda: {(pk, sk) for pk, items in store.index.items() for sk in items}


class TestInMemoryImageStore(ImageStoreContract):
    pass
