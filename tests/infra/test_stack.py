"""The synthesized stack has the properties that matter (not resource counts)."""

from __future__ import annotations

import json

import pytest
from autotag.config import parse_config
from autotag.deploy.config import DeploymentConfig, FunctionName, load_deployment_config
from autotag.events import EVENT_SOURCE, TAG_IMAGE_REQUESTED
from autotag.observability import METRICS_NAMESPACE, PROVIDER_FAILURE_METRIC
from autotag.settings import load_settings
from aws_cdk.assertions import Match

from tests.infra.cfn import as_list, refs, render, role_statements, statements
from tests.infra.conftest import DEFAULT_CONFIG, EXAMPLE_CONFIG, REPO_ROOT

pytestmark = pytest.mark.infra


def _function(synth, name: FunctionName) -> dict:
    logical_id = synth.logical_id(synth.stack.functions.by_name[name])
    return synth.raw["Resources"][logical_id]


def _role_id(synth, name: FunctionName) -> str:
    return synth.logical_id(synth.stack.functions.by_name[name].role)


# --- Queues and the event source ----------------------------------------------------------------


def test_event_source_reports_batch_failures_with_derived_max_concurrency(example):
    queue_id = example.logical_id(example.stack.queues.tag_queue)
    function_id = example.logical_id(example.stack.functions.on_upload)
    mappings = example.resources_of("AWS::Lambda::EventSourceMapping")
    [mapping] = [
        m["Properties"] for m in mappings.values() if queue_id in refs(m["Properties"]["EventSourceArn"])
    ]
    assert function_id in refs(mapping["FunctionName"])
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    assert mapping["MaximumBatchingWindowInSeconds"] == 5
    # imagedescriber: 30/min; 1 record in flight at ~4 s = 15 calls/min per instance -> 2 instances.
    assert example.resources.concurrency.limiting_provider == "imagedescriber"
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 2}
    assert not example.resources.concurrency.exceeds_rate_limit


def test_event_source_without_rate_limits_uses_the_configured_cap(default):
    default.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"ScalingConfig": {"MaximumConcurrency": 50}, "FunctionResponseTypes": ["ReportBatchItemFailures"]},
    )


def test_tag_queue_redrives_to_its_dlq_with_six_times_the_function_timeout(example):
    queues = example.stack.queues
    tag_queue = example.raw["Resources"][example.logical_id(queues.tag_queue)]["Properties"]
    on_upload = _function(example, FunctionName.ON_UPLOAD)["Properties"]
    assert tag_queue["VisibilityTimeout"] >= 6 * on_upload["Timeout"]
    assert tag_queue["VisibilityTimeout"] == 6 * 120 + 5
    assert tag_queue["RedrivePolicy"]["maxReceiveCount"] == 5
    assert refs(tag_queue["RedrivePolicy"]["deadLetterTargetArn"]) == {example.logical_id(queues.tag_dlq)}


def test_every_queue_is_encrypted_and_refuses_plain_http(every):
    queues = every.resources_of("AWS::SQS::Queue")
    assert queues
    for queue in queues.values():
        assert (
            queue["Properties"].get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue["Properties"]
        )
    policies = every.resources_of("AWS::SQS::QueuePolicy")
    guarded = set()
    for policy in policies.values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                guarded |= refs(policy["Properties"]["Queues"])
    assert set(queues) <= guarded


