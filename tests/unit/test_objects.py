"""S3 object access: how S3's answers become our outcomes (gone, refused reference, changed), over a
real boto3 client answered by botocore's Stubber (no network), and the in-memory fake's S3 rules."""

import io

import boto3
import pytest
from autotag.errors import (
    ImageTooLargeError,
    InvalidS3ReferenceError,
    ObjectGoneError,
    TagWriteRefusedError,
    TransientError,
)
from autotag.image import S3Location
from autotag.objects import S3ObjectStorage
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from tests.support.fakes import InMemoryObjectStorage

BUCKET = "photos"
VERSIONED = S3Location(BUCKET, "a/cat.jpg", "not-a-version")


@pytest.fixture
def s3():
    client = boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    with Stubber(client) as stubber:
        yield S3ObjectStorage(client), stubber
        stubber.assert_no_pending_responses()


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


# --- S3ObjectStorage ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("400", 400),  # S3's answer to a HEAD with a malformed version id: a status, no error body
        ("InvalidArgument", 400),
        ("KeyTooLongError", 400),
    ],
)
def test_head_refused_reference_is_a_typed_terminal_error(s3, code, status):
    storage, stubber = s3
    stubber.add_client_error("head_object", service_error_code=code, http_status_code=status)
    with pytest.raises(InvalidS3ReferenceError) as caught:
        storage.head(VERSIONED)
    error = caught.value
    assert error.code == "invalid_s3_reference"
    assert not error.retryable
    assert "s3://photos/a/cat.jpg" in error.message
    assert "'not-a-version'" in error.message
    assert error.__cause__ is None  # the botocore error stays out of what callers report


def test_get_refused_version_id_is_a_typed_terminal_error(s3):
    storage, stubber = s3
    stubber.add_client_error(
        "get_object",
        service_error_code="InvalidArgument",
        service_message="Invalid version id specified",
        http_status_code=400,
        expected_params={"Bucket": BUCKET, "Key": "a/cat.jpg", "VersionId": "not-a-version"},
    )
    with pytest.raises(InvalidS3ReferenceError) as caught:
        storage.read(VERSIONED, etag=None, max_bytes=100)
    assert caught.value.code == "invalid_s3_reference"


@pytest.mark.parametrize("code", ["NoSuchKey", "NoSuchVersion", "NoSuchBucket"])
def test_gone_objects(s3, code):
    storage, stubber = s3
    stubber.add_client_error("get_object", service_error_code=code, http_status_code=404)
    with pytest.raises(ObjectGoneError):
        storage.read(VERSIONED, etag=None, max_bytes=100)


@pytest.mark.parametrize("code", ["AccessDenied", "InvalidTag", "MethodNotAllowed"])
def test_a_refused_tag_write_is_a_typed_error(s3, code):
    storage, stubber = s3
    stubber.add_client_error("put_object_tagging", service_error_code=code, http_status_code=403)
    with pytest.raises(TagWriteRefusedError) as caught:
        storage.put_tags(VERSIONED, {"autotag:dog": "0.90"})
    assert caught.value.s3_code == code
    assert caught.value.message == f"S3 refused the tag write: {code}"
    assert caught.value.__cause__ is None


@pytest.mark.parametrize("operation", ["get_object_tagging", "put_object_tagging"])
def test_tagging_a_gone_object(s3, operation):
    storage, stubber = s3
    stubber.add_client_error(operation, service_error_code="NoSuchVersion", http_status_code=404)
    call = storage.get_tags if operation == "get_object_tagging" else lambda at: storage.put_tags(at, {})
    with pytest.raises(ObjectGoneError):
        call(VERSIONED)


def test_other_tagging_errors_are_not_translated(s3):
    storage, stubber = s3
    stubber.add_client_error("get_object_tagging", service_error_code="SlowDown", http_status_code=503)
    with pytest.raises(ClientError):
        storage.get_tags(VERSIONED)


def test_head_of_a_missing_object_is_none(s3):
    storage, stubber = s3
    stubber.add_client_error("head_object", service_error_code="404", http_status_code=404)
    assert storage.head(VERSIONED) is None


