"""Huawei Cloud error codes and what each becomes. Nearly every service error arrives as HTTP 400,
internal errors included, so errors are classified by ``error_code`` (AIS.*, APIG.*, ModelArts.*),
not by HTTP status (https://support.huaweicloud.com/api-image/image_03_0010.html)."""

from __future__ import annotations

import httpx

from autotag.errors import (
    AuthError,
    ProviderBadInputError,
    ProviderError,
    QuotaError,
    ThrottledError,
    TransientError,
)
from autotag.providers.failures import error_for_status, provider_error
from autotag.providers.redaction import Scrubber
from autotag.providers.responses import parse_optional
from autotag.providers.responses.huawei import ErrorBody

TOKEN_EXPIRED_CODES = frozenset({"APIG.0301", "APIG.0307"})
THROTTLED_CODES = frozenset({"APIG.0308"})
TRANSIENT_CODES = frozenset(
    {"AIS.0003", "AIS.0505", "AIS.0506", "AIS.0206", "APIG.0201", "AIS.0024", "AIS.0029"}
)
AUTH_CODES = frozenset(
    {
        "AIS.0002",
        "AIS.0004",
        "AIS.0026",
        "APIG.0301",
        "APIG.0303",
        "APIG.0307",
        "ModelArts.0203",
        "ModelArts.4101",
        "ModelArts.4102",
        "ModelArts.4103",
    }
)
QUOTA_CODES = frozenset({"AIS.0005", "AIS.0007", "AIS.0027", "AIS.0031", "AIS.0032", "ModelArts.4204"})
BAD_INPUT_CODES = frozenset(
    {f"AIS.{n:04d}" for n in (*range(10, 16), *range(20, 24), 25, *range(101, 105), *range(501, 505))}
    | {"ModelArts.4104", "ModelArts.4105"}
)
CONFIG_CODES = frozenset({"APIG.0101"})
"""The API does not exist at this endpoint: a wrong region or endpoint, not the image's fault."""


_CLASSES: tuple[tuple[frozenset[str], type[ProviderError]], ...] = (
    (THROTTLED_CODES, ThrottledError),
    (TRANSIENT_CODES, TransientError),
    (AUTH_CODES, AuthError),
    (QUOTA_CODES, QuotaError),
    (BAD_INPUT_CODES, ProviderBadInputError),
    (CONFIG_CODES, ProviderError),
)


def service_error(response: httpx.Response, *, provider: str, scrub: Scrubber) -> ProviderError:
    """The typed error for a non-200 answer of the tagging service."""
    body = parse_optional(ErrorBody, response)
    if body is None or body.error_code is None:
        return error_for_status(response, provider=provider)
    code = body.error_code
    request_id = body.request_id or response.headers.get("x-request-id")
    text = scrub(str(body.error_msg or f"HTTP {response.status_code}"))
    for codes, error_class in _CLASSES:
        if code in codes:
            return provider_error(
                error_class,
                text,
                provider=provider,
                provider_code=code,
                request_id=request_id,
                response=response,
                code="provider_config" if codes is CONFIG_CODES else None,
            )
    return error_for_status(
        response, provider=provider, message=text, provider_code=code, request_id=request_id
    )
