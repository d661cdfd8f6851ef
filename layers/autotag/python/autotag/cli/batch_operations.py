"""``autotag backfill --engine batch-operations`` and ``autotag backfill status|cancel|confirm JOB``, and the
budget guard of both backfill engines (the one-machine engine's command is in
:mod:`autotag.cli.ops`)."""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from autotag.batch_tasks import JobArguments
from autotag.errors import BadInputError, ConfigError
from autotag.ops import budget
from autotag.ops.backfill import parse_s3_url
from autotag.ops.batch_jobs import JobControl, JobView, prepared, read_report
from autotag.ops.batch_operations import (
    WAITING_STATUS,
    BatchOperationsError,
    ObjectSelection,
    batch_resources,
    control_client,
    create_job_request,
    find_manifest,
)
from autotag.ops.target import Target

ENGINE_ONE_MACHINE: budget.Engine = "one-machine"
ENGINE_BATCH: budget.Engine = "batch-operations"
JOB_VERBS = ("status", "cancel", "confirm")
PREPARE_TIMEOUT_SECONDS = 3600.0
POLL_SECONDS = 2.0
LOG_LINE_SECONDS = 30.0
"""Without a terminal, --wait prints a progress line this often (not at every poll)."""


class DryRunDone(Exception):
    """Raised from the one-machine engine's start callback: the estimate is stated, stop there."""

    def __init__(self, total: int | None) -> None:
        super().__init__("dry run")
        self.total = total


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "job",
        nargs="?",
        metavar="JOB",
        help="with status / cancel: the Batch Operations job id",
    )
    parser.add_argument(
        "--engine",
        choices=[ENGINE_ONE_MACHINE, ENGINE_BATCH],
        default=ENGINE_ONE_MACHINE,
        help="one-machine (default): list and enqueue from here; batch-operations: an S3 Batch "
        "Operations job of the deployment (bucket scale)",
    )
    guard = parser.add_argument_group(
        "budget guard (both engines; defaults from batch_operations in the config)"
    )
    guard.add_argument("--max-objects", type=int, metavar="N", help="send at most N objects")
    guard.add_argument("--max-cost", type=float, metavar="USD", help="stop before the estimate passes USD")
    guard.add_argument("--dry-run", action="store_true", help="state the count and the estimate, tag nothing")
    batch = parser.add_argument_group("batch-operations engine")
    batch.add_argument(
        "--manifest",
        metavar="S3URL",
        help="an S3 Inventory manifest.json (or a Bucket,Key CSV) instead of a generated manifest",
    )
    batch.add_argument("--created-after", type=_time, metavar="ISO8601", help="only objects created after")
    batch.add_argument("--created-before", type=_time, metavar="ISO8601", help="only objects created before")
    batch.add_argument("--larger-than", type=int, metavar="BYTES", help="only objects larger than BYTES")
    batch.add_argument("--smaller-than", type=int, metavar="BYTES", help="only objects smaller than BYTES")
    batch.add_argument("--wait", action="store_true", help="follow the job until it ends (also with status)")


def _time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


BATCH_ONLY = {
    "manifest": "--manifest",
    "created_after": "--created-after",
    "created_before": "--created-before",
    "larger_than": "--larger-than",
    "smaller_than": "--smaller-than",
}


def wants_batch(args: argparse.Namespace) -> bool:
    if args.url in JOB_VERBS and not args.job:
        raise BadInputError(f"usage: autotag backfill {args.url} JOB")
    if args.url in JOB_VERBS or args.engine == ENGINE_BATCH:
        return True
    given = [flag for name, flag in BATCH_ONLY.items() if getattr(args, name) is not None]
    if given:
        raise BadInputError(f"{', '.join(given)}: only with --engine {ENGINE_BATCH}")
    if args.job:
        raise BadInputError(f"unexpected argument {args.job!r}")
    return False


def ceiling(args: argparse.Namespace, target: Target, engine: budget.Engine) -> int | None:
    settings = target.config.batch_operations
    max_objects = args.max_objects if args.max_objects is not None else settings.max_objects
    max_cost = args.max_cost if args.max_cost is not None else settings.max_cost_usd
    if max_objects is not None and max_objects < 1:
        raise ConfigError("--max-objects must be at least 1")
    if max_cost is not None and max_cost <= 0:
        raise ConfigError("--max-cost must be positive")
    return budget.ceiling_objects(
        target.config, engine=engine, max_objects=max_objects, max_cost_usd=max_cost
    )


def state_budget(total: int, target: Target, engine: budget.Engine, limit: int | None) -> budget.Estimate:
    estimate = budget.estimate(total, target.config, engine=engine)
    print(estimate.describe(), file=sys.stderr)
    if limit is not None:
        print(f"  ceiling: {limit} object(s)", file=sys.stderr)
    return estimate


