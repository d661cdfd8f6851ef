"""Hard limits of the AWS services a deployment uses (the deployment config is validated against them)."""

from __future__ import annotations

SQS_MAX_VISIBILITY_SECONDS = 12 * 3600
SQS_ESM_MIN_CONCURRENCY = 2
SQS_ESM_MAX_CONCURRENCY = 1000
SQS_ESM_MAX_BATCH_WITHOUT_WINDOW = 10
API_GATEWAY_MAX_INTEGRATION_SECONDS = 29
API_GATEWAY_MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
S3_MAX_NOTIFICATION_FILTERS = 100
"""Our cap on generated S3 notification configurations; beyond it the suffix filter is left to
the function (which applies the full :class:`~autotag.config.ObjectFilters` anyway)."""
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)  # fmt: skip
"""The values CloudWatch Logs accepts."""