def test_s3_notifications_deliver_object_created_with_the_configured_filters(example):
    [notifications] = example.resources_of("Custom::S3BucketNotifications").values()
    configs = notifications["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    queue_id = example.logical_id(example.stack.queues.tag_queue)
    seen = set()
    for config in configs:
        assert config["Events"] == ["s3:ObjectCreated:*"]
        assert refs(config["QueueArn"]) == {queue_id}
        rules = {r["Name"]: r["Value"] for r in config["Filter"]["Key"]["FilterRules"]}
        seen.add((rules.get("prefix"), rules.get("suffix")))
    # Case-insensitive suffixes (the default) are filtered by the function: S3 matches suffixes
    # case-sensitively, so a suffix rule would drop IMG_0001.Jpg. The subscription is by prefix.
    assert seen == {("photos/", None), ("uploads/", None)}


def test_default_stack_subscribes_every_object_created_and_leaves_filters_to_the_function(default):
    [notifications] = default.resources_of("Custom::S3BucketNotifications").values()
    [config] = notifications["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert config["Events"] == ["s3:ObjectCreated:*"]
    assert "Filter" not in config  # no prefix configured; suffixes are matched case-insensitively


# --- Storage -------------------------------------------------------------------------------------


def test_images_bucket_is_encrypted_private_versioned_logged_and_ssl_only(example):
    bucket_id = example.logical_id(example.stack.storage.bucket)
    bucket = example.raw["Resources"][bucket_id]["Properties"]
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "DestinationBucketName" in bucket["LoggingConfiguration"]
    example.template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": bucket_id},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            },
        },
    )
    assert example.raw["Resources"][bucket_id]["DeletionPolicy"] == "Retain"


def test_existing_bucket_is_imported_not_created(imported):
    # The only bucket created is the Batch Operations reports bucket (never watched).
    reports_id = imported.logical_id(imported.stack.batch_operations.reports_bucket)
    assert set(imported.resources_of("AWS::S3::Bucket")) == {reports_id}
    env = _function(imported, FunctionName.ON_UPLOAD)["Properties"]["Environment"]["Variables"]
    assert env["IMAGES_BUCKET"] == "team-photos"


def test_tables_are_on_demand_with_pitr_ttl_and_the_store_key_schema(example):
    table = example.raw["Resources"][example.logical_id(example.stack.storage.table)]["Properties"]
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    idempotency = example.raw["Resources"][example.logical_id(example.stack.storage.idempotency_table)]
    assert idempotency["Properties"]["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert idempotency["Properties"]["TimeToLiveSpecification"] == {
        "AttributeName": "expiration",
        "Enabled": True,
    }
    assert idempotency["Properties"]["BillingMode"] == "PAY_PER_REQUEST"


def test_tables_match_what_the_local_stack_and_the_integration_tests_create(example):
    """The CDK tables and the emulator's (local stack, tests/support) come from one schema."""
    from autotag.store.schema import IDEMPOTENCY_TABLE, TABLE, table_definition

    def by_name(entries):
        return sorted(entries, key=lambda e: e.get("AttributeName") or e.get("IndexName"))

    storage = example.stack.storage
    for construct, spec in ((storage.table, TABLE), (storage.idempotency_table, IDEMPOTENCY_TABLE)):
        synthesized = example.raw["Resources"][example.logical_id(construct)]["Properties"]
        created = table_definition("emulator-table", spec)
        assert synthesized["KeySchema"] == created["KeySchema"]
        assert by_name(synthesized["AttributeDefinitions"]) == by_name(created["AttributeDefinitions"])
        assert synthesized["BillingMode"] == created["BillingMode"]
        assert [
            {k: i[k] for k in ("IndexName", "KeySchema", "Projection")}
            for i in synthesized.get("GlobalSecondaryIndexes", [])
        ] == created.get("GlobalSecondaryIndexes", [])
        assert synthesized["TimeToLiveSpecification"] == {
            "AttributeName": spec.ttl_attribute,
            "Enabled": True,
        }


# --- Functions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FunctionName))
def test_function_runtime_architecture_tracing_logging_and_layers(example, name):
    function = _function(example, name)["Properties"]
    assert function["Runtime"] == "python3.12"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == "handler.handler"
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    layer_ids = {next(iter(refs(layer))) for layer in function["Layers"]}
    layers = example.stack.layers
    assert layer_ids == {example.logical_id(layers.package), example.logical_id(layers.dependencies)}
    log_group_id = next(iter(refs(function["LoggingConfig"]["LogGroup"])))
    assert example.raw["Resources"][log_group_id]["Properties"]["RetentionInDays"] == 30
    spec = example.resources.function(name)
    assert function["MemorySize"] == spec.memory_mb
    assert function["Timeout"] == spec.timeout_seconds