def check_queue_holds(estimate: budget.Estimate, target: Target, limit: int | None) -> None:
    """The one-machine engine stops at its ceiling: only what it will send must fit the queue."""
    if limit is not None and limit < estimate.objects:
        estimate = budget.estimate(limit, target.config, engine=estimate.engine)
    budget.check_retention(estimate, target.config)


def run(args: argparse.Namespace, target: Target) -> int:
    resources = batch_resources(target)
    control = JobControl(control_client(target, resources), resources.account_id)
    if args.url in JOB_VERBS:
        if not args.job:
            raise BadInputError(f"usage: autotag backfill {args.url} JOB")
        if args.url == "cancel":
            status = control.cancel(args.job)
            print(f"job {args.job}: {status} (tasks in flight finish; the report lists what ran)")
            return 0
        if args.url == "confirm":
            return _guard_and_confirm(args, target, control, control.describe(args.job))
        return _status(control, target, args.job, wait=args.wait)
    if args.job:
        raise BadInputError(f"unexpected argument {args.job!r}")
    return _create(args, target, control, resources)


def _create(args: argparse.Namespace, target: Target, control: JobControl, resources: Any) -> int:
    bucket, prefix = parse_s3_url(args.url)
    ceiling(args, target, ENGINE_BATCH)  # an invalid ceiling fails before any job exists
    try:
        selection = ObjectSelection(
            prefix=prefix,
            created_after=args.created_after,
            created_before=args.created_before,
            larger_than_bytes=args.larger_than,
            smaller_than_bytes=args.smaller_than,
        )
    except ValueError as exc:
        raise BadInputError(str(exc).splitlines()[-1]) from None
    manifest = (
        find_manifest(target.client("s3"), args.manifest, resources.partition) if args.manifest else None
    )
    arguments = JobArguments(force=args.force, replay_id=uuid.uuid4().hex if args.force else None)
    request = create_job_request(
        resources=resources, bucket=bucket, selection=selection, arguments=arguments, manifest=manifest
    )
    job_id = control.create(request)
    print(f"job {job_id} created on {target.description}; S3 prepares its manifest", file=sys.stderr)
    try:
        view = control.wait(job_id, prepared, timeout=PREPARE_TIMEOUT_SECONDS, interval=POLL_SECONDS)
    except (KeyboardInterrupt, BatchOperationsError):
        print(
            f"job {job_id} was not confirmed: `autotag backfill confirm {job_id}` once it is prepared "
            f"(the budget guard runs then), or `autotag backfill cancel {job_id}`",
            file=sys.stderr,
        )
        raise
    return _guard_and_confirm(args, target, control, view)


def _guard_and_confirm(args: argparse.Namespace, target: Target, control: JobControl, view: JobView) -> int:
    """The budget guard on a prepared job: state the count and the cost, then confirm or cancel."""
    job_id = view.job_id
    if view.status != WAITING_STATUS:
        print(view.describe())
        return 1 if view.finished else 0
    limit = ceiling(args, target, ENGINE_BATCH)
    total = view.total or 0
    estimate = state_budget(total, target, ENGINE_BATCH, limit)
    if args.dry_run:
        control.cancel(job_id, "dry run: estimate only")
        print(f"dry run: job {job_id} cancelled before any task ran")
        return 0
    try:
        budget.check(estimate, limit)
        budget.check_retention(estimate, target.config)
    except budget.BudgetExceededError:
        control.cancel(job_id, "over the budget ceiling")
        raise
    control.confirm(job_id)
    print(f"job {job_id}: confirmed, {total} task(s); follow it with: autotag backfill status {job_id}")
    if args.wait:
        return _status(control, target, job_id, wait=True)
    return 0


def _status(control: JobControl, target: Target, job_id: str, *, wait: bool) -> int:
    view = control.describe(job_id)
    if wait:
        interactive = sys.stderr.isatty()
        printed = -LOG_LINE_SECONDS
        while not view.finished:
            now = time.monotonic()
            if interactive:
                sys.stderr.write("\r\x1b[K" + view.progress_line())
            elif now - printed >= LOG_LINE_SECONDS:
                sys.stderr.write(view.progress_line() + "\n")
                printed = now
            sys.stderr.flush()
            time.sleep(POLL_SECONDS)
            view = control.describe(job_id)
        if interactive:
            sys.stderr.write("\r\x1b[K")
    print(view.describe())
    if view.finished and view.report_manifest_uri:
        rows = read_report(target.client("s3"), view)
        if rows is None:
            print("  report rows: none (no task ran, so S3 wrote no report)")
            rows = []
        counts = Counter(r.task_status for r in rows)
        if counts:
            print(f"  report rows: {', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}")
        for row in [r for r in rows if r.task_status == "failed"][:10]:
            print(f"    failed s3://{row.bucket}/{row.key}: {row.error_code}: {row.result_message}")
    if wait and view.status != "Complete":
        return 1
    return 0
