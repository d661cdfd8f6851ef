"""Reading S3 objects and their tag sets, behind a small interface (boto3 in production, a fake in
unit tests)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError

from autotag.errors import (
    ImageTooLargeError,
    InvalidS3ReferenceError,
    ObjectGoneError,
    TagWriteRefusedError,
    TransientError,
)
from autotag.image import S3Location

_GONE_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchBucket", "404", "NotFound"})
_BAD_REFERENCE_CODES = frozenset(
    {
        "InvalidArgument",  # e.g. "Invalid version id specified"
        "InvalidVersionId",
        "InvalidBucketName",
        "KeyTooLongError",
        "InvalidURI",
        "400",  # a HEAD has no error body: S3's 400 to a HEAD is only its status
    }
)
"""S3's answers that refuse the reference itself; the same reference is refused again on retry."""
_TAGGING_REFUSED_CODES = frozenset({"AccessDenied", "InvalidTag", "MethodNotAllowed"})
"""S3's answers that refuse a tag set read or write (:class:`TagWriteRefusedError`)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD or a GET's headers tell: enough to refuse an object before downloading it."""

    size: int
    content_type: str | None
    etag: str | None
    version_id: str | None
    tag_count: int | None = None
    """How many tags the object has, from a GET's ``x-amz-tagging-count`` header (S3 leaves it out
    when there are none: 0); None when not known (a HEAD does not say)."""


class ObjectStorage(Protocol):
    def head(self, location: S3Location) -> ObjectInfo | None:
        """None when the object (version) is gone; raises InvalidS3ReferenceError when S3 refuses
        the reference itself."""
        ...

    def read(self, location: S3Location, *, etag: str | None, max_bytes: int) -> bytes:
        """The object's bytes; raises ObjectGoneError, InvalidS3ReferenceError, or TransientError
        if it changed since `etag`."""
        ...

    def open(self, location: S3Location) -> OpenedObject | None:
        """One GET: the object's metadata at once, its bytes when :meth:`OpenedObject.read` asks
        (so a too-large or non-image object is refused before its body is read). None when the
        object (version) is gone; raises InvalidS3ReferenceError when S3 refuses the reference."""
        ...

    def get_tags(self, location: S3Location) -> dict[str, str]:
        """The object's tag set; raises ObjectGoneError, or TagWriteRefusedError when S3 refuses."""
        ...

    def put_tags(self, location: S3Location, tags: Mapping[str, str]) -> None:
        """Replace the object's tag set; raises ObjectGoneError, or TagWriteRefusedError when S3
        refuses."""
        ...


class OpenedObject:
    """An object as one GET returned it: :attr:`info` from the response headers, the body read on
    demand (and closed unread otherwise)."""

    def __init__(self, info: ObjectInfo, body: Any, *, on_read: Any = None) -> None:
        self.info = info
        self._body = body
        self._on_read = on_read

    def read(self, max_bytes: int) -> bytes:
        """The bytes; ImageTooLargeError past `max_bytes` (never reads more than one byte beyond)."""
        data: bytes = self._body.read(max_bytes + 1)
        if self._on_read is not None:
            self._on_read()
        if len(data) > max_bytes:
            raise ImageTooLargeError(f"object is larger than the limit of {max_bytes} bytes")
        return data

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> OpenedObject:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _info(response: Mapping[str, Any], size: int) -> ObjectInfo:
    """A GetObject response's headers. S3 sends ``x-amz-tagging-count`` (``TagCount``) only when the
    object has tags and the caller may read them (s3:GetObjectTagging, which the function's role has
    for the merge): its absence is 0 tags."""
    version = response.get("VersionId")
    return ObjectInfo(
        size=size,
        content_type=response.get("ContentType"),
        etag=normalize_etag(response.get("ETag")),
        version_id=None if version in (None, "null") else version,
        tag_count=int(response.get("TagCount", 0)),
    )


