"""S3 Batch Operations for the local stack, which the AWS emulator does not have: what the CDK
construct deploys (infra/batch_operations.py), locally. The job record is
:mod:`autotag.local.batch_jobs`, the engine :mod:`autotag.local.batch_engine`, the manifests and
reports :mod:`autotag.local.batch_manifests`, the job API :mod:`autotag.local.s3control_server`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotag.local.batch_engine import LocalJobEngine
from autotag.local.lambda_workers import Invocation
from autotag.local.s3control_server import S3ControlServer
from autotag.local.state import ACCOUNT_ID

if TYPE_CHECKING:
    from autotag.local.provision import ProvisionedStack


class LocalBatchOperations:
    """What the CDK construct deploys (infra/batch_operations.py), locally: the reports bucket,
    the on_batch function in the local Lambda runtime, and the job API with its engine."""

    def __init__(
        self,
        *,
        root: Path,
        provisioned: ProvisionedStack,
        endpoint_url: str,
        host: str = "127.0.0.1",
        extra_environment: Mapping[str, str] | None = None,
        concurrency: int = 1,
    ) -> None:
        from autotag.deploy.environment import batch_environment
        from autotag.local.lambda_workers import FunctionPool, LocalFunction
        from autotag.local.provision import LOCAL_PREFIX, emulator_client, emulator_environment

        deployment = provisioned.deployment
        resources = provisioned.resources
        spec = deployment.batch_operations.function
        self.reports_bucket = f"{LOCAL_PREFIX}-batch-reports"
        self.role_arn = f"arn:aws:iam::{ACCOUNT_ID}:role/{LOCAL_PREFIX}-batch-operations"
        s3 = emulator_client("s3", endpoint_url)
        s3.create_bucket(Bucket=self.reports_bucket)
        s3.put_public_access_block(
            Bucket=self.reports_bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        environment = batch_environment(
            deployment.config,
            table_name=resources.table_name,
            tag_queue_url=resources.tag_queue_url,
            images_bucket=resources.images_bucket,
        )
        environment.update(emulator_environment(endpoint_url))
        environment["POWERTOOLS_TRACE_DISABLED"] = "true"
        environment.update(extra_environment or {})
        self.pool = FunctionPool(
            LocalFunction(
                name=f"{LOCAL_PREFIX}-{spec.name}",
                code_dir=(root / spec.code_dir).resolve(),
                handler=spec.handler,
                environment=environment,
                timeout_seconds=spec.timeout_seconds,
                memory_mb=spec.memory_mb,
            ),
            concurrency=concurrency,
        )
        self.function_arn = self.pool.spec.arn
        pool = self.pool

        def invoke(function_arn: str, event: dict[str, Any]) -> Invocation:
            return pool.invoke(event)

        self.engine = LocalJobEngine(
            s3=s3, invoke=invoke, function_arns={self.function_arn}, concurrency=concurrency
        )
        self.server = S3ControlServer(self.engine, host=host)

    def start(self) -> LocalBatchOperations:
        self.pool.start()
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.pool.stop()

    @property
    def state_extra(self) -> dict[str, str]:
        """Entries of the state file's ``resources.extra`` (the stack's outputs, locally)."""
        from autotag.ops.batch_operations import (
            LOCAL_CONTROL_ENDPOINT,
            OUTPUT_FUNCTION_ARN,
            OUTPUT_REPORTS_BUCKET,
            OUTPUT_ROLE_ARN,
        )

        return {
            OUTPUT_FUNCTION_ARN: self.function_arn,
            OUTPUT_ROLE_ARN: self.role_arn,
            OUTPUT_REPORTS_BUCKET: self.reports_bucket,
            LOCAL_CONTROL_ENDPOINT: self.server.url,
        }
