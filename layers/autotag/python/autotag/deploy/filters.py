"""S3 notification filters that deliver a superset of what the tagging filters accept."""

from __future__ import annotations

from collections.abc import Callable

from autotag.config import ObjectFilters
from autotag.deploy.config import FrozenModel
from autotag.deploy.limits import S3_MAX_NOTIFICATION_FILTERS

S3_OBJECT_CREATED = "s3:ObjectCreated:*"
"""The S3 event type the tag queue is subscribed to."""


class NotificationFilter(FrozenModel):
    prefix: str | None = None
    suffix: str | None = None


def _minimal(values: tuple[str, ...], covers: Callable[[str, str], bool]) -> list[str]:
    """Drop values another one already covers (S3 rejects overlapping filters)."""
    kept: list[str] = []
    for value in sorted(set(values), key=len):
        if not any(covers(value, k) for k in kept):
            kept.append(value)
    return sorted(kept)


def notification_filters(filters: ObjectFilters) -> tuple[NotificationFilter, ...]:
    """S3 notification filters (one prefix and one suffix each, none overlapping) that deliver a
    superset of what :meth:`ObjectFilters.accepts` takes; the function applies the exact filters.

    S3 (and EventBridge's wildcard) match suffixes case-sensitively, and ``.jpg`` has 16 case
    variants, so case-insensitive suffixes (the default) are not sent to S3 at all: the
    subscription is by prefix only and the function filters suffixes case-insensitively. Objects
    under a watched prefix that are not images then invoke the function and are skipped before
    any S3 read. Case-sensitive suffixes are subscribed as given (prefix x suffix), unless that
    exceeds :data:`S3_MAX_NOTIFICATION_FILTERS`. Exclusions cannot be expressed in S3 filters and
    are left to the function.
    """
    prefixes = _minimal(filters.include_prefixes, str.startswith) if filters.include_prefixes else [""]
    suffixes: list[str] = []
    if filters.include_suffixes and filters.case_sensitive_suffixes:
        suffixes = _minimal(filters.include_suffixes, str.endswith)
    if "" in suffixes or len(prefixes) * max(1, len(suffixes)) > S3_MAX_NOTIFICATION_FILTERS:
        suffixes = []
    return tuple(
        NotificationFilter(prefix=prefix or None, suffix=suffix or None)
        for prefix in prefixes
        for suffix in (suffixes or [""])
    )
