"""The CreateJob request is valid for the real S3 Control API (botocore's s3control service model),
and the job views the CLI prints read DescribeJob's documented shape."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import boto3
import pytest
from autotag.batch_tasks import ARGUMENT_PREFIX, JobArguments
from autotag.errors import BadInputError
from autotag.local.s3control_server import _Wire
from autotag.ops.batch_jobs import JobView
from autotag.ops.batch_operations import (
    BatchResources,
    ExistingManifest,
    ObjectSelection,
    create_job_request,
)
from botocore.exceptions import ParamValidationError
from botocore.serialize import create_serializer
from botocore.session import get_session
from botocore.stub import Stubber
from botocore.validate import ParamValidator, validate_parameters

RESOURCES = BatchResources(
    function_arn="arn:aws:lambda:eu-west-1:111122223333:function:Autotag-BatchOperationsOnBatch1A2B-x9Y8z7",
    role_arn="arn:aws:iam::111122223333:role/Autotag-BatchOperationsJobRole-AbC",
    reports_bucket="autotag-reports-abc",
    report_prefix="batch-operations/",
    priority=10,
)
# LambdaInvokeOperation.FunctionArn's documented pattern (API reference), which botocore does not check.
FUNCTION_ARN_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?"
    r"(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)
MODEL = get_session().get_service_model("s3control")


def _validate(request: dict) -> None:
    report = ParamValidator().validate(request, MODEL.operation_model("CreateJob").input_shape)
    assert not report.has_errors(), report.generate_report()


def test_the_validation_catches_what_the_api_would_refuse():
    request = _generated()
    request["Operation"]["LambdaInvoke"]["UserArguments"]["force"] = True  # not a string
    request["ManifestGenerator"]["S3JobManifestGenerator"]["Filter"]["MatchAnySuffix"] = [".jpg"]  # misplaced
    with pytest.raises(ParamValidationError) as caught:
        validate_parameters(request, MODEL.operation_model("CreateJob").input_shape)
    assert "UserArguments.force" in str(caught.value)
    assert "MatchAnySuffix" in str(caught.value)


def _generated(**selection) -> dict:
    return create_job_request(
        resources=RESOURCES,
        bucket="team-photos",
        selection=ObjectSelection(prefix="archive/2019/", **selection),
        arguments=JobArguments(force=True, replay_id="r-1"),
        token="token-1",
    )


def test_generated_manifest_request_is_valid_for_the_api():
    request = _generated(
        created_after=datetime(2019, 1, 1, tzinfo=UTC),
        created_before=datetime(2020, 1, 1, tzinfo=UTC),
        larger_than_bytes=1024,
        smaller_than_bytes=50_000_000,
    )
    _validate(request)
    generator = request["ManifestGenerator"]["S3JobManifestGenerator"]
    assert generator["SourceBucket"] == "arn:aws:s3:::team-photos"
    assert generator["Filter"] == {
        "KeyNameConstraint": {"MatchAnyPrefix": ["archive/2019/"]},
        "CreatedAfter": datetime(2019, 1, 1, tzinfo=UTC),
        "CreatedBefore": datetime(2020, 1, 1, tzinfo=UTC),
        "ObjectSizeGreaterThanBytes": 1024,
        "ObjectSizeLessThanBytes": 50_000_000,
    }
    assert generator["ManifestOutputLocation"]["Bucket"] == "arn:aws:s3:::autotag-reports-abc"
    assert (
        generator["ManifestOutputLocation"]["ManifestFormat"]
        in MODEL.shape_for("GeneratedManifestFormat").enum
    )
    assert "Manifest" not in request
    assert request["ConfirmationRequired"] is True
    assert request["AccountId"] == "111122223333"


def test_lambda_invoke_uses_schema_2_0_and_user_arguments_within_the_limits():
    request = _generated()
    invoke = request["Operation"]["LambdaInvoke"]
    assert invoke["InvocationSchemaVersion"] == "2.0"
    assert invoke["UserArguments"] == {"force": "true", "replayId": "r-1", ARGUMENT_PREFIX: "archive/2019/"}
    # Documented limits: at most 10 entries, keys 1..64 characters, values at most 1,024.
    assert len(invoke["UserArguments"]) <= 10
    assert all(1 <= len(k) <= 64 and len(v) <= 1024 for k, v in invoke["UserArguments"].items())
    assert re.fullmatch(FUNCTION_ARN_PATTERN, invoke["FunctionArn"])


def test_report_goes_to_the_reports_bucket_prefix_for_all_tasks():
    report = _generated()["Report"]
    assert report == {
        "Bucket": "arn:aws:s3:::autotag-reports-abc",
        "Format": "Report_CSV_20180820",
        "Enabled": True,
        "Prefix": "batch-operations",
        "ReportScope": "AllTasks",
    }
    assert report["Format"] in MODEL.shape_for("JobReportFormat").enum
    assert report["ReportScope"] in MODEL.shape_for("JobReportScope").enum


@pytest.mark.parametrize(
    ("key", "spec"),
    [
        (
            "inventory/team-photos/all/2026-11-30T01-00Z/manifest.json",
            {"Format": "S3InventoryReport_CSV_20161130"},
        ),
        ("lists/backfill.csv", {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]}),
    ],
)
def test_existing_manifest_request_is_valid_for_the_api(key, spec):
    manifest = ExistingManifest(bucket="inventory-reports", key=key, etag="0123abcd")
    request = create_job_request(
        resources=RESOURCES,
        bucket="team-photos",
        selection=ObjectSelection(),
        arguments=JobArguments(),
        manifest=manifest,
    )
    _validate(request)
    assert request["Manifest"] == {
        "Spec": spec,
        "Location": {"ObjectArn": f"arn:aws:s3:::inventory-reports/{key}", "ETag": "0123abcd"},
    }
    assert "ManifestGenerator" not in request
    assert request["Operation"]["LambdaInvoke"]["UserArguments"] == {"force": "false"}


def test_a_real_s3control_client_accepts_the_request():
    client = boto3.client("s3control", region_name="eu-west-1")
    request = _generated(created_after=datetime(2019, 1, 1, tzinfo=UTC))
    with Stubber(client) as stubber:
        stubber.add_response("create_job", {"JobId": "job-1"}, expected_params=request)
        assert client.create_job(**request)["JobId"] == "job-1"


def test_the_local_job_api_reads_the_request_as_botocore_writes_it():
    request = _generated(created_after=datetime(2019, 1, 1, tzinfo=UTC), larger_than_bytes=0)
    wire = create_serializer("rest-xml").serialize_to_request(request, MODEL.operation_model("CreateJob"))
    parsed = _Wire().parse("CreateJob", wire["body"], wire["headers"])
    assert parsed == request


@pytest.mark.parametrize(
    "selection",
    [
        {
            "created_after": datetime(2020, 1, 1, tzinfo=UTC),
            "created_before": datetime(2019, 1, 1, tzinfo=UTC),
        },
        {"larger_than_bytes": 100, "smaller_than_bytes": 101},
    ],
)
def test_empty_selections_are_refused(selection):
    with pytest.raises(ValueError):
        ObjectSelection(**selection)


def test_account_id_comes_from_the_role_arn():
    assert RESOURCES.account_id == "111122223333"
    broken = BatchResources("f", "not-an-arn", "b", "p/", 1)
    with pytest.raises(Exception, match="account id"):
        _ = broken.account_id


def test_find_manifest_refuses_a_non_s3_url():
    from autotag.ops.batch_operations import find_manifest

    with pytest.raises(BadInputError):
        find_manifest(None, "https://example.com/manifest.json", "aws")


def _describe(**progress) -> dict:
    client = boto3.client("s3control", region_name="eu-west-1")
    job = {
        "JobId": "job-1",
        "Status": "Active",
        "Priority": 10,
        "ProgressSummary": progress,
        "Report": {"Bucket": "arn:aws:s3:::reports", "Enabled": True, "Prefix": "batch-operations"},
    }
    with Stubber(client) as stubber:  # the stubber checks the response against the model too
        stubber.add_response("describe_job", {"Job": job})
        return client.describe_job(AccountId="111122223333", JobId="job-1")["Job"]


def test_job_view_shows_counts_rate_eta_and_a_bar():
    job = _describe(
        TotalNumberOfTasks=1000,
        NumberOfTasksSucceeded=240,
        NumberOfTasksFailed=10,
        Timers={"ElapsedTimeInActiveSeconds": 50},
    )
    view = JobView.from_response(job)
    assert (view.total, view.succeeded, view.failed, view.done) == (1000, 240, 10, 250)
    assert view.rate == pytest.approx(5.0)
    assert view.eta_seconds == pytest.approx(150.0)
    text = view.describe()
    assert "succeeded 240, failed 10, total 1000" in text
    assert "[#######....................." in text
    assert "250/1000" in text
    assert "5.0/s" in text
    assert "ETA 2:30" in text
    assert "report: s3://reports/batch-operations/job-job-1/manifest.json" in text


def test_job_view_before_the_count_and_in_its_first_second():
    assert JobView.from_response(_describe()).eta_seconds is None
    early = JobView.from_response(
        _describe(TotalNumberOfTasks=10, NumberOfTasksSucceeded=3, NumberOfTasksFailed=0, Timers={})
    )
    assert early.rate == pytest.approx(3.0)  # under a second counts as one
