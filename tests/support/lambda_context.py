"""A Lambda context double: the attributes handlers and Powertools read, with a real countdown."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


@dataclass
class FakeLambdaContext:
    function_name: str = "autotag-on-upload"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 60.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/autotag-on-upload"
    log_stream_name: str = "2025/01/01/[$LATEST]0123456789abcdef"
    started_at: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        remaining = self.timeout_seconds - (time.monotonic() - self.started_at)
        return max(0, int(remaining * 1000))


def lambda_context(
    function_name: str = "autotag-on-upload", *, timeout_seconds: float = 60.0
) -> FakeLambdaContext:
    """A fresh context (new request id) whose deadline starts now."""
    return FakeLambdaContext(function_name=function_name, timeout_seconds=timeout_seconds)
