"""Queues: the tag queue with its DLQ, the DLQ of the event path, and the S3 -> SQS notification."""

from __future__ import annotations

from autotag.deploy.filters import NotificationFilter
from autotag.deploy.specs import QueueSpec
from aws_cdk import Duration
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import ids
from infra.nag import acknowledge


class Queues(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: QueueSpec,
        event_dlq_retention_seconds: int,
        bucket: s3.IBucket,
        notification_filters: tuple[NotificationFilter, ...],
    ) -> None:
        """``notification_filters``: the bucket's S3 -> tag queue notifications (none in
        ``eventbridge`` notification mode)."""
        super().__init__(scope, construct_id)
        self.tag_dlq = _queue(self, ids.TAG_DLQ, retention_seconds=spec.dlq_retention_seconds)
        self.tag_queue = _queue(
            self,
            ids.TAG_QUEUE,
            retention_seconds=spec.retention_seconds,
            visibility_timeout=Duration.seconds(spec.visibility_timeout_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=spec.max_receive_count, queue=self.tag_dlq
            ),
        )
        # Where the bus rule puts events it could not deliver to on_event, and where on_event's
        # failed asynchronous invocations go.
        self.event_dlq = _queue(self, ids.EVENT_DLQ, retention_seconds=event_dlq_retention_seconds)
        acknowledge(
            self.event_dlq,
            "AwsSolutions-SQS3",
            "EventDlq is itself a dead-letter queue: of the Tag Image Requested rule target and of "
            "on_event's failed asynchronous invocations",
        )

        destination = s3n.SqsDestination(self.tag_queue)
        for key_filter in notification_filters:
            # No prefix and no suffix: every ObjectCreated (CDK refuses an empty key filter).
            key_filters = (
                [s3.NotificationKeyFilter(prefix=key_filter.prefix, suffix=key_filter.suffix)]
                if key_filter.prefix or key_filter.suffix
                else []
            )
            bucket.add_event_notification(s3.EventType.OBJECT_CREATED, destination, *key_filters)


def _queue(
    scope: Construct,
    construct_id: str,
    *,
    retention_seconds: int,
    visibility_timeout: Duration | None = None,
    dead_letter_queue: sqs.DeadLetterQueue | None = None,
) -> sqs.Queue:
    return sqs.Queue(
        scope,
        construct_id,
        # SSE-SQS: S3 notifications and EventBridge can deliver to it without a key policy.
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.seconds(retention_seconds),
        visibility_timeout=visibility_timeout,
        dead_letter_queue=dead_letter_queue,
    )
