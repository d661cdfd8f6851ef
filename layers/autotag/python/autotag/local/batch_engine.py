"""The local Batch Operations job engine: each job's life as the documentation describes it (see
:mod:`autotag.local.batch_jobs`), its tasks run as ``LambdaInvoke`` calls of the local function."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from autotag.local.batch_jobs import (
    FAILURE_THRESHOLD_RATE,
    FAILURE_THRESHOLD_TASKS,
    TASK_ATTEMPTS,
    TERMINAL,
    Job,
    JobError,
    Task,
    encode_key,
)
from autotag.local.batch_manifests import job_tasks, write_report
from autotag.local.lambda_workers import Invocation

Invoker = Callable[[str, dict[str, Any]], Invocation]
"""(function ARN, event) → the invocation's outcome (the local Lambda runtime)."""


class LocalJobEngine:
    def __init__(self, *, s3: Any, invoke: Invoker, function_arns: set[str], concurrency: int = 4) -> None:
        self.s3 = s3
        self.invoke = invoke
        self.function_arns = function_arns
        self.concurrency = concurrency
        self.jobs: dict[str, Job] = {}
        self.tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # -- API

    def create(self, request: dict[str, Any]) -> str:
        if ("Manifest" in request) == ("ManifestGenerator" in request):
            raise JobError(400, "InvalidRequest", "specify exactly one of Manifest and ManifestGenerator")
        if "LambdaInvoke" not in request.get("Operation", {}):
            raise JobError(400, "InvalidRequest", "the local stack runs LambdaInvoke jobs only")
        lambda_invoke = request["Operation"]["LambdaInvoke"]
        version = lambda_invoke.get("InvocationSchemaVersion", "1.0")
        if lambda_invoke.get("UserArguments") and version != "2.0":
            raise JobError(400, "InvalidRequest", "UserArguments require InvocationSchemaVersion 2.0")
        token = request.get("ClientRequestToken")
        with self._lock:
            if token and token in self.tokens:
                return self.tokens[token]
            job = Job(job_id=str(uuid.uuid4()), request=request)
            self.jobs[job.job_id] = job
            if token:
                self.tokens[token] = job.job_id
        thread = threading.Thread(
            target=self._run, args=(job,), name=f"batch-job-{job.job_id[:8]}", daemon=True
        )
        self._threads.append(thread)
        thread.start()
        return job.job_id

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise JobError(404, "NoSuchJob", f"The specified job does not exist: {job_id}")
        return job

    def update_status(self, job_id: str, requested: str, reason: str | None) -> Job:
        job = self.get(job_id)
        with job.changed:
            if requested == "Ready":
                if job.status != "Suspended":
                    raise JobError(400, "JobStatusException", f"job is {job.status}, not Suspended")
            elif requested == "Cancelled":
                if job.status in TERMINAL:
                    raise JobError(400, "JobStatusException", f"job is already {job.status}")
            else:
                raise JobError(400, "InvalidRequest", f"cannot request status {requested!r}")
            job.requested = requested
            if reason:
                job.status_update_reason = reason
            if requested == "Cancelled":
                job.status = "Cancelling"
            job.changed.notify_all()
        return job

    def stop(self) -> None:
        self._stopping.set()
        for job in list(self.jobs.values()):
            with job.changed:
                job.changed.notify_all()
        for thread in self._threads:
            thread.join(5)

    # -- the job's life

    def _set(self, job: Job, status: str) -> None:
        with job.changed:
            if job.active_since is not None and status != "Active":
                job.active_seconds += time.monotonic() - job.active_since
                job.active_since = None
            if status == "Active" and job.active_since is None:
                job.active_since = time.monotonic()
            job.status = status
            if status in TERMINAL:
                job.terminated = datetime.now(UTC)
            if status == "Suspended":
                job.suspended = datetime.now(UTC)
            job.changed.notify_all()

    def _cancelled(self, job: Job) -> bool:
        return job.requested == "Cancelled" or self._stopping.is_set()

    def _run(self, job: Job) -> None:
        try:
            self._set(job, "Preparing")
            tasks = list(self._tasks(job))
            with job.changed:
                job.tasks, job.total = tasks, len(tasks)
            if self._cancelled(job):
                self._finish(job, "Cancelled")
                return
            if job.request.get("ConfirmationRequired"):
                self._set(job, "Suspended")
                with job.changed:
                    while job.requested is None and not self._stopping.is_set():
                        job.changed.wait(0.5)
                if self._cancelled(job):
                    self._finish(job, "Cancelled")
                    return
            self._set(job, "Ready")
            self._set(job, "Active")
            outcome = self._execute(job)
            self._finish(job, outcome)
        except JobError as error:
            self._fail(job, error.code, error.message)
        except Exception as exc:  # a job never hangs in a non-terminal state
            self._fail(job, "InternalError", f"{type(exc).__name__}: {exc}")

    def _fail(self, job: Job, code: str, reason: str) -> None:
        with job.changed:
            job.failure_reasons.append({"FailureCode": code, "FailureReason": reason[:1024]})
        self._finish(job, "Failed")

    def _finish(self, job: Job, status: str) -> None:
        if status == "Cancelled" and job.status != "Cancelling":
            self._set(job, "Cancelling")
        elif status in ("Complete", "Failed"):
            self._set(job, "Completing" if status == "Complete" else "Failing")
        with contextlib.suppress(ClientError, JobError):
            write_report(self.s3, job)
        self._set(job, status)

    # -- the manifest

    def _tasks(self, job: Job) -> Iterator[Task]:
        function_arn = job.request["Operation"]["LambdaInvoke"].get("FunctionArn")
        if function_arn not in self.function_arns:
            raise JobError(400, "InvalidRequest", f"no such function: {function_arn}")
        yield from job_tasks(self.s3, job)

    # -- running the tasks

    def _execute(self, job: Job) -> str:
        pending = iter(job.tasks)
        lock = threading.Lock()
        failed_job = threading.Event()

        def worker() -> None:
            while not self._cancelled(job) and not failed_job.is_set():
                with lock:
                    task = next(pending, None)
                if task is None:
                    return
                self._run_task(job, task)
                with job.changed:
                    done = job.succeeded + job.failed
                    if done >= FAILURE_THRESHOLD_TASKS and job.failed / done > FAILURE_THRESHOLD_RATE:
                        failed_job.set()

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"job-{job.job_id[:8]}") as pool:
            for _ in range(self.concurrency):
                pool.submit(worker)
        if failed_job.is_set():
            with job.changed:
                job.failure_reasons.append(
                    {
                        "FailureCode": "TaskFailureThresholdExceeded",
                        "FailureReason": f"more than {FAILURE_THRESHOLD_RATE:.0%} of at least "
                        f"{FAILURE_THRESHOLD_TASKS} tasks failed",
                    }
                )
            return "Failed"
        return "Cancelled" if self._cancelled(job) else "Complete"

    def _event(self, job: Job, task: Task) -> dict[str, Any]:
        lambda_invoke = job.request["Operation"]["LambdaInvoke"]
        version = lambda_invoke.get("InvocationSchemaVersion", "1.0")
        entry: dict[str, Any] = {
            "taskId": task.task_id,
            "s3Key": encode_key(task.key),
            "s3VersionId": task.version_id,
        }
        job_part: dict[str, Any] = {"id": job.job_id}
        if version == "2.0":
            entry["s3Bucket"] = task.bucket
            job_part["userArguments"] = lambda_invoke.get("UserArguments") or {}
        else:
            entry["s3BucketArn"] = f"arn:aws:s3:::{task.bucket}"
        return {
            "invocationSchemaVersion": version,
            "invocationId": base64.b64encode(uuid.uuid4().bytes).decode(),
            "job": job_part,
            "tasks": [entry],
        }

    def _run_task(self, job: Job, task: Task) -> None:
        function_arn = job.request["Operation"]["LambdaInvoke"]["FunctionArn"]
        for attempt in range(1, TASK_ATTEMPTS + 1):
            code, message = self._attempt(function_arn, self._event(job, task), task.task_id)
            if code != "TemporaryFailure" or attempt == TASK_ATTEMPTS or self._stopping.is_set():
                break
            time.sleep(0.2 * attempt)
        with job.changed:
            if code == "Succeeded":
                task.status, task.error_code = "succeeded", ""
                job.succeeded += 1
            else:
                task.status, task.error_code = "failed", code
                job.failed += 1
            task.message = message

    def _attempt(self, function_arn: str, event: dict[str, Any], task_id: str) -> tuple[str, str]:
        invocation = self.invoke(function_arn, event)
        if not invocation.ok:
            error = json.dumps({"errorMessage": invocation.error_message, "errorType": invocation.error_type})
            return "TemporaryFailure", f"Lambda returned function error: {error}"
        payload = invocation.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
            return "PermanentFailure", "Invalid JSON returned in Lambda payload"
        if payload.get("invocationId") != event["invocationId"]:
            return "PermanentFailure", "Lambda payload does not echo the invocationId"
        missing_as = payload.get("treatMissingKeysAs") or "PermanentFailure"
        result = next(
            (r for r in payload["results"] if isinstance(r, dict) and r.get("taskId") == task_id), None
        )
        if result is None:
            return str(missing_as), "no result for this task in the Lambda payload"
        code = result.get("resultCode")
        if code not in ("Succeeded", "TemporaryFailure", "PermanentFailure"):
            return "PermanentFailure", f"invalid resultCode {code!r} in the Lambda payload"
        return str(code), str(result.get("resultString") or "")