def test_overwrite_during_read_is_transient(s3):
    storage, stubber = s3
    stubber.add_client_error(
        "get_object",
        service_error_code="PreconditionFailed",
        http_status_code=412,
        expected_params={"Bucket": BUCKET, "Key": "k.jpg", "IfMatch": '"e1"'},
    )
    with pytest.raises(TransientError):
        storage.read(S3Location(BUCKET, "k.jpg"), etag="e1", max_bytes=100)


@pytest.mark.parametrize(("code", "status"), [("AccessDenied", 403), ("InternalError", 500)])
def test_other_errors_are_not_taken_for_a_bad_reference(s3, code, status):
    storage, stubber = s3
    stubber.add_client_error("get_object", service_error_code=code, http_status_code=status)
    with pytest.raises(ClientError):
        storage.read(VERSIONED, etag=None, max_bytes=100)


def test_head_and_read(s3):
    storage, stubber = s3
    stubber.add_response(
        "head_object",
        {"ContentLength": 3, "ContentType": "image/jpeg", "ETag": '"e1"', "VersionId": "null"},
    )
    stubber.add_response("get_object", {"Body": body(b"abc")})
    stubber.add_response("get_object", {"Body": body(b"abcdef")})
    info = storage.head(S3Location(BUCKET, "k.jpg"))
    assert (info.size, info.etag, info.version_id) == (3, "e1", None)
    assert storage.read(S3Location(BUCKET, "k.jpg"), etag="e1", max_bytes=3) == b"abc"
    with pytest.raises(ImageTooLargeError):
        storage.read(S3Location(BUCKET, "k.jpg"), etag="e1", max_bytes=3)


@pytest.mark.parametrize(("headers", "count"), [({"TagCount": 3}, 3), ({}, 0)])
def test_open_reports_the_tag_count_s3_sends(s3, headers, count):
    """S3 sends x-amz-tagging-count only when the object has tags: its absence is none."""
    storage, stubber = s3
    stubber.add_response(
        "get_object",
        {"Body": body(b"abc"), "ContentLength": 3, "ETag": '"e1"', "VersionId": "v1", **headers},
    )
    opened = storage.open(S3Location(BUCKET, "k.jpg"))
    assert opened is not None
    with opened:
        assert (opened.info.version_id, opened.info.tag_count) == ("v1", count)


# --- The in-memory fake follows the same rules -----------------------------------------------------


def test_fake_open_counts_the_tags_as_s3_does():
    objects = InMemoryObjectStorage()
    objects.add(BUCKET, "tagged.jpg", b"x", version_id="v1", tags={"owner": "me", "trip": "rome"})
    objects.add(BUCKET, "plain.jpg", b"x", version_id="v1")
    for key, count in (("tagged.jpg", 2), ("plain.jpg", 0)):
        opened = objects.open(S3Location(BUCKET, key))
        assert opened is not None
        assert opened.info.tag_count == count
    assert objects.head(S3Location(BUCKET, "tagged.jpg")).tag_count is None  # a HEAD does not say


def test_fake_refuses_a_version_id_for_an_unversioned_object():
    objects = InMemoryObjectStorage()
    objects.add(BUCKET, "plain.jpg", b"x", version_id=None)
    with pytest.raises(InvalidS3ReferenceError):
        objects.head(S3Location(BUCKET, "plain.jpg", "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"))
    with pytest.raises(InvalidS3ReferenceError):
        objects.read(S3Location(BUCKET, "plain.jpg", "0"), etag=None, max_bytes=10)
    # "null" is the version id S3 gives objects of unversioned buckets.
    assert objects.head(S3Location(BUCKET, "plain.jpg", "null")) is not None
    assert objects.head(S3Location(BUCKET, "plain.jpg")) is not None


def test_fake_unknown_version_of_a_versioned_object_is_gone():
    objects = InMemoryObjectStorage()
    objects.add(BUCKET, "v.jpg", b"x", version_id="v1")
    assert objects.head(S3Location(BUCKET, "v.jpg", "v2")) is None
    with pytest.raises(ObjectGoneError):
        objects.read(S3Location(BUCKET, "v.jpg", "v2"), etag=None, max_bytes=10)
