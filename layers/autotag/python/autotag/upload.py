"""The upload batch: SQS messages carrying S3 notifications, tagged concurrently, each object once.

Concurrency: Powertools' ``AsyncBatchProcessor`` gathers every message of the batch at once and
reports partial batch failures. Idempotency is sync-only in Powertools, so each object runs as a
synchronous ``idempotent_function`` in a bounded thread pool (``processing.concurrency`` workers);
the provider calls inside share one background event loop (see :mod:`autotag.service`). A batch of
N objects therefore takes about one provider round trip, not N.

Shared per batch (issue 14's AWS calls per image): the objects' content-hash cache lookups are one
``BatchGetItem`` (:mod:`autotag.cacheround`), and their outcome events go out together after the
batch, 10 per ``PutEvents`` (:class:`autotag.events.BatchingPublisher`).

Per object (each S3 event is its own piece of work, ordered by S3's ``sequencer``; the rules are
in :mod:`autotag.ordering`, enforced by a conditional write on the image record itself, so there is
no separate idempotency record to read or write):
- tagged / skipped → processed; a duplicate delivery of the same event is acknowledged with no
  provider call, and an event older than the one the record reflects changes nothing;
- terminal failure → recorded failed + announced by the service, the message sent to the DLQ with
  its reason here, then processed. The record stays ``failed`` for that event, so the message
  moved back from the DLQ (``aws sqs start-message-move-task``, ``autotag redrive``, the console)
  is processed again;
- retryable failure (including ``object_busy``: another event for the key is in flight) → raised,
  so the message is reported as a batch item failure (SQS redelivers it, then moves it to the DLQ
  after ``maxReceiveCount``).
"""

from __future__ import annotations

import asyncio
import functools
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    AsyncBatchProcessor,
    EventType,
    async_process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from autotag.cacheround import CacheRound, RoundLookup
from autotag.config import AutotagConfig, get_config
from autotag.dlq import DeadLetter, DeadLetterQueue
from autotag.errors import AutotagError, BadInputError
from autotag.events import collecting
from autotag.ordering import Disposition, EventOrder
from autotag.requeue import REPLAY_ATTRIBUTE
from autotag.retry import Deadline
from autotag.service import (
    ObjectCreated,
    TaggingService,
    TerminalProcessingError,
    aws_clients,
    build_service,
    parse_s3_notification,
    reset_service,
)
from autotag.settings import get_settings

logger = Logger(service="autotag", child=True)

DEFAULT_TIMEOUT_SECONDS = 60.0


def replay_of(record: SQSRecord) -> str | None:
    attributes = record.message_attributes
    # Indexing (not .get) returns the typed attribute.
    attribute = attributes[REPLAY_ATTRIBUTE] if REPLAY_ATTRIBUTE in attributes else None  # noqa: SIM401
    return attribute.string_value if attribute is not None else None


@dataclass(frozen=True)
class _Message:
    message_id: str
    body: str
    object_count: int


