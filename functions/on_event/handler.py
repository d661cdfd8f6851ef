"""on_event: EventBridge events (Tag Image Requested, S3 Object Created) → the shared pipeline."""

from __future__ import annotations

from typing import Any

from autotag.observability import TRACED_AT_COLD_START
from autotag.retry import Deadline
from autotag.subscriber import build_subscriber
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = Tracer(patch_modules=TRACED_AT_COLD_START)
metrics = Metrics()

SAFETY_MARGIN_SECONDS = 5.0


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deadline = Deadline.after(context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS)
    outcome = build_subscriber().handle(event, deadline=deadline, context=context)
    logger.info("event handled", extra=outcome.as_dict())
    return outcome.as_dict()
