"""API: a REST API proxying every path to tag_api, behind API keys with a usage plan.

Body size: API Gateway's own ceiling is 10 MB and a synchronous Lambda invocation's is 6 MB, so the
effective limit is Lambda's. There is no request validator: every body reaches the function, which
owns the schema and answers each violation with its documented code (a validator would answer a
body that is not JSON, or an oversized ``image``, with one fixed message of its own).

Errors API Gateway answers itself (API key, throttling, quota, validator, size, timeout, and the 4XX
/ 5XX defaults) are reshaped by gateway responses into the function's error shape
``{"code", "message", "request_id"}`` (:func:`autotag.deploy.gateway.gateway_responses`).
"""

from __future__ import annotations

from autotag.api.images import CONSOLE_PATH
from autotag.deploy.config import ApiDeploymentSettings
from autotag.deploy.gateway import API_STAGE_NAME, GatewayResponseSpec, gateway_responses
from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra import ids
from infra.function_defaults import retention
from infra.nag import acknowledge


class TagApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: ApiDeploymentSettings,
        log_retention_days: int,
        handler: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        access_logs = logs.LogGroup(
            self,
            ids.API_ACCESS_LOGS,
            retention=retention(log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        cors = (
            apigw.CorsOptions(allow_origins=list(settings.cors_allow_origins))
            if settings.cors_allow_origins
            else None
        )
        self.api = apigw.RestApi(
            self,
            ids.REST_API,
            description="autotag: on-demand image tagging and tag queries",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            default_method_options=apigw.MethodOptions(api_key_required=True),
            default_cors_preflight_options=cors,
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            deploy_options=apigw.StageOptions(
                stage_name=API_STAGE_NAME,
                throttling_rate_limit=settings.stage_rate_limit,
                throttling_burst_limit=settings.stage_burst_limit,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                # Bodies carry images and tags: never log them.
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
            ),
        )
        integration = apigw.LambdaIntegration(handler, proxy=True)
        # Every path reaches the function (it owns routing, validation, 404s and the OpenAPI document).
        self.api.root.add_method("ANY", integration)
        self.api.root.add_proxy(default_integration=integration, any_method=True)
        v1 = self.api.root.add_resource("v1")
        v1.add_method("ANY", integration)
        v1.add_proxy(default_integration=integration, any_method=True)
        tags = v1.add_resource("tags")
        tags.add_method("ANY", integration)
        tags.add_proxy(default_integration=integration, any_method=True)  # /v1/tags/{tag}/images
        # The web console's static files (autotag.api.images): a browser navigating to the page
        # cannot send the key, and the files carry no data; every call the page makes sends it.
        console = self.api.root.add_resource(CONSOLE_PATH.strip("/"))
        console.add_method("GET", integration, api_key_required=False)
        console.add_resource("{proxy+}").add_method("GET", integration, api_key_required=False)

        cors_origin = _single_cors_origin(settings.cors_allow_origins)
        for error in gateway_responses():
            self._gateway_response(error, cors_origin)

        self.api_key = self.api.add_api_key(ids.API_KEY, description="autotag default API key")
        plan = self.api.add_usage_plan(
            ids.USAGE_PLAN,
            description="autotag default usage plan",
            throttle=apigw.ThrottleSettings(rate_limit=settings.rate_limit, burst_limit=settings.burst_limit),
            quota=apigw.QuotaSettings(limit=settings.quota_limit, period=apigw.Period[settings.quota_period]),
        )
        plan.add_api_stage(stage=self.api.deployment_stage)
        plan.add_api_key(self.api_key)

        if settings.web_acl_arn:
            wafv2.CfnWebACLAssociation(
                self,
                "WebAclAssociation",
                resource_arn=self.api.deployment_stage.stage_arn,
                web_acl_arn=settings.web_acl_arn,
            )
        self._acknowledge_findings(settings)

    def _gateway_response(self, error: GatewayResponseSpec, cors_origin: str | None) -> None:
        headers = {"Content-Type": "application/json", **error.headers}
        if cors_origin is not None:
            headers["Access-Control-Allow-Origin"] = cors_origin
        self.api.add_gateway_response(
            ids.pascal(error.response_type.lower()),
            type=apigw.ResponseType.of(error.response_type),
            status_code=None if error.status is None else str(error.status),
            # Static header values are quoted literals in API Gateway's mapping syntax.
            response_headers={name: f"'{value}'" for name, value in headers.items()},
            templates={"application/json": error.template()},
        )

    def _acknowledge_findings(self, settings: ApiDeploymentSettings) -> None:
        for rule in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
            acknowledge(
                self.api,
                rule,
                "clients are machines, not users: every method requires an API key bound to a usage plan "
                "with throttling and a quota (product decision); no user pool exists to authorize against",
            )
        acknowledge(
            self.api,
            "AwsSolutions-APIG2",
            "every path is proxied to tag_api, which validates each request against the OpenAPI document "
            "it publishes and answers each violation with its documented code; a gateway validator would "
            "answer a body that is not JSON, or an oversized image, with one fixed message instead",
        )
        cloud_watch_role = self.api.node.try_find_child("CloudWatchRole")
        if cloud_watch_role is not None:
            acknowledge(
                cloud_watch_role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "the account-level role API Gateway uses to write stage logs; this AWS-managed policy is "
                "the one AWS documents for it",
            )
        if not settings.web_acl_arn:
            acknowledge(
                self.api.deployment_stage,
                "AwsSolutions-APIG3",
                "WAF is opt-in (api.web_acl_arn); without it, API keys, usage-plan throttling and quota, and "
                "stage throttling bound abuse",
            )


def _single_cors_origin(origins: tuple[str, ...]) -> str | None:
    """The Access-Control-Allow-Origin of error responses: a static value, so only when one origin
    (or ``*``) is configured; with several, browsers see API Gateway's errors without CORS headers."""
    if "*" in origins:
        return "*"
    return origins[0] if len(origins) == 1 else None
