"""S3 Batch Operations tasks of a backfill: the domain of the ``on_batch`` function.

A bucket-scale backfill (``autotag backfill --engine batch-operations``) is an S3 Batch Operations
job whose ``LambdaInvoke`` operation calls ``on_batch`` once per object with the documented
invocation schema 2.0 (``invocationSchemaVersion``, ``invocationId``, ``job.id``,
``job.userArguments``, ``tasks[].{taskId, s3Key, s3VersionId, s3Bucket}``; 1.0's ``s3BucketArn`` is
accepted too). Keys arrive URL-encoded and are decoded with ``unquote_plus`` (as S3 event keys).

Each task takes exactly the one-machine backfill's decisions (``autotag backfill``; both use
:func:`autotag.store.base.already_tagged` and :func:`autotag.notifications.notification_body`): a
key the filters exclude is not tagged; an object whose stored record is for its current ETag is
skipped unless the job is forced; anything else is **enqueued on the tag queue** as the same S3
notification the one-machine backfill sends, so it takes the upload path (filters, de-duplication,
retries, DLQ) and the provider's rate limit stays governed in one place: the tag queue's event
source concurrency (see docs/scale.md for why the function does not tag directly).

The answer is the documented response: ``invocationSchemaVersion`` and ``invocationId`` echoed,
``treatMissingKeysAs`` and one result per task whose ``resultCode`` follows our error taxonomy
(:mod:`autotag.errors`): retryable errors are ``TemporaryFailure`` (Batch Operations retries the
task), every other error ``PermanentFailure``; ``resultString`` says what happened or why not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autotag.config import ObjectFilters, get_config
from autotag.errors import (
    AutotagError,
    BadInputError,
    NotFoundError,
    ThrottledError,
    TransientError,
    is_retryable,
)
from autotag.image import S3Location
from autotag.notifications import REPLAY_ATTRIBUTE, notification_body
from autotag.objects import ObjectStorage
from autotag.settings import load_from_environment
from autotag.store.base import ImageStore, already_tagged

INVOCATION_SCHEMA_VERSION = "2.0"
"""The schema the job asks for (UserArguments need it)."""
SUPPORTED_SCHEMA_VERSIONS = ("1.0", "2.0")
MAX_RESULT_STRING_CHARS = 1000
BACKFILL_ORIGIN = "backfill"
"""``origin`` message attribute of what a backfill enqueues (both engines)."""

# UserArguments the CLI sets (strings: the API's map is string to string).
ARGUMENT_FORCE = "force"
ARGUMENT_REPLAY_ID = "replayId"
ARGUMENT_PREFIX = "prefix"
"""Keys outside the backfill's prefix (an inventory manifest lists the whole bucket) are not tagged."""


class ResultCode(StrEnum):
    SUCCEEDED = "Succeeded"
    TEMPORARY_FAILURE = "TemporaryFailure"
    PERMANENT_FAILURE = "PermanentFailure"


TREAT_MISSING_KEYS_AS = ResultCode.PERMANENT_FAILURE
"""A task the response has no result for failed: never count an unanswered task as done."""


# --- The documented invocation and response ------------------------------------------------------


class BatchTask(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    task_id: str = Field(alias="taskId", min_length=1)
    s3_key: str = Field(alias="s3Key", min_length=1)
    s3_version_id: str | None = Field(default=None, alias="s3VersionId")
    s3_bucket: str | None = Field(default=None, alias="s3Bucket")
    s3_bucket_arn: str | None = Field(default=None, alias="s3BucketArn")

    @property
    def bucket(self) -> str:
        if self.s3_bucket:
            return self.s3_bucket
        if self.s3_bucket_arn:
            return self.s3_bucket_arn.split(":::")[-1]
        raise BadInputError(f"task {self.task_id} names no bucket (s3Bucket or s3BucketArn)")

    @property
    def key(self) -> str:
        return unquote_plus(self.s3_key)


class BatchJob(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    user_arguments: dict[str, str] | None = Field(default=None, alias="userArguments")


class BatchInvocation(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    invocation_schema_version: str = Field(alias="invocationSchemaVersion")
    invocation_id: str = Field(alias="invocationId")
    job: BatchJob
    tasks: tuple[BatchTask, ...]


class TaskResult(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    task_id: str = Field(alias="taskId")
    result_code: ResultCode = Field(alias="resultCode")
    result_string: str = Field(alias="resultString")


class BatchResponse(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    invocation_schema_version: str = Field(alias="invocationSchemaVersion")
    treat_missing_keys_as: ResultCode = Field(default=TREAT_MISSING_KEYS_AS, alias="treatMissingKeysAs")
    invocation_id: str = Field(alias="invocationId")
    results: tuple[TaskResult, ...]

    def as_payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class JobArguments(BaseModel):
    """The job's UserArguments, as the CLI sets them."""

    model_config = ConfigDict(frozen=True)

    force: bool = False
    replay_id: str | None = None
    prefix: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, str] | None) -> JobArguments:
        raw = raw or {}
        force = str(raw.get(ARGUMENT_FORCE, "false")).lower()
        if force not in ("true", "false"):
            raise BadInputError(f"user argument {ARGUMENT_FORCE!r} must be 'true' or 'false', not {force!r}")
        return cls(
            force=force == "true",
            replay_id=raw.get(ARGUMENT_REPLAY_ID) or None,
            prefix=raw.get(ARGUMENT_PREFIX) or "",
        )

    def user_arguments(self) -> dict[str, str]:
        arguments = {ARGUMENT_FORCE: "true" if self.force else "false"}
        if self.replay_id:
            arguments[ARGUMENT_REPLAY_ID] = self.replay_id
        if self.prefix:
            arguments[ARGUMENT_PREFIX] = self.prefix
        return arguments


# --- Errors of the AWS calls, in our taxonomy ---------------------------------------------------

_THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "TooManyRequestsException",
        "RequestThrottledException",
        "AWS.SimpleQueueService.RequestThrottled",
    }
)
_TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable", "InternalFailure"}
)


