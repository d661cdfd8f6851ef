"""The S3 Batch Operations part of the stack: the job role (trust and exactly its permissions), the
on_batch function (its grants and environment), the reports bucket and the outputs the CLI reads."""

from __future__ import annotations

import json

import pytest
from autotag.batch_tasks import load_batch_settings
from autotag.config import parse_config
from autotag.deploy.config import DeploymentConfig, load_deployment_config
from autotag.ops.batch_operations import OUTPUT_FUNCTION_ARN, OUTPUT_REPORTS_BUCKET, OUTPUT_ROLE_ARN

from tests.infra.cfn import as_list, refs, render, role_statements
from tests.infra.conftest import EXAMPLE_CONFIG, synthesize

pytestmark = pytest.mark.infra


def _role(synth, role) -> dict:
    return synth.raw["Resources"][synth.logical_id(role)]


def _grants(synth, role) -> dict[str, set[str]]:
    """Allowed actions by resource, resources rendered as '<what>:<suffix>'."""
    stack = synth.stack
    batch = stack.batch_operations
    labels = {
        synth.logical_id(stack.storage.bucket): "images",
        synth.logical_id(batch.reports_bucket): "reports",
        synth.logical_id(batch.function): "on_batch",
        synth.logical_id(stack.storage.table): "table",
        synth.logical_id(stack.queues.tag_queue): "tag_queue",
    }
    found: dict[str, set[str]] = {}
    for statement in role_statements(synth.raw, synth.logical_id(role)):
        assert statement["Effect"] == "Allow"
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                label = "*"
            elif isinstance(resource, str):
                label = resource
            else:
                targets = refs(resource) - {"AWS::Partition", "AWS::NoValue"}
                if not targets:  # only the partition: arn:aws:...
                    separator, parts = resource["Fn::Join"]
                    label = separator.join("aws" if isinstance(x, dict) else x for x in parts)
                else:
                    (target,) = targets
                    name = labels.get(target, f"log:{target}" if "Logs" in target else target)
                    suffix = resource["Fn::Join"][1][-1] if "Fn::Join" in resource else ""
                    label = f"{name}{suffix if isinstance(suffix, str) and suffix.startswith('/') else ''}"
            found.setdefault(label, set()).update(as_list(statement["Action"]))
    return found


def test_job_role_is_trusted_by_batch_operations_of_this_account_only(example):
    trust = _role(example, example.stack.batch_operations.job_role)["Properties"]["AssumeRolePolicyDocument"]
    [statement] = trust["Statement"]
    assert statement["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_job_role_may_do_exactly_what_the_job_needs(example):
    prefix = example.resources.batch_operations.report_prefix
    assert _grants(example, example.stack.batch_operations.job_role) == {
        "on_batch": {"lambda:InvokeFunction"},
        "images": {"s3:ListBucket"},
        f"reports/{prefix}*": {"s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"},
        "reports": {"s3:GetBucketLocation"},
    }


def test_manifest_buckets_are_readable_by_the_job_and_nothing_more(tmp_path, layer_dir):
    data = load_deployment_config(EXAMPLE_CONFIG).model_dump(mode="json")
    data["batch_operations"] = {"manifest_buckets": ["inventory-reports"]}
    synth = synthesize(DeploymentConfig.model_validate(data), tmp_path, layer_dir)
    grants = _grants(synth, synth.stack.batch_operations.job_role)
    assert grants["arn:aws:s3:::inventory-reports/*"] == {"s3:GetObject", "s3:GetObjectVersion"}
    assert synth.nag_violations() == []


def test_on_batch_may_head_objects_read_records_and_enqueue_only(example):
    batch = example.stack.batch_operations
    grants = _grants(example, batch.function.role)
    logs = [label for label in grants if label.startswith("log:")]
    assert len(logs) == 1
    assert grants.pop(logs[0]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert grants == {
        "images/*": {"s3:GetObject", "s3:GetObjectVersion"},
        "table": {"dynamodb:GetItem"},
        "tag_queue": {"sqs:SendMessage"},
        "*": {"xray:PutTraceSegments", "xray:PutTelemetryRecords"},
    }


def test_on_batch_runs_like_the_other_functions_with_its_own_environment(example):
    function = example.raw["Resources"][example.logical_id(example.stack.batch_operations.function)]
    props = function["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    spec = example.resources.batch_operations.function
    assert props["MemorySize"] == spec.memory_mb
    assert props["Timeout"] == spec.timeout_seconds
    env = {k: render(v) for k, v in props["Environment"]["Variables"].items()}
    settings = load_batch_settings(env)
    assert settings.tag_queue_url
    assert settings.table_name
    assert settings.images_bucket
    config = parse_config(json.loads(env["AUTOTAG_CONFIG"]), origin="AUTOTAG_CONFIG")
    assert config.filters.include_prefixes == ("photos/", "uploads/")
    assert "DLQ_URL" not in env  # nothing is dead-lettered here: the report says why


def test_reports_bucket_is_private_encrypted_ssl_only_and_unwatched(example):
    batch = example.stack.batch_operations
    bucket_id = example.logical_id(batch.reports_bucket)
    bucket = example.raw["Resources"][bucket_id]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 90
    # No notification of any kind points at the reports bucket: reports never trigger tagging.
    for resource in example.resources_of("Custom::S3BucketNotifications").values():
        assert bucket_id not in refs(resource["Properties"]["BucketName"])
    policies = [
        p["Properties"]
        for p in example.resources_of("AWS::S3::BucketPolicy").values()
        if bucket_id in refs(p["Properties"]["Bucket"])
    ]
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for p in policies
        for s in p["PolicyDocument"]["Statement"]
    )


def test_outputs_name_what_the_cli_needs(every):
    outputs = every.raw["Outputs"]
    batch = every.stack.batch_operations
    assert refs(outputs[OUTPUT_FUNCTION_ARN]["Value"]) == {every.logical_id(batch.function)}
    assert refs(outputs[OUTPUT_ROLE_ARN]["Value"]) == {every.logical_id(batch.job_role)}
    assert refs(outputs[OUTPUT_REPORTS_BUCKET]["Value"]) == {every.logical_id(batch.reports_bucket)}


def test_on_batch_errors_and_throttles_raise_alarms(example):
    function_id = example.logical_id(example.stack.batch_operations.function)
    metrics = {
        a["Properties"]["MetricName"]
        for a in example.resources_of("AWS::CloudWatch::Alarm").values()
        if any(function_id in refs(d["Value"]) for d in a["Properties"].get("Dimensions", []))
    }
    assert {"Errors", "Throttles"} <= metrics
