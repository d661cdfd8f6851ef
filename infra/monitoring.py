"""Monitoring: alarms on DLQ depth, function errors and throttles, provider failures and the API's
5xx, all notifying one SNS topic (optionally e-mailed), and a small dashboard."""

from __future__ import annotations

from autotag.deploy.config import MonitoringSettings
from autotag.observability import METRICS_NAMESPACE, PROVIDER_FAILURE_METRIC
from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import ids

FIVE_MINUTES = Duration.minutes(5)


def provider_failures_metric() -> cloudwatch.IMetric:
    """Provider failures summed over every dimension set the functions emit (a Metrics Insights
    query, so adding a ``provider`` dimension later does not break the alarm)."""
    return cloudwatch.MathExpression(
        # A Metrics Insights query built from our own constants, not from input.
        expression=f'SELECT SUM({PROVIDER_FAILURE_METRIC}) FROM "{METRICS_NAMESPACE}"',  # noqa: S608
        using_metrics={},
        label="Provider failures",
        period=FIVE_MINUTES,
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: MonitoringSettings,
        tag_queue_visibility_seconds: int,
        dead_letter_queues: dict[str, sqs.IQueue],
        tag_queue: sqs.IQueue,
        functions: dict[str, lambda_.IFunction],
        api: apigw.RestApi,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, ids.ALARM_TOPIC, display_name="autotag alarms", enforce_ssl=True)
        if settings.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        def alarm(alarm_id: str, metric: cloudwatch.IMetric, *, threshold: float, description: str) -> None:
            created = cloudwatch.Alarm(
                self,
                alarm_id,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            created.add_alarm_action(action)
            self.alarms[alarm_id] = created

        for name, queue in dead_letter_queues.items():
            alarm(
                f"{name}Depth",
                queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
                ),
                threshold=1,
                description=f"{name} holds messages: images failed to tag (see docs/deploy.md, redrive)",
            )
        alarm(
            "TagQueueAge",
            tag_queue.metric_approximate_age_of_oldest_message(
                period=FIVE_MINUTES, statistic=cloudwatch.Stats.MAXIMUM
            ),
            threshold=3 * tag_queue_visibility_seconds,
            description="Uploads wait longer than three visibility timeouts: on_upload is falling behind",
        )
        for name, function in functions.items():
            alarm(
                f"{ids.pascal(name)}Errors",
                function.metric_errors(period=FIVE_MINUTES, statistic=cloudwatch.Stats.SUM),
                threshold=1,
                description=f"{name} raised errors",
            )
            alarm(
                f"{ids.pascal(name)}Throttles",
                function.metric_throttles(period=FIVE_MINUTES, statistic=cloudwatch.Stats.SUM),
                threshold=1,
                description=f"{name} was throttled",
            )
        alarm(
            "ProviderFailures",
            provider_failures_metric(),
            threshold=settings.provider_failure_threshold,
            description=f"Tagging providers failed {settings.provider_failure_threshold}+ times in 5 minutes",
        )
        alarm(
            "ApiServerErrors",
            api.metric_server_error(period=FIVE_MINUTES, statistic=cloudwatch.Stats.SUM),
            threshold=5,
            description="The tagging API returned 5xx responses",
        )

        self.dashboard = cloudwatch.Dashboard(self, ids.DASHBOARD, default_interval=Duration.hours(3))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Tag queue",
                left=[
                    tag_queue.metric_approximate_number_of_messages_visible(),
                    tag_queue.metric_approximate_age_of_oldest_message(),
                ],
                right=[
                    queue.metric_approximate_number_of_messages_visible()
                    for queue in dead_letter_queues.values()
                ],
            ),
            cloudwatch.GraphWidget(
                title="Function errors and throttles",
                left=[f.metric_errors() for f in functions.values()],
                right=[f.metric_throttles() for f in functions.values()],
            ),
            cloudwatch.GraphWidget(
                title="Function duration (p90)",
                left=[f.metric_duration(statistic=cloudwatch.Stats.p(90)) for f in functions.values()],
            ),
            cloudwatch.GraphWidget(title="Provider failures", left=[provider_failures_metric()]),
            cloudwatch.GraphWidget(
                title="API",
                left=[api.metric_count(), api.metric_client_error(), api.metric_server_error()],
                right=[api.metric_latency(statistic=cloudwatch.Stats.p(90))],
            ),
        )
