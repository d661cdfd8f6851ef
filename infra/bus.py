"""Bus: the custom EventBridge bus, the Tag Image Requested rule (-> on_event, with a DLQ and a
retry policy), the optional archive and, in ``eventbridge`` notification mode, the rule on the
default bus that delivers the bucket's Object Created events to on_event (same DLQ and retries)."""

from __future__ import annotations

from typing import Any

from autotag.deploy.config import BusSettings
from autotag.deploy.specs import EventRuleSpec
from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import ids


def event_pattern(spec: dict[str, Any]) -> events.EventPattern:
    """An EventPattern from the plain pattern in :mod:`autotag.deploy.patterns` (same JSON keys as AWS)."""
    known = {"source", "detail-type", "detail", "account", "region", "resources"}
    unknown = set(spec) - known
    if unknown:
        raise ValueError(f"unsupported event pattern keys: {sorted(unknown)}")
    return events.EventPattern(
        source=spec.get("source"),
        detail_type=spec.get("detail-type"),
        detail=spec.get("detail"),
        account=spec.get("account"),
        region=spec.get("region"),
        resources=spec.get("resources"),
    )


class Bus(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, settings: BusSettings, rules: tuple[EventRuleSpec, ...]
    ) -> None:
        super().__init__(scope, construct_id)
        self._settings = settings
        self._rules = rules
        self.bus = events.EventBus(self, ids.EVENT_BUS, description="autotag: image tagging events")
        retention = settings.archive_retention_days
        if retention:
            self.bus.archive(
                ids.ARCHIVE,
                description="Replayable history of the autotag bus",
                event_pattern=events.EventPattern(account=[Stack.of(self).account]),
                retention=Duration.days(retention),
            )
        self.rules: dict[str, events.Rule] = {}

    def route(self, *, on_event: lambda_.IFunction, tag_queue: sqs.IQueue, event_dlq: sqs.IQueue) -> None:
        settings = self._settings
        for spec in self._rules:
            target: events.IRuleTarget
            if spec.target == "on_event":
                target = targets.LambdaFunction(
                    on_event,
                    dead_letter_queue=event_dlq,
                    retry_attempts=settings.retry_attempts,
                    max_event_age=Duration.hours(settings.max_event_age_hours),
                )
            else:
                target = targets.SqsQueue(tag_queue, dead_letter_queue=event_dlq)
            self.rules[spec.rule_id] = self._rule(spec, target)

    def _rule(self, spec: EventRuleSpec, target: events.IRuleTarget) -> events.Rule:
        return events.Rule(
            self,
            f"{spec.rule_id}Rule",
            description=spec.description,
            event_bus=self.bus if spec.bus == "autotag" else None,
            event_pattern=event_pattern(spec.event_pattern),
            targets=[target],
        )
