"""EventBridge rule patterns: the bus rules of the deployment and the local stack's monitor."""

from __future__ import annotations

from typing import Any

from autotag.deploy.filters import NotificationFilter
from autotag.events import (
    EVENT_SOURCE,
    OBJECT_CREATED,
    OUTCOME_DETAIL_TYPES,
    S3_EVENT_SOURCE,
    TAG_IMAGE_REQUESTED,
)


def _wildcard_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*")


def object_created_pattern(bucket_name: str, filters: tuple[NotificationFilter, ...]) -> dict[str, Any]:
    """EventBridge pattern equivalent to the S3 notification filters (``eventbridge`` mode)."""
    pattern: dict[str, Any] = {
        "source": [S3_EVENT_SOURCE],
        "detail-type": [OBJECT_CREATED],
        "detail": {"bucket": {"name": [bucket_name]}},
    }
    keys = [
        {"wildcard": f"{_wildcard_escape(f.prefix or '')}*{_wildcard_escape(f.suffix or '')}"}
        for f in filters
        if f.prefix or f.suffix
    ]
    if keys:
        pattern["detail"]["object"] = {"key": keys}
    return pattern


TAG_REQUESTED_PATTERN: dict[str, Any] = {
    "source": [EVENT_SOURCE],
    "detail-type": [TAG_IMAGE_REQUESTED],
}

OUTCOMES_PATTERN: dict[str, Any] = {"source": [EVENT_SOURCE], "detail-type": list(OUTCOME_DETAIL_TYPES)}
"""Every outcome autotag publishes (Image Tagged, Image Tagging Failed, Image Tags Corrected)."""