@pytest.mark.parametrize("name", list(FunctionName))
def test_function_environment_is_what_the_runtime_validates(example, name):
    variables = _function(example, name)["Properties"]["Environment"]["Variables"]
    env = {key: render(value) for key, value in variables.items()}
    settings = load_settings(env)
    assert settings.table_name
    assert settings.idempotency_table_name
    assert settings.event_bus_name
    assert (settings.dlq_url is not None) == (name is not FunctionName.TAG_API)
    config = parse_config(json.loads(env["AUTOTAG_CONFIG"]), origin="AUTOTAG_CONFIG")
    assert [p.key for p in config.providers] == ["imagedescriber", "rekognition", "basic"]
    imagedescriber = config.provider("imagedescriber")
    assert imagedescriber is not None
    assert imagedescriber.secret_id is not None
    assert imagedescriber.secret_id.startswith("arn:aws:secretsmanager:")
    assert config.filters.include_prefixes == ("photos/", "uploads/")
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == METRICS_NAMESPACE
    assert env["POWERTOOLS_SERVICE_NAME"] == "autotag"
    # Lambda allows 4 KB of environment in total.
    assert sum(len(k) + len(v) for k, v in env.items()) < 3500


def test_imported_secret_names_reach_the_runtime_config(imported):
    variables = _function(imported, FunctionName.ON_EVENT)["Properties"]["Environment"]["Variables"]
    config = parse_config(json.loads(render(variables["AUTOTAG_CONFIG"])), origin="env")
    secret_ids = {p.key: p.secret_id for p in config.providers}
    assert secret_ids["imagedescriber"] == "autotag/imagedescriber"
    assert str(secret_ids["huawei"]).endswith(":secret:autotag/huawei-AbCdEf")
    assert imported.resources_of("AWS::SecretsManager::Secret") == {}


def test_on_event_failed_invocations_go_to_the_event_dlq(example):
    dlq_id = example.logical_id(example.stack.queues.event_dlq)
    function_id = example.logical_id(example.stack.functions.on_event)
    [config] = example.resources_of("AWS::Lambda::EventInvokeConfig").values()
    assert function_id in refs(config["Properties"]["FunctionName"])
    assert refs(config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]) == {dlq_id}
    assert config["Properties"]["MaximumRetryAttempts"] == 2


# --- IAM -----------------------------------------------------------------------------------------

UNSCOPABLE = {
    # Active tracing: X-Ray has no resource-level permissions for these.
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    # Rekognition image operations take no resource ARN.
    "rekognition:DetectLabels",
    "rekognition:DetectModerationLabels",
    # aws-cdk-lib's BucketNotificationsHandler (deploy-time custom resource).
    "s3:PutBucketNotification",
}
MANAGED_POLICY_OWNERS = ("CloudWatchRole", "BucketNotificationsHandler")


def test_no_data_action_has_a_wildcard_resource_or_action(every):
    problems = []
    for logical_id, resource in every.raw["Resources"].items():
        for statement in statements(resource):
            if statement.get("Effect") != "Allow" or "Principal" in statement:
                continue
            actions = as_list(statement["Action"])
            problems += [f"{logical_id}: wildcard action {a}" for a in actions if "*" in a]
            if "*" in as_list(statement.get("Resource", [])):
                problems += [f"{logical_id}: {a} on '*'" for a in actions if a not in UNSCOPABLE]
    assert problems == []


def test_only_known_roles_use_managed_policies(every):
    for logical_id, role in every.resources_of("AWS::IAM::Role").items():
        if role["Properties"].get("ManagedPolicyArns"):
            assert logical_id.startswith(("ApiRestApiCloudWatchRole", "BucketNotificationsHandler")), (
                logical_id
            )


