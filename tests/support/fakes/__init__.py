"""In-memory fakes behind autotag's interfaces, for unit tests (no sockets). They live with the
tests, not in the package: the Lambda asset ships only what the functions run.

One module per interface, each fake honest to its Protocol (tests/unit/test_fakes.py checks the
signatures): ``store`` (ImageStore), ``objects`` (ObjectStorage), ``events`` (EventPublisher),
``dlq`` (DeadLetterQueue), ``credentials`` (SecretSource), ``tagger`` (TagEngine) and
``idempotency`` (Powertools' persistence layer).
"""

from tests.support.fakes.credentials import StaticCredentials
from tests.support.fakes.dlq import InMemoryDeadLetterQueue
from tests.support.fakes.events import InMemoryPublisher
from tests.support.fakes.idempotency import InMemoryIdempotencyStore
from tests.support.fakes.objects import InMemoryObjectStorage, StoredObject
from tests.support.fakes.store import InMemoryImageStore
from tests.support.fakes.tagger import FakeTagger

__all__ = [
    "FakeTagger",
    "InMemoryDeadLetterQueue",
    "InMemoryIdempotencyStore",
    "InMemoryImageStore",
    "InMemoryObjectStorage",
    "InMemoryPublisher",
    "StaticCredentials",
    "StoredObject",
]
