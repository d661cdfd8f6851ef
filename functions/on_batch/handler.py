"""on_batch: S3 Batch Operations tasks of a backfill (LambdaInvoke, invocation schema 2.0) → each
object enqueued on the tag queue, skipped or refused, with one documented result per task.

The logic lives in :mod:`autotag.batch_tasks`.
"""

from __future__ import annotations

from typing import Any

from autotag.batch_tasks import get_batch_processor
from autotag.observability import TRACED_AT_COLD_START
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = Tracer(patch_modules=TRACED_AT_COLD_START)
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="job.id", log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = get_batch_processor().handle(event)
    for result in response["results"]:
        metrics.add_metric(name=f"BatchTasks{result['resultCode']}", unit=MetricUnit.Count, value=1)
        logger.info("batch task", extra={"task_id": result["taskId"], "result": result["resultCode"]})
    return response