def _actions_on(statements_: list[dict], predicate) -> set[str]:
    found = set()
    for statement in statements_:
        if any(predicate(r) for r in as_list(statement.get("Resource", []))):
            found |= set(as_list(statement["Action"]))
    return found


def test_on_upload_may_read_and_tag_objects_of_the_watched_bucket_only(example):
    bucket_id = example.logical_id(example.stack.storage.bucket)
    found = role_statements(example.raw, _role_id(example, FunctionName.ON_UPLOAD))
    s3_actions = {a for s in found for a in as_list(s["Action"]) if a.startswith("s3:")}
    assert s3_actions == OBJECT_READ_AND_TAG
    for statement in found:
        if any(a.startswith("s3:") for a in as_list(statement["Action"])):
            for resource in as_list(statement["Resource"]):
                assert refs(resource) == {bucket_id}
                assert resource["Fn::Join"][1][-1] == "/*"
    sends = _actions_on(found, lambda r: example.logical_id(example.stack.queues.tag_dlq) in refs(r))
    assert "sqs:SendMessage" in sends
    event_dlq_id = example.logical_id(example.stack.queues.event_dlq)
    assert not _actions_on(found, lambda r: event_dlq_id in refs(r))


LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
XRAY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
REKOGNITION = {"rekognition:DetectLabels", "rekognition:DetectModerationLabels"}
OBJECT_READ_AND_TAG = {
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
}
# DynamoImageStore: the claim (UpdateItem), a claimed put (BatchWriteItem), an unclaimed put
# (TransactWriteItems of Put/Delete, authorized per item), release (UpdateItem / DeleteItem), GetItem,
# cache GetItem/PutItem and a batch's lookups (BatchGetItem).
RECORDS = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:BatchGetItem",
}
# Powertools' DynamoDBPersistenceLayer.
IDEMPOTENCY = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
SEND = {"sqs:SendMessage"}
PUT_EVENTS = {"events:PutEvents"}
READ_SECRET = {"secretsmanager:GetSecretValue"}

# What each function's code calls (autotag.upload / autotag.api / autotag.subscriber over
# autotag.tagging), by resource: the grants must be exactly these.
EXPECTED_GRANTS = {
    FunctionName.ON_UPLOAD: {
        # Lambda's SQS event source polls with the function's role (aws-cdk-lib grants these).
        "tag_queue": {
            "sqs:ReceiveMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueUrl",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
        },
        "table": RECORDS,
        "bus": PUT_EVENTS,
        "tag_dlq": SEND,
        "objects": OBJECT_READ_AND_TAG,
        "secret:imagedescriber": READ_SECRET,
        "*": XRAY | REKOGNITION,
        "own_logs": LOGS,
    },
    FunctionName.TAG_API: {
        # GET /v1/tags/{tag}/images queries the index; store mode and the result cache write. No
        # idempotency, no DLQ.
        "table": RECORDS | {"dynamodb:Query"},
        "bus": PUT_EVENTS,
        "objects": OBJECT_READ_AND_TAG,
        "upload_prefix": {"s3:PutObject"},
        "secret:imagedescriber": READ_SECRET,
        "*": XRAY | REKOGNITION,
        "own_logs": LOGS,
    },
    FunctionName.ON_EVENT: {
        "table": RECORDS,
        "idempotency_table": IDEMPOTENCY,
        "bus": PUT_EVENTS,
        # DLQ_URL (autotag.dlq) and Lambda's on-failure destination: both SendMessage only.
        "event_dlq": SEND,
        "objects": OBJECT_READ_AND_TAG,
        "secret:imagedescriber": READ_SECRET,
        "*": XRAY | REKOGNITION,
        "own_logs": LOGS,
    },
}