def aws_error(error: BaseException, what: str) -> AutotagError:
    """One of our errors for a failed AWS call: throttling and 5xx/timeouts are retryable, the rest
    (access denied, missing queue, ...) will fail again and are terminal."""
    if isinstance(error, AutotagError):
        return error
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = f"{what}: {code or status} {details.get('Message', '')}".strip()
        if code in _THROTTLING_CODES or status == 429:
            return ThrottledError(message)
        if code in _TRANSIENT_CODES or status >= 500:
            return TransientError(message)
        return AutotagError(message, code="aws_refused")
    if isinstance(error, (ConnectTimeoutError, ReadTimeoutError)):
        return TransientError(f"{what}: timed out")
    if isinstance(error, BotoCoreError):
        return TransientError(f"{what}: {type(error).__name__}")
    return AutotagError(f"{what}: unexpected {type(error).__name__}")


def result_code_for(error: AutotagError) -> ResultCode:
    """The one mapping of our error classes to Batch Operations result codes."""
    return ResultCode.TEMPORARY_FAILURE if is_retryable(error) else ResultCode.PERMANENT_FAILURE


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_RESULT_STRING_CHARS else flat[: MAX_RESULT_STRING_CHARS - 1] + "…"


# --- Adapters -----------------------------------------------------------------------------------


class TagQueue(Protocol):
    def send(self, body: str, attributes: dict[str, dict[str, str]]) -> str:
        """Enqueue one message; returns its message id."""
        ...


class SqsTagQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, body: str, attributes: dict[str, dict[str, str]]) -> str:
        response = self._client.send_message(
            QueueUrl=self._url, MessageBody=body, MessageAttributes=attributes
        )
        return str(response["MessageId"])


def message_attributes(arguments: JobArguments, job_id: str) -> dict[str, dict[str, str]]:
    """What a backfill message carries: its origin and, when forced, the replay id that makes the
    upload path tag again an object whose earlier outcome it still remembers."""
    attributes = {"origin": {"DataType": "String", "StringValue": BACKFILL_ORIGIN}}
    if arguments.force:
        replay = arguments.replay_id or job_id
        attributes[REPLAY_ATTRIBUTE] = {"DataType": "String", "StringValue": replay}
    return attributes


# --- The processor -----------------------------------------------------------------------------


@dataclass
class TaskOutcome:
    """What one task did, for metrics: enqueued / skipped / filtered / failed."""

    kind: str
    result: TaskResult


