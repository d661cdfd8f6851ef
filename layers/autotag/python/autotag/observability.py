"""Names shared by the functions' telemetry and the stack's alarms, and the provider-failure metric.

Kept free of heavy imports: every function imports it on the cold-start path.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit, single_metric

if TYPE_CHECKING:
    from autotag.models import TagResult

SERVICE_NAME = "autotag"
"""``POWERTOOLS_SERVICE_NAME`` of every function: one service, so metrics share one dimension."""
METRICS_NAMESPACE = "autotag"
"""``POWERTOOLS_METRICS_NAMESPACE``; the provider-failure alarm queries this namespace."""
PROVIDER_FAILURE_METRIC = "ProviderFailures"
"""Metric the pipeline emits (count) when a provider call fails terminally or after its retries."""
TRACED_AT_COLD_START = ("botocore",)
"""What each function's Tracer patches for X-Ray when it is created (``Tracer(patch_modules=...)``).

Every AWS call is traced from the first one. The provider HTTP client (httpx) is patched by
:func:`trace_library` when :mod:`autotag.providers.http` first loads, so a cold start does not
import httpx, nor every other library X-Ray's ``patch_all`` would look for (requests, sqlite3,
aiobotocore, ...), none of which the functions use.
"""


def trace_library(name: str) -> None:
    """Patch one more library for X-Ray through the functions' Tracer (a no-op when tracing is
    disabled, as in tests, the CLI and local runs, or when the library is already patched)."""
    from aws_lambda_powertools import Tracer

    # The Tracer's own rule (disabled by env, or outside Lambda), checked before making one: a
    # Tracer loads the X-Ray SDK, whose recorder opens its UDP emitter socket.
    if Tracer._is_tracer_disabled():
        return
    Tracer(auto_patch=False).patch([name])


def record_provider_failures(result: TagResult) -> None:
    """One ``ProviderFailures`` datapoint per failed provider, by provider and error code.

    A single metric each (flushed at once) because Powertools' shared metric set has one dimension
    set per flush; the alarm sums across dimensions with a Metrics Insights query.
    """
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE
    for status in result.failed:
        with single_metric(
            name=PROVIDER_FAILURE_METRIC, unit=MetricUnit.Count, value=1, namespace=namespace
        ) as metric:
            metric.add_dimension(name="provider", value=status.provider)
            metric.add_dimension(name="error_code", value=status.error_code or "unknown")