def _grants(synth, name: FunctionName) -> dict[str, set[str]]:
    """The function role's allowed actions, by what they apply to."""
    stack = synth.stack
    function = stack.functions.by_name[name]
    log_group = next(iter(refs(_function(synth, name)["Properties"]["LoggingConfig"]["LogGroup"])))
    labels = {
        synth.logical_id(stack.storage.table): "table",
        synth.logical_id(stack.storage.idempotency_table): "idempotency_table",
        synth.logical_id(stack.bus.bus): "bus",
        synth.logical_id(stack.queues.tag_queue): "tag_queue",
        synth.logical_id(stack.queues.tag_dlq): "tag_dlq",
        synth.logical_id(stack.queues.event_dlq): "event_dlq",
        log_group: "own_logs",
        **{synth.logical_id(secret): f"secret:{key}" for key, secret in stack.secrets.secrets.items()},
    }
    bucket_id = synth.logical_id(stack.storage.bucket)
    upload_suffix = f"/{synth.config.api.upload_prefix}*"
    found: dict[str, set[str]] = {}
    for statement in role_statements(synth.raw, synth.logical_id(function.role)):
        assert statement["Effect"] == "Allow"
        for resource in as_list(statement["Resource"]):
            targets = refs(resource) - {"AWS::Partition", "AWS::NoValue"}
            if resource == "*":
                label = "*"
            elif targets == {bucket_id}:
                suffix = resource["Fn::Join"][1][-1]
                label = {"/*": "objects", upload_suffix: "upload_prefix"}[suffix]
            else:
                (target,) = targets
                label = labels[target]
            found.setdefault(label, set()).update(as_list(statement["Action"]))
    return found


@pytest.mark.parametrize("name", list(FunctionName))
def test_each_function_is_granted_exactly_what_its_code_calls(example, name):
    assert _grants(example, name) == EXPECTED_GRANTS[name]


def test_without_secrets_or_rekognition_nothing_of_theirs_is_granted(default):
    for name in FunctionName:
        expected = {
            label: actions - REKOGNITION
            for label, actions in EXPECTED_GRANTS[name].items()
            if not label.startswith("secret:")
        }
        assert _grants(default, name) == expected


def test_tag_api_presigns_uploads_only_under_the_upload_prefix(example):
    found = role_statements(example.raw, _role_id(example, FunctionName.TAG_API))
    [statement] = [s for s in found if "s3:PutObject" in as_list(s["Action"])]
    assert as_list(statement["Action"]) == ["s3:PutObject"]
    suffixes = sorted(r["Fn::Join"][1][-1] for r in as_list(statement["Resource"]))
    assert suffixes == ["/uploads/*"]


def test_rekognition_is_granted_only_when_configured(default):
    for name in FunctionName:
        found = role_statements(default.raw, _role_id(default, name))
        assert not any(a.startswith("rekognition:") for s in found for a in as_list(s["Action"]))


def test_allowed_buckets_are_readable_by_api_and_events_not_by_on_upload(imported):
    def reads_shared(name):
        found = role_statements(imported.raw, _role_id(imported, name))
        return _actions_on(found, lambda r: "shared-media" in json.dumps(r))

    assert "s3:GetObject" in reads_shared(FunctionName.TAG_API)
    assert "s3:GetObject" in reads_shared(FunctionName.ON_EVENT)
    assert reads_shared(FunctionName.ON_UPLOAD) == set()


def test_secret_imported_by_name_is_granted_by_its_name_pattern(imported):
    found = role_statements(imported.raw, _role_id(imported, FunctionName.ON_UPLOAD))
    rendered = {json.dumps(r) for s in found for r in as_list(s.get("Resource", []))}
    assert any("secret:autotag/imagedescriber-??????" in r for r in rendered)
    assert any("secret:autotag/huawei-AbCdEf" in r for r in rendered)


# --- API -----------------------------------------------------------------------------------------


