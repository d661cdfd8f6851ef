"""What the running local stack prints: the banner once it is ready, and a line per API request,
per failed ``on_upload`` batch (each record going back on the queue) and per failed ``on_event``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_plus

from autotag.local.lambda_workers import Invocation
from autotag.local.sqs_source import BatchOutcome
from autotag.local.state import LocalState

if TYPE_CHECKING:
    from autotag.local.stack import LocalOptions


def _now() -> str:
    return datetime.now().strftime("%H:%M:%S")


def batch_lines(outcome: BatchOutcome, *, visibility: int, max_receives: int) -> Iterator[str]:
    """A failed invocation of on_upload, and each record of the batch that goes back on the queue."""
    if not outcome.failed_ids:
        return
    now = _now()
    if not outcome.invocation.ok:
        yield (
            f"{now}  on_upload  invocation failed ({outcome.invocation.error_type}: "
            f"{_short(outcome.invocation.error_message)}); {outcome.received} message(s) return "
            f"after the {visibility} s visibility timeout"
        )
    for record in outcome.records:
        if record["messageId"] not in outcome.failed_ids:
            continue
        receives = record["attributes"].get("ApproximateReceiveCount", "?")
        where = ", ".join(record_keys(record)) or record["messageId"]
        yield (
            f"{now}  retry   {where}  receive {receives} of {max_receives}; "
            f"back on the queue in {visibility} s"
        )


def event_failure_line(event: dict[str, Any], invocation: Invocation) -> str | None:
    """A failed on_event invocation (None when it succeeded)."""
    if invocation.ok:
        return None
    return (
        f"{_now()}  on_event  {event.get('detail-type')} failed ({invocation.error_type}: "
        f"{_short(invocation.error_message)}); retried later"
    )


def request_line(method: str, path: str, status: int, millis: float) -> str:
    return f"{_now()}  api     {method} {path.split('?')[0]} -> {status}  {millis:.0f} ms"


def _short(text: str | None, limit: int = 160) -> str:
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    flat = " ".join(first.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def record_keys(record: Mapping[str, Any]) -> Iterator[str]:
    """s3://bucket/key of the objects an SQS record (S3 notification or EventBridge event) names."""
    try:
        body = json.loads(record.get("body") or "")
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    for entry in body.get("Records") or []:
        s3 = entry.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        key = (s3.get("object") or {}).get("key")
        if bucket and key:
            yield f"s3://{bucket}/{unquote_plus(key)}"
    detail = body.get("detail")
    if isinstance(detail, dict) and isinstance(detail.get("bucket"), dict):
        yield f"s3://{detail['bucket'].get('name')}/{(detail.get('object') or {}).get('key')}"


def banner(state: LocalState, options: LocalOptions) -> str:
    r = state.resources
    endpoint = state.endpoint_url
    lines = [
        "autotag local is running (Ctrl-C to stop)",
        f"  AWS emulator     {endpoint}",
        f"                   e.g. aws --endpoint-url {endpoint} s3 cp photo.jpg s3://{r.images_bucket}/",
        f"  API              {state.api_url}   (header x-api-key; e.g. POST {state.api_url}v1/tags)",
        f"  API key          {state.api_key}",
        f"  console          {state.api_url}console/#key={quote(state.api_key, safe='')}",
        f"  images bucket    {r.images_bucket}",
        f"  table            {r.table_name}   (idempotency: {r.idempotency_table_name})",
        f"  event bus        {r.event_bus_name}",
        f"  tag queue        {r.tag_queue_url}",
        f"  tag DLQ          {r.dlq_url}",
        f"  event DLQ        {r.extra.get('event_dlq_url', '-')}",
        f"  batch jobs       {r.extra.get('s3control_endpoint_url', '-')}   "
        "(S3 Control jobs: autotag backfill --engine batch-operations)",
        f"  providers        {', '.join(p.key for p in options.config.tagging.providers)}",
        f"  state file       {options.state_path}",
        "  persistence      none: the emulator keeps everything in memory; a restart starts empty",
    ]
    for provider_key, secret_name in r.secrets.items():
        lines.append(f"  secret           {secret_name} ({provider_key})")
    return "\n".join(lines)
