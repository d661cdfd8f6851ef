"""Functions: on_upload (SQS batches from the tag queue), tag_api (behind API Gateway) and on_event
(Tag Image Requested events from the bus), with their environments from the validated config and
least-privilege grants: what each function's code calls, and nothing else (tests/infra checks the
action sets)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsii
from autotag.deploy.config import DeploymentConfig, FunctionName
from autotag.deploy.environment import function_environments
from autotag.deploy.specs import EventSourceSpec, FunctionResources
from autotag.store.schema import FEED_INDEX
from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import ids
from infra.function_defaults import FunctionCode, autotag_function
from infra.nag import (
    TRACING_ACTIONS,
    acknowledge,
    acknowledge_function,
    external_object_arn_finding,
    object_arn_finding,
)
from infra.provider_secrets import ProviderSecrets, imported_secret_finding
from infra.queues import Queues

ON_EVENT_ASYNC_RETRIES = 2
LAMBDA_MAX_ASYNC_EVENT_AGE = Duration.hours(6)

OBJECT_READ_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion"]
OBJECT_TAGGING_ACTIONS = [
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
]
REKOGNITION_ACTIONS = ["rekognition:DetectLabels", "rekognition:DetectModerationLabels"]
"""Rekognition's image operations support no resource-level permissions."""
RECORD_WRITE_ACTIONS = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:BatchGetItem",
]
"""DynamoImageStore: the claim (conditional UpdateItem; released by UpdateItem or DeleteItem), a
claimed put (BatchWriteItem: the record, its index items, the cached result), an unclaimed put
(TransactWriteItems of Puts and Deletes, which IAM authorizes as PutItem / DeleteItem per item), get
and the result cache (GetItem, PutItem; a batch's lookups in one BatchGetItem)."""
TAG_INDEX_READ_ACTIONS = ["dynamodb:Query"]
"""DynamoImageStore.images_with_tag (GET /v1/tags/{tag}/images) and .recent (GET /v1/images, on the
feed index)."""
IDEMPOTENCY_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
"""Powertools' DynamoDBPersistenceLayer: conditional put, get, update on success, delete on failure."""
SECRET_READ_ACTIONS = ["secretsmanager:GetSecretValue"]
"""Powertools parameters.get_secret (autotag.credentials); nothing else is called."""


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
        specs: Mapping[FunctionName, FunctionResources],
        config: DeploymentConfig,
        event_source: EventSourceSpec,
        uses_rekognition: bool,
        code: FunctionCode,
        bucket: s3.IBucket,
        table: dynamodb.ITable,
        idempotency_table: dynamodb.ITable,
        bus: events.IEventBus,
        queues: Queues,
        secrets: ProviderSecrets,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._bucket = bucket
        self._uses_rekognition = uses_rekognition
        environments = function_environments(
            specs,
            config=config,
            table_name=table.table_name,
            idempotency_table_name=idempotency_table.table_name,
            event_bus_name=bus.event_bus_name,
            images_bucket=bucket.bucket_name,
            dlq_urls={"tag_dlq": queues.tag_dlq.queue_url, "event_dlq": queues.event_dlq.queue_url},
            secret_ids=secrets.secret_ids,
        )
        self.by_name: dict[FunctionName, lambda_.Function] = {
            name: autotag_function(
                self,
                ids.pascal(name.value),
                spec=spec,
                code=code,
                environment=environments[name],
            )
            for name, spec in specs.items()
        }

        self.on_upload.add_event_source(
            event_sources.SqsEventSource(
                queues.tag_queue,
                batch_size=event_source.batch_size,
                max_batching_window=Duration.seconds(event_source.max_batching_window_seconds),
                report_batch_item_failures=event_source.report_batch_item_failures,
                max_concurrency=event_source.max_concurrency,
            )
        )
        # EventBridge invokes asynchronously: retry twice, then park the event in the event DLQ.
        self.on_event.configure_async_invoke(
            retry_attempts=ON_EVENT_ASYNC_RETRIES,
            max_event_age=LAMBDA_MAX_ASYNC_EVENT_AGE,
            on_failure=SendOnlySqsDestination(queues.event_dlq),
        )
        for name, function in self.by_name.items():
            spec = specs[name]
            self._grant(
                spec, function, table=table, idempotency_table=idempotency_table, bus=bus, queues=queues
            )
            self._grant_secrets(spec, function, secrets)
            self._acknowledge_findings(spec, function, secrets)

    @property
    def on_upload(self) -> lambda_.Function:
        return self.by_name[FunctionName.ON_UPLOAD]

    @property
    def tag_api(self) -> lambda_.Function:
        return self.by_name[FunctionName.TAG_API]

    @property
    def on_event(self) -> lambda_.Function:
        return self.by_name[FunctionName.ON_EVENT]

    def _object_arns(self, spec: FunctionResources) -> list[str]:
        arns = [self._bucket.arn_for_objects("*")]
        # on_upload only ever sees the watched bucket; API and event requests may name allowed buckets.
        if spec.name is not FunctionName.ON_UPLOAD:
            partition = Stack.of(self).partition
            arns += [f"arn:{partition}:s3:::{name}/*" for name in self._config.api.allowed_buckets]
        return arns

    def _grant(
        self,
        spec: FunctionResources,
        function: lambda_.Function,
        *,
        table: dynamodb.ITable,
        idempotency_table: dynamodb.ITable,
        bus: events.IEventBus,
        queues: Queues,
    ) -> None:
        table_actions = RECORD_WRITE_ACTIONS + (TAG_INDEX_READ_ACTIONS if spec.queries_tag_index else [])
        # Not table.grant(): with an index on the table it would also grant every action on index/*.
        function.add_to_role_policy(iam.PolicyStatement(actions=table_actions, resources=[table.table_arn]))
        if spec.queries_tag_index:
            # The console's feed of recent images (GET /v1/images) queries the feed index, nothing else.
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=TAG_INDEX_READ_ACTIONS, resources=[f"{table.table_arn}/index/{FEED_INDEX}"]
                )
            )
        if spec.uses_idempotency:
            idempotency_table.grant(function, *IDEMPOTENCY_ACTIONS)
        bus.grant_put_events_to(function)
        if spec.reads_objects:
            function.add_to_role_policy(
                iam.PolicyStatement(actions=OBJECT_READ_ACTIONS, resources=self._object_arns(spec))
            )
        if spec.writes_object_tags:
            function.add_to_role_policy(
                iam.PolicyStatement(actions=OBJECT_TAGGING_ACTIONS, resources=self._object_arns(spec))
            )
        if spec.presigns_uploads:
            # Presigned PUT URLs carry the signer's permissions: uploads only under the upload prefix
            # (which the config checks the tagging filters accept).
            prefix = self._config.api.upload_prefix
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:PutObject"], resources=[self._bucket.arn_for_objects(f"{prefix}*")]
                )
            )
        if spec.dead_letter is not None:
            # autotag.dlq sends to DLQ_URL: SendMessage only.
            queue = queues.tag_dlq if spec.dead_letter == "tag_dlq" else queues.event_dlq
            queue.grant(function, "sqs:SendMessage")

    def _grant_secrets(
        self, spec: FunctionResources, function: lambda_.Function, secrets: ProviderSecrets
    ) -> None:
        if not spec.runs_providers:
            return
        for secret in secrets.secrets.values():
            arn = secret.secret_full_arn or f"{secret.secret_arn}-??????"
            function.add_to_role_policy(iam.PolicyStatement(actions=SECRET_READ_ACTIONS, resources=[arn]))
        if self._uses_rekognition:
            function.add_to_role_policy(iam.PolicyStatement(actions=REKOGNITION_ACTIONS, resources=["*"]))

    def _acknowledge_findings(
        self, spec: FunctionResources, function: lambda_.Function, secrets: ProviderSecrets
    ) -> None:
        unscoped = TRACING_ACTIONS
        if self._uses_rekognition:
            unscoped += " and rekognition:DetectLabels / DetectModerationLabels"
        policy = acknowledge_function(function, unscoped=unscoped)
        if policy is None:
            return
        name = spec.name
        acknowledge(
            policy,
            object_arn_finding(self._bucket, "*"),
            f"{name} works on objects of the images bucket, whose keys are not known in advance; "
            "the actions are listed one by one (no s3:*)",
        )
        prefix = self._config.api.upload_prefix
        if spec.presigns_uploads:
            acknowledge(
                policy,
                object_arn_finding(self._bucket, f"{prefix}*"),
                f"{name} presigns PUT URLs for new uploads, whose keys are random ids under {prefix}: "
                "s3:PutObject only, under that prefix only",
            )
        if name is not FunctionName.ON_UPLOAD:
            for allowed in self._config.api.allowed_buckets:
                acknowledge(
                    policy,
                    external_object_arn_finding(allowed),
                    f"api.allowed_buckets names {allowed} as a bucket requests may reference: "
                    "object read and object tagging only",
                )
        for existing in secrets.existing_ids:
            finding = imported_secret_finding(existing)
            if finding is not None:
                acknowledge(
                    policy,
                    finding,
                    f"secret {existing} is imported by name; '-??????' is the random suffix Secrets "
                    "Manager appends, so the pattern matches that one secret",
                )