def test_every_api_method_requires_an_api_key_but_the_console_files(every):
    methods = every.resources_of("AWS::ApiGateway::Method")
    assert methods
    resources = every.resources_of("AWS::ApiGateway::Resource")
    keyless = []
    for method in methods.values():
        assert method["Properties"]["HttpMethod"] != "OPTIONS"  # CORS is off by default
        if method["Properties"]["ApiKeyRequired"] is not True:
            keyless.append((method["Properties"]["HttpMethod"], _resource_path(resources, method)))
    # The web console's static files only: a browser navigating to the page cannot send the key.
    assert sorted(keyless) == [("GET", "/console"), ("GET", "/console/{proxy+}")]


def _resource_path(resources, method):
    ref = method["Properties"]["ResourceId"]
    parts = []
    while isinstance(ref, dict) and "Ref" in ref:
        resource = resources[ref["Ref"]]["Properties"]
        parts.append(resource["PathPart"])
        ref = resource["ParentId"]
    return "/" + "/".join(reversed(parts))


def test_every_request_body_reaches_the_function(example):
    """No request validator: the function answers every body with its documented code (a validator
    would answer `{`, `[` or `null` with its own message instead of malformed_json)."""
    assert example.resources_of("AWS::ApiGateway::Model") == {}
    assert example.resources_of("AWS::ApiGateway::RequestValidator") == {}
    resources = example.resources_of("AWS::ApiGateway::Resource")
    found = example.resources_of("AWS::ApiGateway::Method").values()
    methods = [m["Properties"] for m in found]
    # Every path takes any method, but the console's static files: GET only (no body at all).
    by_path = {(m["Properties"]["HttpMethod"], _resource_path(resources, m)) for m in found}
    assert {path for method, path in by_path if method != "ANY"} == {"/console", "/console/{proxy+}"}
    assert {method for method, _ in by_path} == {"ANY", "GET"}
    assert not any("RequestValidatorId" in m or "RequestModels" in m for m in methods)


def test_tag_api_environment_carries_the_api_limits_from_the_config(every):
    from autotag.api.settings import load_api_settings

    for name in FunctionName:
        variables = _function(every, name)["Properties"]["Environment"]["Variables"]
        env = {key: render(value) for key, value in variables.items()}
        if name is not FunctionName.TAG_API:
            assert not {"API_MAX_IMAGE_CHARS", "UPLOAD_PREFIX"} & set(env), name
            continue
        assert env["API_MAX_IMAGE_CHARS"] == str(every.config.api.max_image_chars)
        assert env["UPLOAD_PREFIX"] == every.config.api.upload_prefix
        settings = load_api_settings(env)
        assert settings.max_image_chars == every.config.api.max_image_chars
        assert settings.upload_prefix == every.config.api.upload_prefix


def test_changed_api_limits_reach_the_function(tmp_path, layer_dir):
    from tests.infra.conftest import synthesize

    data = load_deployment_config(EXAMPLE_CONFIG).model_dump(mode="json")
    data["api"].update(max_image_chars=1_000_000, upload_prefix="photos/incoming/")
    synth = synthesize(DeploymentConfig.model_validate(data), tmp_path, layer_dir)
    env = _function(synth, FunctionName.TAG_API)["Properties"]["Environment"]["Variables"]
    assert (env["API_MAX_IMAGE_CHARS"], env["UPLOAD_PREFIX"]) == ("1000000", "photos/incoming/")
    found = role_statements(synth.raw, _role_id(synth, FunctionName.TAG_API))
    [statement] = [s for s in found if "s3:PutObject" in as_list(s["Action"])]
    assert [r["Fn::Join"][1][-1] for r in as_list(statement["Resource"])] == ["/photos/incoming/*"]
    assert synth.nag_violations() == []


GATEWAY_TYPES = {
    "INVALID_API_KEY": (403, "invalid_api_key"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "forbidden"),
    "THROTTLED": (429, "throttled"),
    "QUOTA_EXCEEDED": (429, "quota_exceeded"),
    "BAD_REQUEST_BODY": (400, "invalid_request"),
    "BAD_REQUEST_PARAMETERS": (400, "invalid_request"),
    "REQUEST_TOO_LARGE": (413, "payload_too_large"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "unsupported_media_type"),
    "INTEGRATION_TIMEOUT": (504, "deadline"),
    "DEFAULT_4XX": (None, "request_refused"),
    "DEFAULT_5XX": (None, "internal_error"),
}


