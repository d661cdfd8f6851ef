"""The autotag stack: composes the constructs and wires least-privilege access between them."""

from __future__ import annotations

from pathlib import Path

from autotag.deploy.config import DeploymentConfig, FunctionName
from autotag.deploy.specs import FunctionResources, describe, uses_vision_model
from autotag.store.schema import FEED_INDEX
from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import ids
from infra.api import TagApi
from infra.batch_operations import BatchOperations
from infra.bus import Bus
from infra.functions import Functions
from infra.layers import Layers
from infra.monitoring import Monitoring
from infra.nag import acknowledge_findings
from infra.provider_secrets import ProviderSecrets
from infra.queues import Queues
from infra.storage import Storage

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


class AutotagStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        code_root: Path,
        dependencies_dir: Path,
        model_dir: Path | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="autotag: serverless, event-driven image tagging",
        )
        # Access logs are delivered under a bucket policy, so the log bucket can keep ACLs disabled
        # (set here as well as in cdk.json: the stack must not depend on where it is synthesized).
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
        self.storage = Storage(self, ids.STORAGE, resources=describe(config))
        bucket = self.storage.bucket
        # Described again with the bucket's name, which the eventbridge-mode rule pattern needs.
        self.resources = resources = describe(config, bucket_name=bucket.bucket_name)

        runs_model = uses_vision_model(config.tagging)
        self.layers = Layers(
            self,
            ids.LAYERS,
            package_dir=code_root / "layers" / "autotag",
            dependencies_dir=dependencies_dir,
            model_dir=(model_dir or code_root / "layers" / "model") if runs_model else None,
        )
        self.queues = Queues(self, ids.QUEUES, resources=resources, bucket=bucket)
        self.secrets = ProviderSecrets(self, ids.SECRETS, resources=resources)
        self.bus = Bus(self, ids.BUS, resources=resources)
        self.functions = Functions(
            self,
            ids.FUNCTIONS,
            resources=resources,
            code_root=code_root,
            layers=self.layers.all,
            bucket=bucket,
            table=self.storage.table,
            idempotency_table=self.storage.idempotency_table,
            bus=self.bus.bus,
            queues=self.queues,
            secret_ids=self.secrets.secret_ids,
        )
        self.bus.route(
            on_event=self.functions.on_event,
            tag_queue=self.queues.tag_queue,
            event_dlq=self.queues.event_dlq,
        )
        self.api = TagApi(self, ids.API, resources=resources, handler=self.functions.tag_api)
        self.batch_operations = BatchOperations(
            self,
            ids.BATCH_OPERATIONS,
            resources=resources,
            code_root=code_root,
            layers=self.layers.all,
            bucket=bucket,
            table=self.storage.table,
            tag_queue=self.queues.tag_queue,
            access_logs_bucket=self.storage.access_logs_bucket,
        )
        self.monitoring = Monitoring(
            self,
            ids.MONITORING,
            resources=resources,
            dead_letter_queues={"TagDlq": self.queues.tag_dlq, "EventDlq": self.queues.event_dlq},
            tag_queue=self.queues.tag_queue,
            functions={
                **{name.value: fn for name, fn in self.functions.by_name.items()},
                self.resources.batch_operations.function.name: self.batch_operations.function,
            },
            api=self.api.api,
        )
        for name, function in self.functions.by_name.items():
            self._grant(resources.function(name), function)
        self._outputs()
        acknowledge_findings(self)

    def _object_arns(self, *, include_allowed: bool) -> list[str]:
        arns = [self.storage.bucket.arn_for_objects("*")]
        if include_allowed:
            allowed = self.resources.config.api.allowed_buckets
            arns += [f"arn:{self.partition}:s3:::{name}/*" for name in allowed]
        return arns

    def _grant(self, spec: FunctionResources, function: lambda_.Function) -> None:
        """What one function's code calls, and nothing else (tests/infra checks the action sets)."""
        storage = self.storage
        table_actions = RECORD_WRITE_ACTIONS + (TAG_INDEX_READ_ACTIONS if spec.queries_tag_index else [])
        # Not table.grant(): with an index on the table it would also grant every action on index/*.
        function.add_to_role_policy(
            iam.PolicyStatement(actions=table_actions, resources=[storage.table.table_arn])
        )
        if spec.queries_tag_index:
            # The console's feed of recent images (GET /v1/images) queries the feed index, nothing else.
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=TAG_INDEX_READ_ACTIONS,
                    resources=[f"{storage.table.table_arn}/index/{FEED_INDEX}"],
                )
            )
        if spec.uses_idempotency:
            storage.idempotency_table.grant(function, *IDEMPOTENCY_ACTIONS)
        self.bus.bus.grant_put_events_to(function)
        # on_upload only ever sees the watched bucket; API and event requests may name allowed buckets.
        include_allowed = spec.name is not FunctionName.ON_UPLOAD
        if spec.reads_objects:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=OBJECT_READ_ACTIONS, resources=self._object_arns(include_allowed=include_allowed)
                )
            )
        if spec.writes_object_tags:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=OBJECT_TAGGING_ACTIONS,
                    resources=self._object_arns(include_allowed=include_allowed),
                )
            )
        if spec.presigns_uploads:
            # Presigned PUT URLs carry the signer's permissions: uploads only under the upload prefix
            # (which the config checks the tagging filters accept).
            prefix = self.resources.config.api.upload_prefix
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:PutObject"], resources=[self.storage.bucket.arn_for_objects(f"{prefix}*")]
                )
            )
        if spec.dead_letter is not None:
            # autotag.dlq sends to DLQ_URL: SendMessage only.
            queue = self.queues.tag_dlq if spec.dead_letter == "tag_dlq" else self.queues.event_dlq
            queue.grant(function, "sqs:SendMessage")
        if spec.runs_providers:
            for secret in self.secrets.secrets.values():
                arn = secret.secret_full_arn or f"{secret.secret_arn}-??????"
                function.add_to_role_policy(iam.PolicyStatement(actions=SECRET_READ_ACTIONS, resources=[arn]))
            if self.resources.uses_rekognition:
                function.add_to_role_policy(iam.PolicyStatement(actions=REKOGNITION_ACTIONS, resources=["*"]))

    def _outputs(self) -> None:
        CfnOutput(self, "ImagesBucketName", value=self.storage.bucket.bucket_name)
        CfnOutput(self, "ApiUrl", value=self.api.api.url)
        CfnOutput(
            self,
            "ApiKeyId",
            value=self.api.api_key.key_id,
            description="aws apigateway get-api-key --include-value --api-key <id>",
        )
        CfnOutput(self, "EventBusName", value=self.bus.bus.event_bus_name)
        CfnOutput(self, "TableName", value=self.storage.table.table_name)
        CfnOutput(self, "TagQueueUrl", value=self.queues.tag_queue.queue_url)
        CfnOutput(self, "TagDlqUrl", value=self.queues.tag_dlq.queue_url)
        CfnOutput(self, "EventDlqUrl", value=self.queues.event_dlq.queue_url)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
        for key, secret in self.secrets.secrets.items():
            CfnOutput(
                self,
                f"{ids.pascal(key)}SecretArn",
                value=secret.secret_arn,
                description=f"Fill with provider {key}'s credentials JSON",
            )
