"""API Gateway's side of the API: the stage name, and the errors API Gateway answers itself (the
function never runs) reshaped by gateway responses into the API's error shape
``{"code", "message", "request_id"}``. The CDK stack (:mod:`infra.api`) and the local gateway
(:mod:`autotag.local.api_gateway`) both apply :func:`gateway_responses`."""

from __future__ import annotations

import json

from pydantic import Field

from autotag.deploy.config import FrozenModel
from autotag.deploy.limits import API_GATEWAY_MAX_INTEGRATION_SECONDS, API_GATEWAY_MAX_PAYLOAD_BYTES

API_STAGE_NAME = "prod"
"""The API's one stage (the path segment after the host in its URL)."""


class GatewayResponseSpec(FrozenModel):
    """An error API Gateway answers itself (the function never runs), reshaped by a gateway
    response into ``{"code", "message", "request_id"}`` like every error of the function."""

    response_type: str = Field(description="API Gateway's gateway response type")
    status: int | None = Field(
        description="None for DEFAULT_4XX / DEFAULT_5XX: setting theirs would override every other "
        "4XX / 5XX status"
    )
    code: str
    message: str | None = Field(description="None: API Gateway's own message")
    headers: dict[str, str] = Field(default_factory=dict)

    def template(self) -> str:
        """The application/json response template (VTL): only ``$context`` references, no directives."""
        message = "$context.error.messageString" if self.message is None else json.dumps(self.message)
        return f'{{"code":{json.dumps(self.code)},"message":{message},"request_id":"$context.requestId"}}'


def gateway_responses() -> tuple[GatewayResponseSpec, ...]:
    """The gateway responses the stack sets, with the stable codes documented in docs/api.md."""
    return (
        GatewayResponseSpec(
            response_type="INVALID_API_KEY",
            status=403,
            code="invalid_api_key",
            message="missing or invalid API key: send it in the x-api-key header",
        ),
        GatewayResponseSpec(
            response_type="MISSING_AUTHENTICATION_TOKEN",
            status=403,
            code="forbidden",
            message="missing API key, or no such method on this resource",
        ),
        GatewayResponseSpec(
            response_type="THROTTLED",
            status=429,
            code="throttled",
            message="too many requests for this API key or stage; retry after a pause",
            headers={"Retry-After": "1"},
        ),
        GatewayResponseSpec(
            response_type="QUOTA_EXCEEDED",
            status=429,
            code="quota_exceeded",
            message="this API key has used its request quota for the period",
        ),
        GatewayResponseSpec(
            response_type="BAD_REQUEST_BODY",
            status=400,
            code="invalid_request",
            # The stack sets no request validator (the function validates every body); kept so that
            # one added later still answers in the API's error shape.
            message="request body does not match the API's schema",
        ),
        GatewayResponseSpec(
            response_type="BAD_REQUEST_PARAMETERS",
            status=400,
            code="invalid_request",
            message="request parameters refused",
        ),
        GatewayResponseSpec(
            response_type="REQUEST_TOO_LARGE",
            status=413,
            code="payload_too_large",
            message=f"request is larger than API Gateway's {API_GATEWAY_MAX_PAYLOAD_BYTES // 2**20} MB "
            "limit; upload large images with POST /v1/uploads",
        ),
        GatewayResponseSpec(
            response_type="UNSUPPORTED_MEDIA_TYPE",
            status=415,
            code="unsupported_media_type",
            message="send the request body as application/json",
        ),
        GatewayResponseSpec(
            response_type="INTEGRATION_TIMEOUT",
            status=504,
            code="deadline",
            message="the request did not finish within API Gateway's "
            f"{API_GATEWAY_MAX_INTEGRATION_SECONDS} s",
        ),
        GatewayResponseSpec(response_type="DEFAULT_4XX", status=None, code="request_refused", message=None),
        GatewayResponseSpec(response_type="DEFAULT_5XX", status=None, code="internal_error", message=None),
    )