def normalize_etag(etag: str | None) -> str | None:
    """S3 quotes ETags in HTTP headers but not in event notifications."""
    return etag.strip('"') if etag else None


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _version(location: S3Location) -> dict[str, str]:
    return {"VersionId": location.version_id} if location.version_id else {}


def _refused_reference(error: ClientError, location: S3Location) -> InvalidS3ReferenceError | None:
    code = _code(error)
    if code not in _BAD_REFERENCE_CODES:
        return None
    version = f" version {location.version_id!r}" if location.version_id else ""
    return InvalidS3ReferenceError(f"S3 refused the reference {location.uri}{version} ({code})")


class S3ObjectStorage:
    """ObjectStorage over a boto3 S3 client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def head(self, location: S3Location) -> ObjectInfo | None:
        try:
            response = self._client.head_object(
                Bucket=location.bucket, Key=location.key, **_version(location)
            )
        except ClientError as error:
            if _code(error) in _GONE_CODES:
                return None
            refused = _refused_reference(error, location)
            if refused is not None:
                raise refused from None
            raise
        version = response.get("VersionId")
        return ObjectInfo(
            size=int(response.get("ContentLength", 0)),
            content_type=response.get("ContentType"),
            etag=normalize_etag(response.get("ETag")),
            version_id=None if version in (None, "null") else version,
        )

    def open(self, location: S3Location) -> OpenedObject | None:
        try:
            response = self._client.get_object(Bucket=location.bucket, Key=location.key, **_version(location))
        except ClientError as error:
            if _code(error) in _GONE_CODES:
                # A version id S3 cannot place may be refused (400) rather than missing: the HEAD
                # tells them apart (S3's 400 to it), on this rare path only.
                if not location.version_id or self.head(location) is None:
                    return None
                raise TransientError(f"{location.uri} could not be read; it exists") from None

            refused = _refused_reference(error, location)
            if refused is not None:
                raise refused from None
            raise
        return OpenedObject(_info(response, int(response.get("ContentLength", 0))), response["Body"])

    def read(self, location: S3Location, *, etag: str | None, max_bytes: int) -> bytes:
        extra: dict[str, str] = dict(_version(location))
        if etag and not location.version_id:
            # Unversioned: make sure we read the bytes the HEAD described, not a newer overwrite.
            extra["IfMatch"] = f'"{etag}"'
        try:
            response = self._client.get_object(Bucket=location.bucket, Key=location.key, **extra)
        except ClientError as error:
            code = _code(error)
            if code in _GONE_CODES:
                raise ObjectGoneError(location.uri) from None
            if code in ("PreconditionFailed", "412"):
                raise TransientError(f"{location.uri} changed while being read") from None
            refused = _refused_reference(error, location)
            if refused is not None:
                raise refused from None
            raise
        with response["Body"] as body:
            data: bytes = body.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ImageTooLargeError(f"object is larger than the limit of {max_bytes} bytes")
        return data

    def get_tags(self, location: S3Location) -> dict[str, str]:
        try:
            response = self._client.get_object_tagging(
                Bucket=location.bucket, Key=location.key, **_version(location)
            )
        except ClientError as error:
            raise _tagging_error(error, location) from None
        return {t["Key"]: t["Value"] for t in response.get("TagSet", [])}

    def put_tags(self, location: S3Location, tags: Mapping[str, str]) -> None:
        try:
            self._client.put_object_tagging(
                Bucket=location.bucket,
                Key=location.key,
                Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]},
                **_version(location),
            )
        except ClientError as error:
            raise _tagging_error(error, location) from None


def _tagging_error(error: ClientError, location: S3Location) -> Exception:
    """What a refused tag set read or write means to us; other errors stay as they are."""
    code = _code(error)
    if code in _GONE_CODES:
        return ObjectGoneError(location.uri)
    if code in _TAGGING_REFUSED_CODES:
        return TagWriteRefusedError(f"S3 refused the tag write: {code}", s3_code=code)
    return error
