"""Functions: on_upload (SQS batches from the tag queue), tag_api (behind API Gateway) and on_event
(Tag Image Requested events from the bus), with their environments from the validated config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsii
from autotag.deploy.config import FunctionName
from autotag.deploy.environment import function_environment
from autotag.deploy.specs import DeploymentResources
from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import ids
from infra.function_defaults import autotag_function
from infra.queues import Queues

ON_EVENT_ASYNC_RETRIES = 2
LAMBDA_MAX_ASYNC_EVENT_AGE = Duration.hours(6)


@jsii.implements(lambda_.IDestination)
class SendOnlySqsDestination:
    """An SQS on-failure destination whose grant is what Lambda needs, ``sqs:SendMessage``
    (aws_lambda_destinations.SqsDestination also grants GetQueueAttributes and GetQueueUrl)."""

    def __init__(self, queue: sqs.IQueue) -> None:
        self._queue = queue

    # jsii hands the options struct over positionally; mypy checks the keyword form of IDestination.
    def bind(
        self,
        scope: Construct,
        fn: lambda_.IFunction,
        options: Any = None,
        *,
        type: lambda_.DestinationType | None = None,
    ) -> lambda_.DestinationConfig:
        self._queue.grant(fn, "sqs:SendMessage")
        return lambda_.DestinationConfig(destination=self._queue.queue_arn)


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        resources: DeploymentResources,
        code_root: Path,
        layers: list[lambda_.ILayerVersion],
        bucket: s3.IBucket,
        table: dynamodb.ITable,
        idempotency_table: dynamodb.ITable,
        bus: events.IEventBus,
        queues: Queues,
        secret_ids: dict[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        config = resources.config
        dlq_urls = {"tag_dlq": queues.tag_dlq.queue_url, "event_dlq": queues.event_dlq.queue_url}
        self.by_name: dict[FunctionName, lambda_.Function] = {}
        for name, spec in resources.functions.items():
            environment = function_environment(
                spec,
                config=config,
                table_name=table.table_name,
                idempotency_table_name=idempotency_table.table_name,
                event_bus_name=bus.event_bus_name,
                images_bucket=bucket.bucket_name,
                dlq_url=dlq_urls[spec.dead_letter] if spec.dead_letter else None,
                secret_ids=secret_ids,
            )
            self.by_name[name] = autotag_function(
                self,
                ids.pascal(name.value),
                spec=spec,
                code_root=code_root,
                layers=layers,
                environment=environment,
                log_retention_days=config.monitoring.log_retention_days,
            )

        source = resources.tag_event_source
        self.on_upload.add_event_source(
            event_sources.SqsEventSource(
                queues.tag_queue,
                batch_size=source.batch_size,
                max_batching_window=Duration.seconds(source.max_batching_window_seconds),
                report_batch_item_failures=source.report_batch_item_failures,
                max_concurrency=source.max_concurrency,
            )
        )
        # EventBridge invokes asynchronously: retry twice, then park the event in the event DLQ.
        self.on_event.configure_async_invoke(
            retry_attempts=ON_EVENT_ASYNC_RETRIES,
            max_event_age=LAMBDA_MAX_ASYNC_EVENT_AGE,
            on_failure=SendOnlySqsDestination(queues.event_dlq),
        )

    @property
    def on_upload(self) -> lambda_.Function:
        return self.by_name[FunctionName.ON_UPLOAD]

    @property
    def tag_api(self) -> lambda_.Function:
        return self.by_name[FunctionName.TAG_API]

    @property
    def on_event(self) -> lambda_.Function:
        return self.by_name[FunctionName.ON_EVENT]
