"""The in-memory fakes answer to the same interfaces as the adapters they stand in for: every method
of each Protocol exists on its fake with the same parameters (names, kinds, defaults) and
annotations, so a unit test that passes against a fake calls the real interface."""

from __future__ import annotations

import inspect

import pytest
from autotag.credentials import SecretSource
from autotag.dlq import DeadLetterQueue
from autotag.events import EventPublisher
from autotag.objects import ObjectStorage
from autotag.store.base import ImageStore
from autotag.tagstep import TagEngine

from tests.support.fakes import (
    FakeTagger,
    InMemoryDeadLetterQueue,
    InMemoryImageStore,
    InMemoryObjectStorage,
    InMemoryPublisher,
    StaticCredentials,
)

PAIRS = [
    (ImageStore, InMemoryImageStore),
    (ObjectStorage, InMemoryObjectStorage),
    (EventPublisher, InMemoryPublisher),
    (DeadLetterQueue, InMemoryDeadLetterQueue),
    (SecretSource, StaticCredentials),
    (TagEngine, FakeTagger),
]


def protocol_methods(protocol: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(protocol).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


def shape(signature: inspect.Signature) -> list[tuple[str, object, object, object]]:
    return [(p.name, p.kind, p.default, p.annotation) for p in signature.parameters.values()]


@pytest.mark.parametrize(("protocol", "fake"), PAIRS, ids=lambda item: item.__name__)
def test_fake_implements_every_method_of_its_protocol(protocol, fake):
    methods = protocol_methods(protocol)
    assert methods, f"{protocol.__name__} declares no methods"
    for name, expected in methods.items():
        implementation = getattr(fake, name, None)
        assert callable(implementation), f"{fake.__name__} lacks {name}"
        actual = inspect.signature(implementation)
        assert shape(actual) == shape(expected), f"{fake.__name__}.{name}{actual} != {expected}"
        assert actual.return_annotation == expected.return_annotation, f"{fake.__name__}.{name} returns"
        assert inspect.iscoroutinefunction(implementation) == inspect.iscoroutinefunction(
            getattr(protocol, name)
        ), f"{fake.__name__}.{name}: sync/async differs from {protocol.__name__}"


def test_the_fakes_are_not_in_the_package():
    import autotag

    package = inspect.getfile(autotag).rsplit("/", 1)[0]
    for _, fake in PAIRS:
        assert not inspect.getfile(fake).startswith(package), fake
