"""Secrets out of logs and error messages, for every provider.

One logging filter covers the libraries providers speak through: httpx logs request URLs (API keys
ride in some query strings), httpcore's debug trace prints request and response headers (IAM tokens
come back in one), botocore's debug log prints request headers and the canonical request (the
session token included; the secret key itself is never logged). :func:`redact_library_logs`
installs it; the HTTP client and the Rekognition client call it when they are made.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

REDACTED = "***"

_SECRET_QUERY = re.compile(
    r"([?&](?:key|api_key|apikey|access_token|token|signature|x-amz-signature|x-amz-security-token)=)"
    r"[^&\s\"']*",
    re.IGNORECASE,
)
_SECRET_HEADER = re.compile(
    r"(\(b'(?:authorization|proxy-authorization|cookie|set-cookie|x-api-key|x-goog-api-key|x-auth-token"
    r"|x-subject-token|x-security-token)', b')[^']*(')",
    re.IGNORECASE,
)
_SESSION_TOKEN = re.compile(r"(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)[^'\"\s,}]+", re.IGNORECASE)

SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "x-auth-token", "x-subject-token", "x-security-token", "cookie"}
)
LIBRARY_LOGGERS = (
    "httpx",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.connection",
    "botocore.endpoint",
    "botocore.auth",
    "botocore.hooks",
    "botocore.parsers",
)


def redact(message: str) -> str:
    """`message` with credential values in URLs, header dumps and signed requests blanked."""
    message = _SECRET_QUERY.sub(rf"\1{REDACTED}", message)
    message = _SECRET_HEADER.sub(rf"\1{REDACTED}\2", message)
    return _SESSION_TOKEN.sub(rf"\1{REDACTED}", message)


class RedactSecrets(logging.Filter):
    """Rewrites a log record whose text carries a credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def redact_library_logs(loggers: Iterable[str] = LIBRARY_LOGGERS) -> None:
    """Install the filter on the HTTP and AWS libraries' loggers (idempotent)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers safe to log: credentials replaced."""
    return {k: (REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


def scrub(text: str, *secrets: str) -> str:
    """Provider text with our credentials removed, should the provider echo them back."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class Scrubber:
    """Removes secret values from provider-supplied text before it reaches an error or a log, and
    cuts the text short (values under 4 characters are left alone: they would blank ordinary words)."""

    def __init__(self, values: Iterable[object] = (), *, limit: int = 300) -> None:
        self._values = tuple(v for v in (str(x) for x in values) if len(v) >= 4)
        self._limit = limit

    def adding(self, value: str) -> Scrubber:
        return Scrubber((*self._values, value), limit=self._limit)

    def __call__(self, text: str) -> str:
        return scrub(text, *self._values)[: self._limit]
