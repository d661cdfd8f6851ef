"""on_upload: SQS batches of S3 ObjectCreated notifications → tag, store, announce each object.

Partial batch failures: only messages with a retryable failure are returned in
``batchItemFailures``; the logic lives in :mod:`autotag.upload`.
"""

from __future__ import annotations

from typing import Any

from autotag.observability import TRACED_AT_COLD_START
from autotag.upload import get_upload_processor
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = Tracer(patch_modules=TRACED_AT_COLD_START)
metrics = Metrics()


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # A batch has no single upstream id: correlate this invocation's lines by its request id
    # (each object's lines also carry its message id and S3 URI).
    logger.set_correlation_id(context.aws_request_id)
    return get_upload_processor().handle(event, context, metrics)
