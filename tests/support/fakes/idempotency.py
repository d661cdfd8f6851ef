"""An in-memory Powertools idempotency persistence layer (the DynamoDB layer's contract)."""

from __future__ import annotations

import threading

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord


class InMemoryIdempotencyStore(BasePersistenceLayer):
    """Powertools idempotency persistence kept in a dict: the same contract as the DynamoDB layer
    (put fails when a live record exists), for unit tests of idempotent code paths."""

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, DataRecord] = {}
        self._guard = threading.Lock()

    def _get_record(self, idempotency_key: str) -> DataRecord:
        try:
            return self.records[idempotency_key]
        except KeyError:
            raise IdempotencyItemNotFoundError from None

    def _put_record(self, data_record: DataRecord) -> None:
        with self._guard:
            existing = self.records.get(data_record.idempotency_key)
            if existing is not None and not existing.is_expired:
                raise IdempotencyItemAlreadyExistsError(old_data_record=existing)
            self.records[data_record.idempotency_key] = data_record

    def _update_record(self, data_record: DataRecord) -> None:
        with self._guard:
            self.records[data_record.idempotency_key] = data_record

    def _delete_record(self, data_record: DataRecord) -> None:
        with self._guard:
            self.records.pop(data_record.idempotency_key, None)
