"""The autotag stack: composes the constructs, each of which takes its own props, grants what its
functions call and acknowledges its own cdk-nag findings (infra/nag.py holds the helpers)."""

from __future__ import annotations

from pathlib import Path

from autotag.deploy.config import DeploymentConfig
from autotag.deploy.specs import describe, uses_vision_model
from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra import ids
from infra.api import TagApi
from infra.batch_operations import BatchOperations
from infra.bus import Bus
from infra.function_defaults import FunctionCode
from infra.functions import Functions
from infra.layers import Layers
from infra.monitoring import Monitoring
from infra.nag import acknowledge_cdk_singletons
from infra.provider_secrets import ProviderSecrets
from infra.queues import Queues
from infra.storage import Storage


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
        eventbridge_notifications = config.notifications.mode == "eventbridge"
        self.storage = Storage(
            self,
            ids.STORAGE,
            settings=config.bucket,
            event_bridge_enabled=eventbridge_notifications,
            retain_data=config.retain_data,
        )
        bucket = self.storage.bucket
        # With the bucket's name, which the eventbridge-mode rule pattern needs.
        self.resources = resources = describe(config, bucket_name=bucket.bucket_name)

        self.layers = Layers(
            self,
            ids.LAYERS,
            package_dir=code_root / "layers" / "autotag",
            dependencies_dir=dependencies_dir,
            model_dir=(model_dir or code_root / "layers" / "model")
            if uses_vision_model(config.tagging)
            else None,
        )
        code = FunctionCode(
            root=code_root, layers=self.layers.all, log_retention_days=config.monitoring.log_retention_days
        )
        self.queues = Queues(
            self,
            ids.QUEUES,
            spec=resources.tag_queue,
            event_dlq_retention_seconds=resources.event_dlq_retention_seconds,
            bucket=bucket,
            notification_filters=() if eventbridge_notifications else resources.notification_filters,
        )
        self.secrets = ProviderSecrets(self, ids.SECRETS, secrets=resources.secrets)
        self.bus = Bus(self, ids.BUS, settings=config.bus, rules=resources.rules)
        self.functions = Functions(
            self,
            ids.FUNCTIONS,
            specs=resources.functions,
            config=config,
            event_source=resources.tag_event_source,
            uses_rekognition=resources.uses_rekognition,
            code=code,
            bucket=bucket,
            table=self.storage.table,
            idempotency_table=self.storage.idempotency_table,
            bus=self.bus.bus,
            queues=self.queues,
            secrets=self.secrets,
        )
        self.bus.route(
            on_event=self.functions.on_event,
            tag_queue=self.queues.tag_queue,
            event_dlq=self.queues.event_dlq,
        )
        self.api = TagApi(
            self,
            ids.API,
            settings=config.api,
            log_retention_days=config.monitoring.log_retention_days,
            handler=self.functions.tag_api,
        )
        self.batch_operations = BatchOperations(
            self,
            ids.BATCH_OPERATIONS,
            spec=resources.batch_operations,
            config=config,
            code=code,
            bucket=bucket,
            table=self.storage.table,
            tag_queue=self.queues.tag_queue,
            access_logs_bucket=self.storage.access_logs_bucket,
        )
        self.monitoring = Monitoring(
            self,
            ids.MONITORING,
            settings=config.monitoring,
            tag_queue_visibility_seconds=resources.tag_queue.visibility_timeout_seconds,
            dead_letter_queues={"TagDlq": self.queues.tag_dlq, "EventDlq": self.queues.event_dlq},
            tag_queue=self.queues.tag_queue,
            functions={
                **{name.value: fn for name, fn in self.functions.by_name.items()},
                resources.batch_operations.function.name: self.batch_operations.function,
            },
            api=self.api.api,
        )
        acknowledge_cdk_singletons(self)
        self._outputs()

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