class UploadProcessor:
    def __init__(
        self,
        *,
        service: TaggingService,
        config: AutotagConfig,
        dead_letters: DeadLetterQueue | None,
    ) -> None:
        self.service = service
        self.config = config
        self.dead_letters = dead_letters
        self._pool = ThreadPoolExecutor(
            max_workers=config.processing.concurrency, thread_name_prefix="on-upload"
        )

    def handle(
        self, event: dict[str, Any], context: LambdaContext, metrics: Metrics | None = None
    ) -> dict[str, Any]:
        """Process one SQS batch; returns the partial batch response (``batchItemFailures``)."""
        remaining = context.get_remaining_time_in_millis() / 1000 if context else DEFAULT_TIMEOUT_SECONDS
        deadline = Deadline.after(max(0.0, remaining - self.config.processing.safety_margin_seconds))
        batch = _Batch(self, deadline, context.aws_request_id if context else "local", metrics)
        # The batch's outcome events go out together after it (PutEvents takes 10 per request).
        with collecting(self.service.publisher) as outbox:
            response = async_process_partial_response(
                event=event,
                record_handler=batch.handle_message,
                processor=AsyncBatchProcessor(event_type=EventType.SQS),
                context=context,
            )
        if outbox.unpublished:
            batch.count("EventsNotPublished", outbox.unpublished)
        return dict(response)

    # Runs in a pool thread.
    def _process_object(
        self,
        *,
        obj: ObjectCreated,
        replay: bool,
        message: _Message,
        deadline: Deadline,
        cache_round: CacheRound | None = None,
    ) -> dict[str, Any]:
        # Joins the batch's cache round once it runs (not while queued for a pool thread): the
        # round waits only for objects on their way to a lookup.
        cache_lookup = RoundLookup(cache_round, cache_round.join()) if cache_round is not None else None
        try:
            outcome = self.service.handle_event(
                obj.location,
                deadline=deadline,
                etag=obj.etag,
                order=EventOrder(sequencer=obj.sequencer, replay=replay),
                cache_lookup=cache_lookup,
            )
        except TerminalProcessingError as error:
            self._dead_letter(message, obj, error)
            return {"disposition": "processed", "status": "failed", "error_code": error.code}
        finally:
            if cache_lookup is not None:
                cache_lookup.skip()
        record = outcome.record
        return {
            "disposition": outcome.disposition.value,
            "status": record.status.value,
            "cached": record.cached,
        }

    def _dead_letter(self, message: _Message, obj: ObjectCreated | None, error: AutotagError) -> None:
        if self.dead_letters is None:
            # No DLQ configured: let SQS redeliver, and its redrive policy move it after maxReceiveCount.
            raise error
        body = message.body
        if obj is not None and message.object_count > 1:
            # Only the failed object, in the same shape, so a redrive replays just that one.
            body = json.dumps({"Records": [obj.raw]})
        attributes = {"source_message_id": message.message_id}
        if obj is not None:
            attributes.update(bucket=obj.bucket, key=obj.key)
        self.dead_letters.send(
            DeadLetter(body=body, error_code=error.code, reason=str(error), attributes=attributes)
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Batch:
    """One invocation's state: the deadline, and the objects already in flight (an object named by
    several messages of the same batch is processed once)."""

    def __init__(
        self, processor: UploadProcessor, deadline: Deadline, request_id: str, metrics: Metrics | None
    ):
        self.processor = processor
        self.deadline = deadline
        self.request_id = request_id
        self.metrics = metrics
        # The batch's content-hash cache lookups, read together (autotag.cacheround).
        store = processor.service.store
        self.cache_round = CacheRound(store.cached_results) if processor.config.cache.enabled else None
        self.inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.last_of_key: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}
        """Several events for one key in a batch run one after the other (else all but one would
        find the key claimed and go back to the queue)."""

    def count(self, name: str, value: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    async def handle_message(self, record: SQSRecord) -> None:
        loop = asyncio.get_running_loop()
        try:
            parsed = parse_s3_notification(record.body, self.processor.config.filters)
        except BadInputError as error:
            logger.warning("message is not an S3 notification", extra={"message_id": record.message_id})
            self.count("InvalidMessages")
            message = _Message(record.message_id, record.body, 0)
            await loop.run_in_executor(
                self.processor._pool, self.processor._dead_letter, message, None, error
            )
            return
        for what, why in parsed.ignored:
            logger.info("not tagged", extra={"message_id": record.message_id, "object": what, "reason": why})
        message = _Message(record.message_id, record.body, len(parsed.objects))
        results = await asyncio.gather(
            *(self._object(obj, message, replay_of(record)) for obj in parsed.objects), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            self.count("RetryableFailures")
            logger.warning(
                "object will be retried",
                extra={
                    "message_id": record.message_id,
                    "error_code": getattr(failure, "code", type(failure).__name__),
                    "error": str(failure),
                },
            )
        if failures:
            raise failures[0]

    async def _object(self, obj: ObjectCreated, message: _Message, replay: str | None) -> dict[str, Any]:
        key = json.dumps({**obj.event_ref, "replay": replay}, sort_keys=True)
        future = self.inflight.get(key)
        if future is None:
            call = functools.partial(
                self.processor._process_object,
                obj=obj,
                replay=replay is not None,
                message=message,
                deadline=self.deadline,
            )
            previous = self.last_of_key.get((obj.bucket, obj.key))
            future = asyncio.ensure_future(self._after(previous, call))
            self.inflight[key] = self.last_of_key[(obj.bucket, obj.key)] = future
            outcome = await future
            self._count_outcome(outcome)
            return outcome
        self.count("DuplicateDeliveries")
        return await future

    async def _after(
        self, previous: asyncio.Future[dict[str, Any]] | None, call: functools.partial[dict[str, Any]]
    ) -> dict[str, Any]:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome is its own message's
        if self.cache_round is not None:
            call = functools.partial(call, cache_round=self.cache_round)
        return await asyncio.get_running_loop().run_in_executor(self.processor._pool, call)

    def _count_outcome(self, outcome: dict[str, Any]) -> None:
        disposition = outcome.get("disposition")
        if disposition == Disposition.DUPLICATE.value:
            self.count("DuplicateDeliveries")  # the record already reflects this event
            return
        if disposition == Disposition.STALE.value:
            self.count("StaleEvents")  # older than what the record reflects: nothing changed
            return
        status = outcome.get("status")
        self.count({"tagged": "ImagesTagged", "failed": "ImagesFailed"}.get(str(status), "ImagesSkipped"))
        if outcome.get("cached"):
            self.count("CacheHits")


@lru_cache(maxsize=1)
def get_upload_processor() -> UploadProcessor:
    """Built on first use from the function's settings and config, then reused while warm."""
    from autotag.dlq import SqsDeadLetterQueue

    settings, config, clients = get_settings(), get_config(), aws_clients()
    return UploadProcessor(
        service=build_service(),
        config=config,
        dead_letters=SqsDeadLetterQueue(clients.client("sqs"), settings.dlq_url)
        if settings.dlq_url
        else None,
    )


def reset_upload_processor() -> None:
    """Forget the processor, service, clients, config and settings (tests; config changes)."""
    if get_upload_processor.cache_info().currsize:
        get_upload_processor().close()
    get_upload_processor.cache_clear()
    reset_service()