def _gateway_responses(synth) -> dict[str, dict]:
    found = {}
    for resource in synth.resources_of("AWS::ApiGateway::GatewayResponse").values():
        props = resource["Properties"]
        assert refs(props["RestApiId"]) == {synth.logical_id(synth.stack.api.api)}
        found[props["ResponseType"]] = props
    return found


def _render_template(template: str, message: str = "Forbidden") -> dict:
    """What API Gateway sends: the $context references substituted (messageString is quoted)."""
    assert "#" not in template  # no VTL directives
    text = template.replace("$context.error.messageString", json.dumps(message))
    text = text.replace("$context.requestId", "c0ffee00-1234-5678-9abc-def012345678")
    assert "$" not in text, text
    return json.loads(text)


def test_api_gateway_errors_answer_in_the_api_error_shape(every):
    from autotag.api.models import ErrorResponse

    responses = _gateway_responses(every)
    assert set(responses) == set(GATEWAY_TYPES)
    for response_type, (status, code) in GATEWAY_TYPES.items():
        props = responses[response_type]
        # Leaving the defaults' status unset keeps every other 4XX / 5XX status as it is.
        assert props.get("StatusCode") == (None if status is None else str(status)), response_type
        assert set(props["ResponseTemplates"]) == {"application/json"}
        body = _render_template(props["ResponseTemplates"]["application/json"])
        assert set(body) == {"code", "message", "request_id"}
        assert body["code"] == code
        assert body["request_id"] == "c0ffee00-1234-5678-9abc-def012345678"
        assert body["message"]
        ErrorResponse.model_validate(body)  # the schema the OpenAPI document gives errors
        headers = props["ResponseParameters"]
        assert headers["gatewayresponse.header.Content-Type"] == "'application/json'"
    throttled = responses["THROTTLED"]["ResponseParameters"]
    assert throttled["gatewayresponse.header.Retry-After"] == "'1'"
    # The defaults pass API Gateway's own message through.
    default = _render_template(responses["DEFAULT_4XX"]["ResponseTemplates"]["application/json"], 'a "b"')
    assert default["message"] == 'a "b"'


def test_every_gateway_error_code_is_documented():
    text = (REPO_ROOT / "docs" / "api.md").read_text()
    table = text[text.index("### Errors") :]
    for response_type, (status, code) in GATEWAY_TYPES.items():
        [row] = [line for line in table.splitlines() if f"`{response_type}`" in line]
        assert f"`{code}`" in row, row
        shown = str(status) if status else response_type[-3:]
        assert row.startswith(f"| {shown} |"), row


def test_gateway_errors_carry_cors_only_for_a_single_origin(tmp_path, layer_dir, model_layer_dir):
    from tests.infra.conftest import synthesize

    data = load_deployment_config(DEFAULT_CONFIG).model_dump(mode="json")
    data["api"]["cors_allow_origins"] = ["https://app.example.com"]
    synth = synthesize(DeploymentConfig.model_validate(data), tmp_path, layer_dir, model_dir=model_layer_dir)
    for props in _gateway_responses(synth).values():
        origin = props["ResponseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"]
        assert origin == "'https://app.example.com'"