@dataclass(kw_only=True, eq=False)
class BatchTaskProcessor:
    """Runs the tasks of one on_batch invocation: each object checked, then enqueued for tagging."""

    filters: ObjectFilters
    store: ImageStore
    objects: ObjectStorage
    queue: TagQueue
    images_bucket: str
    region: str
    on_outcome: Callable[[TaskOutcome], None] | None = None

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """One invocation → the documented response (never raises for a task's failure)."""
        try:
            invocation = BatchInvocation.model_validate(event)
        except ValidationError as exc:
            return self._unparsable(event, exc)
        version = invocation.invocation_schema_version
        try:
            if version not in SUPPORTED_SCHEMA_VERSIONS:
                raise BadInputError(
                    f"invocation schema {version!r} is not supported (expected {INVOCATION_SCHEMA_VERSION})"
                )
            arguments = JobArguments.parse(invocation.job.user_arguments)
        except BadInputError as error:
            results = tuple(self._failed(task.task_id, error).result for task in invocation.tasks)
        else:
            results = tuple(
                self._task(task, invocation.job.id, arguments).result for task in invocation.tasks
            )
        return BatchResponse(
            invocation_schema_version=version, invocation_id=invocation.invocation_id, results=results
        ).as_payload()

    def _unparsable(self, event: Mapping[str, Any], exc: ValidationError) -> dict[str, Any]:
        """Still answer each task we can name, so the report says why."""
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
        error = BadInputError(f"invocation does not follow the schema ({where})")
        raw_tasks = event.get("tasks") if isinstance(event, Mapping) else None
        task_ids = [str(t["taskId"]) for t in raw_tasks or [] if isinstance(t, Mapping) and t.get("taskId")]
        if not task_ids or not isinstance(event.get("invocationId"), str):
            raise error
        return BatchResponse(
            invocation_schema_version=str(event.get("invocationSchemaVersion") or INVOCATION_SCHEMA_VERSION),
            invocation_id=event["invocationId"],
            results=tuple(self._failed(task_id, error).result for task_id in task_ids),
        ).as_payload()

    def _task(self, task: BatchTask, job_id: str, arguments: JobArguments) -> TaskOutcome:
        try:
            outcome = self._process(task, job_id, arguments)
        except Exception as exc:
            return self._failed(task.task_id, aws_error(exc, "task"))
        self._report(outcome)
        return outcome

    def _process(self, task: BatchTask, job_id: str, arguments: JobArguments) -> TaskOutcome:
        bucket, key = task.bucket, task.key
        uri = f"s3://{bucket}/{key}"
        if bucket != self.images_bucket:
            raise BadInputError(f"{uri}: bucket {bucket} is not the watched bucket {self.images_bucket}")
        if not key.startswith(arguments.prefix):
            return self._succeeded(
                task, "filtered", f"not tagged: {uri} is outside the prefix {arguments.prefix}"
            )
        if not self.filters.accepts(key):
            return self._succeeded(task, "filtered", f"not tagged: {uri} is excluded by the filters")
        location = S3Location(bucket=bucket, key=key, version_id=task.s3_version_id)
        try:
            info = self.objects.head(location)
        except Exception as exc:
            raise aws_error(exc, f"reading {uri}") from None
        if info is None:
            version = f" version {task.s3_version_id}" if task.s3_version_id else ""
            raise NotFoundError(f"{uri}{version} no longer exists")
        if not arguments.force:
            try:
                status = already_tagged(self.store, bucket, key, info.etag)
            except Exception as exc:
                raise aws_error(exc, f"reading the record of {uri}") from None
            if status is not None:
                return self._succeeded(
                    task,
                    "skipped",
                    f"skipped: already processed at ETag {info.etag} (status {status}); force to tag again",
                )
        body = notification_body(
            bucket, key, size=info.size, etag=info.etag, region=self.region, version_id=task.s3_version_id
        )
        try:
            message_id = self.queue.send(body, message_attributes(arguments, job_id))
        except Exception as exc:
            raise aws_error(exc, f"enqueuing {uri}") from None
        forced = " (forced)" if arguments.force else ""
        return self._succeeded(task, "enqueued", f"enqueued for tagging{forced}: message {message_id}")

    def _succeeded(self, task: BatchTask, kind: str, text: str) -> TaskOutcome:
        return TaskOutcome(
            kind,
            TaskResult(task_id=task.task_id, result_code=ResultCode.SUCCEEDED, result_string=_clip(text)),
        )

    def _failed(self, task_id: str, error: AutotagError) -> TaskOutcome:
        code = result_code_for(error)
        outcome = TaskOutcome(
            "retry" if code is ResultCode.TEMPORARY_FAILURE else "failed",
            TaskResult(task_id=task_id, result_code=code, result_string=_clip(f"{error.code}: {error}")),
        )
        self._report(outcome)
        return outcome

    def _report(self, outcome: TaskOutcome) -> None:
        if self.on_outcome is not None:
            self.on_outcome(outcome)


# --- Wiring (the function's environment, read once) ---------------------------------------------


class BatchSettings(BaseModel):
    """The on_batch function's environment (the CDK construct and the local stack set exactly these)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    table_name: str = Field(alias="TABLE_NAME")
    tag_queue_url: str = Field(alias="TAG_QUEUE_URL")
    images_bucket: str = Field(alias="IMAGES_BUCKET")
    region: str = Field(default="us-east-1", alias="AWS_REGION")
    aws_endpoint_url: str | None = Field(default=None, alias="AWS_ENDPOINT_URL")


def load_batch_settings(environ: Mapping[str, str] | None = None) -> BatchSettings:
    return load_from_environment(BatchSettings, environ)


@lru_cache(maxsize=1)
def get_batch_processor() -> BatchTaskProcessor:
    """Built on first use from the function's settings and config, then reused while warm."""
    import boto3
    from botocore.config import Config

    from autotag.objects import S3ObjectStorage
    from autotag.store.dynamodb import DynamoImageStore

    settings, config = load_batch_settings(), get_config()
    session = boto3.session.Session()
    retries = Config(retries={"mode": "standard", "max_attempts": 3})

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=settings.aws_endpoint_url, config=retries)

    return BatchTaskProcessor(
        filters=config.filters,
        store=DynamoImageStore(client("dynamodb"), settings.table_name),
        objects=S3ObjectStorage(client("s3")),
        queue=SqsTagQueue(client("sqs"), settings.tag_queue_url),
        images_bucket=settings.images_bucket,
        region=settings.region,
    )
