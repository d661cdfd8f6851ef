"""Following an S3 Batch Operations job: its view (status, progress, failure reasons), the control
calls (create, describe, confirm or cancel, wait) and its completion report. The job's resources and
its CreateJob request are :mod:`autotag.ops.batch_operations`'."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from autotag.ops.batch_operations import (
    TERMINAL_STATUSES,
    WAITING_STATUS,
    BatchOperationsError,
)
from autotag.ops.progress import Progress


@dataclass(frozen=True)
class JobView:
    job_id: str
    status: str
    total: int | None
    succeeded: int
    failed: int
    elapsed_seconds: float
    report_bucket: str | None = None
    report_prefix: str | None = None
    status_update_reason: str | None = None
    failure_reasons: tuple[str, ...] = ()
    description: str | None = None

    @classmethod
    def from_response(cls, job: dict[str, Any]) -> JobView:
        progress = job.get("ProgressSummary") or {}
        report = job.get("Report") or {}
        bucket_arn = report.get("Bucket")
        return cls(
            job_id=job["JobId"],
            status=job["Status"],
            total=progress.get("TotalNumberOfTasks"),
            succeeded=int(progress.get("NumberOfTasksSucceeded") or 0),
            failed=int(progress.get("NumberOfTasksFailed") or 0),
            elapsed_seconds=float((progress.get("Timers") or {}).get("ElapsedTimeInActiveSeconds") or 0),
            report_bucket=bucket_arn.split(":::")[-1] if bucket_arn and report.get("Enabled") else None,
            report_prefix=report.get("Prefix"),
            status_update_reason=job.get("StatusUpdateReason"),
            failure_reasons=tuple(
                f"{r.get('FailureCode', '?')}: {r.get('FailureReason', '')}"
                for r in job.get("FailureReasons") or []
            ),
            description=job.get("Description"),
        )

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def rate(self) -> float:
        """Tasks per second while active (S3 reports whole seconds: under one counts as one)."""
        return self.done / max(self.elapsed_seconds, 1.0) if self.done else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if self.total is None or self.rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.rate)

    @property
    def report_manifest_uri(self) -> str | None:
        """Where S3 writes the completion report's manifest.json."""
        if not self.report_bucket:
            return None
        prefix = f"{self.report_prefix}/" if self.report_prefix else ""
        return f"s3://{self.report_bucket}/{prefix}job-{self.job_id}/manifest.json"

    def progress_line(self) -> str:
        bar = Progress(self.total, label=self.status, interactive=False)
        bar.done = self.done
        bar.started = time.monotonic() - max(self.elapsed_seconds, 1.0)
        line = bar.render(time.monotonic())
        if self.total is not None and self.done >= self.total:
            line = line.replace("ETA 0:00", "done")
        return line

    def describe(self) -> str:
        lines = [f"job {self.job_id}: {self.status}"]
        if self.description:
            lines.append(f"  {self.description}")
        total = "?" if self.total is None else str(self.total)
        lines.append(f"  succeeded {self.succeeded}, failed {self.failed}, total {total}")
        lines.append(f"  {self.progress_line()}")
        if self.status_update_reason:
            lines.append(f"  reason: {self.status_update_reason}")
        lines.extend(f"  failure: {reason}" for reason in self.failure_reasons)
        if self.report_manifest_uri:
            written = "" if self.finished else " (written when the job ends)"
            lines.append(f"  report: {self.report_manifest_uri}{written}")
        return "\n".join(lines)


def _call(what: str, function: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return function(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise BatchOperationsError(
            f"{what}: {error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
        ) from None
    except BotoCoreError as exc:
        raise BatchOperationsError(f"{what}: {exc}") from None


@dataclass
class JobControl:
    """The S3 Control calls for one deployment's backfill jobs."""

    client: Any
    account_id: str
    sleep: Callable[[float], None] = field(default=time.sleep)

    def create(self, request: dict[str, Any]) -> str:
        response = _call("CreateJob", self.client.create_job, **request)
        return str(response["JobId"])

    def describe(self, job_id: str) -> JobView:
        response = _call(
            f"DescribeJob {job_id}", self.client.describe_job, AccountId=self.account_id, JobId=job_id
        )
        return JobView.from_response(response["Job"])

    def _update(self, job_id: str, status: str, reason: str) -> str:
        response = _call(
            f"UpdateJobStatus {job_id} -> {status}",
            self.client.update_job_status,
            AccountId=self.account_id,
            JobId=job_id,
            RequestedJobStatus=status,
            StatusUpdateReason=reason[:256],
        )
        return str(response.get("Status", status))

    def confirm(self, job_id: str, reason: str = "confirmed by autotag backfill within its budget") -> str:
        return self._update(job_id, "Ready", reason)

    def cancel(self, job_id: str, reason: str = "cancelled by autotag backfill cancel") -> str:
        return self._update(job_id, "Cancelled", reason)

    def wait(
        self,
        job_id: str,
        until: Callable[[JobView], bool],
        *,
        timeout: float,
        interval: float = 2.0,
        on_poll: Callable[[JobView], None] | None = None,
    ) -> JobView:
        deadline = time.monotonic() + timeout
        while True:
            view = self.describe(job_id)
            if on_poll is not None:
                on_poll(view)
            if until(view) or view.finished:
                return view
            if time.monotonic() >= deadline:
                raise BatchOperationsError(f"job {job_id} is still {view.status} after {timeout:.0f} s")
            self.sleep(interval)


def prepared(view: JobView) -> bool:
    """The tasks are counted and the job waits for confirmation (or went past it)."""
    return view.status == WAITING_STATUS or view.status in ("Ready", "Active", "Completing")


# --- The completion report --------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRow:
    """One line of a Report_CSV_20180820 result file (AWS writes the HTTP status before the code)."""

    bucket: str
    key: str
    version_id: str
    task_status: str
    http_status: str
    error_code: str
    result_message: str


def read_report(s3: Any, view: JobView) -> list[ReportRow] | None:
    """Every row of the job's completion report (its manifest.json, then each result CSV); None
    when there is no report (S3 writes one only once a task ran)."""
    import json
    from urllib.parse import unquote

    uri = view.report_manifest_uri
    if uri is None:
        return []
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise BatchOperationsError(
            f"cannot read the report {uri}: {exc.response['Error'].get('Code')}"
        ) from None
    try:
        rows: list[ReportRow] = []
        for result in manifest.get("Results", []):
            body = s3.get_object(Bucket=result["Bucket"], Key=result["Key"])["Body"].read().decode("utf-8")
            for line in csv.reader(io.StringIO(body)):
                if len(line) >= 7:
                    rows.append(
                        ReportRow(
                            bucket=line[0],
                            key=unquote(line[1]),
                            version_id=line[2],
                            task_status=line[3],
                            http_status=line[4],
                            error_code=line[5],
                            result_message=",".join(line[6:]),
                        )
                    )
    except ClientError as exc:
        raise BatchOperationsError(
            f"cannot read the report {uri}: {exc.response['Error'].get('Code')}"
        ) from None
    return rows