def test_usage_plan_and_stage_throttle_and_log(example):
    api = example.config.api
    example.template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {"RateLimit": api.rate_limit, "BurstLimit": api.burst_limit},
            "Quota": {"Limit": api.quota_limit, "Period": api.quota_period},
        },
    )
    example.template.has_resource_properties("AWS::ApiGateway::UsagePlanKey", {"KeyType": "API_KEY"})
    [stage] = example.resources_of("AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert "DestinationArn" in props["AccessLogSetting"]
    assert props["TracingEnabled"] is True
    [settings] = props["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == api.stage_rate_limit
    assert settings["ThrottlingBurstLimit"] == api.stage_burst_limit
    assert settings["DataTraceEnabled"] is False


# --- Bus -----------------------------------------------------------------------------------------


def test_tag_image_requested_rule_targets_on_event_with_dlq_and_retries(example):
    bus_id = example.logical_id(example.stack.bus.bus)
    rules = [r["Properties"] for r in example.resources_of("AWS::Events::Rule").values()]
    [rule] = [r for r in rules if r.get("EventBusName") and bus_id in refs(r["EventBusName"])]
    assert rule["EventPattern"] == {"source": [EVENT_SOURCE], "detail-type": [TAG_IMAGE_REQUESTED]}
    [target] = rule["Targets"]
    assert example.logical_id(example.stack.functions.on_event) in refs(target["Arn"])
    assert refs(target["DeadLetterConfig"]["Arn"]) == {example.logical_id(example.stack.queues.event_dlq)}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 24 * 3600}
    example.template.has_resource_properties("AWS::Events::Archive", {"RetentionDays": 30})


def test_eventbridge_mode_routes_object_created_to_on_event(imported):
    assert imported.resources_of("Custom::S3BucketNotifications") == {}
    rules = [r["Properties"] for r in imported.resources_of("AWS::Events::Rule").values()]
    [rule] = [r for r in rules if "EventBusName" not in r]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"]["name"] == ["team-photos"]
    # By prefix only: EventBridge's wildcard is case-sensitive too; on_event filters the suffixes.
    assert pattern["detail"]["object"]["key"] == [{"wildcard": "photos/*"}, {"wildcard": "uploads/*"}]
    [target] = rule["Targets"]
    assert imported.logical_id(imported.stack.functions.on_event) in refs(target["Arn"])
    assert refs(target["DeadLetterConfig"]["Arn"]) == {imported.logical_id(imported.stack.queues.event_dlq)}


# --- Monitoring ----------------------------------------------------------------------------------


@pytest.mark.parametrize("queue", ["tag_dlq", "event_dlq"])
def test_dlq_depth_alarms_on_the_first_message(example, queue):
    queue_id = example.logical_id(getattr(example.stack.queues, queue))
    alarms = [a["Properties"] for a in example.resources_of("AWS::CloudWatch::Alarm").values()]
    [alarm] = [
        a
        for a in alarms
        if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and any(queue_id in refs(d["Value"]) for d in a["Dimensions"])
    ]
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert refs(alarm["AlarmActions"]) == {example.logical_id(example.stack.monitoring.topic)}


def test_function_error_throttle_and_provider_failure_alarms(example):
    alarms = [a["Properties"] for a in example.resources_of("AWS::CloudWatch::Alarm").values()]
    for name in FunctionName:
        function_id = example.logical_id(example.stack.functions.by_name[name])
        metrics = {
            a["MetricName"]
            for a in alarms
            if "Dimensions" in a and any(function_id in refs(d["Value"]) for d in a["Dimensions"])
        }
        assert {"Errors", "Throttles"} <= metrics, name
    expressions = [m["Expression"] for a in alarms for m in a.get("Metrics", []) if "Expression" in m]
    assert f'SELECT SUM({PROVIDER_FAILURE_METRIC}) FROM "{METRICS_NAMESPACE}"' in expressions
    assert example.resources_of("AWS::CloudWatch::Dashboard")


def test_the_feed_index_is_declared_and_only_the_api_may_query_it(example):
    tables = example.resources_of("AWS::DynamoDB::Table").values()
    [table] = [t for t in tables if t["Properties"].get("GlobalSecondaryIndexes")]
    [index] = table["Properties"]["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "feed"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["feed_pk", "feed_sk"]
    assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["summary"]}
    assert "index/*" not in json.dumps(example.raw)
    for name in FunctionName:
        granted = json.dumps(role_statements(example.raw, _role_id(example, name)))
        assert ("/index/feed" in granted) is (name is FunctionName.TAG_API), name
