"""Operations on a deployment: ``backfill``, ``redrive``, ``search``, ``show``.

Each acts on the local stack (found through its state file) or, with ``--stack NAME`` and AWS
credentials, on a deployed stack (found through its CloudFormation outputs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from autotag.cli import batch_operations as batch_cli
from autotag.errors import BadInputError, ConfigError, NotFoundError
from autotag.local.state import DEFAULT_STATE_PATH
from autotag.ops.backfill import DEFAULT_CHECKPOINT_DIR, Backfill, BackfillReport, parse_s3_url
from autotag.ops.progress import Progress
from autotag.ops.redrive import Redrive, to_bus, to_queue
from autotag.ops.target import Target, resolve_target
from autotag.store.base import ImageRecord, TagHit
from autotag.store.dynamodb import DynamoImageStore
from autotag.store.keys import MAX_PAGE_SIZE


def _target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("deployment (default: the running `autotag local`)")
    group.add_argument(
        "--stack", metavar="NAME", help="a deployed stack, found by its CloudFormation outputs"
    )
    group.add_argument("--profile", help="AWS profile (with --stack)")
    group.add_argument("--region", help="AWS region (with --stack)")
    group.add_argument(
        "--state", type=Path, default=DEFAULT_STATE_PATH, metavar="PATH", help="state file of `autotag local`"
    )
    group.add_argument(
        "--config", metavar="FILE", help="deployment config (filters); default: as `autotag local`"
    )


def register(subparsers: Any) -> None:
    backfill = subparsers.add_parser(
        "backfill",
        help="tag objects already in a bucket (enqueue them like new uploads)",
        description="Enqueue existing objects under s3://bucket/prefix as S3 notifications on the tag "
        "queue. Objects excluded by the config's filters, and objects already tagged at their current "
        "ETag, are skipped. An interrupted run resumes where it stopped. With --engine batch-operations "
        "an S3 Batch Operations job of the deployment does the same at bucket scale; `status JOB`, "
        "`cancel JOB` and `confirm JOB` follow, stop or start it (docs/scale.md). Both engines state "
        "the count and cost first and stop at the budget ceiling.",
    )
    backfill.add_argument("url", metavar="s3://BUCKET/PREFIX | status | cancel | confirm")
    backfill.add_argument("--force", action="store_true", help="enqueue objects that are already tagged too")
    backfill.add_argument(
        "--restart", action="store_true", help="ignore the checkpoint of an interrupted run"
    )
    backfill.add_argument(
        "--checkpoint-dir", type=Path, default=DEFAULT_CHECKPOINT_DIR, help="where checkpoints are kept"
    )
    backfill.add_argument("--no-count", action="store_true", help="skip counting first (no total or ETA)")
    batch_cli.add_options(backfill)
    _target_options(backfill)
    backfill.set_defaults(handler=run_backfill)

    redrive = subparsers.add_parser(
        "redrive",
        help="move dead-lettered messages back to be processed again",
        description="Move messages from the tag DLQ back to the tag queue (or, with --events, from the "
        "event DLQ back onto the bus). --code limits the move to messages with that error code.",
    )
    redrive.add_argument(
        "--code", action="append", default=[], metavar="CODE", help="only this error code (repeatable)"
    )
    redrive.add_argument("--events", action="store_true", help="redrive the event DLQ onto the bus instead")
    redrive.add_argument("--limit", type=int, help="move at most this many")
    redrive.add_argument("--dry-run", action="store_true", help="count what would move; move nothing")
    _target_options(redrive)
    redrive.set_defaults(handler=run_redrive)

    search = subparsers.add_parser("search", help="images carrying a tag, best first")
    search.add_argument("tag")
    search.add_argument("--limit", type=int, default=50, help="images per page (default 50)")
    search.add_argument("--cursor", help="continue from a previous page")
    search.add_argument("--all", action="store_true", help="follow every page")
    search.add_argument("--json", action="store_true", help="JSON output")
    _target_options(search)
    search.set_defaults(handler=run_search)

    show = subparsers.add_parser("show", help="the stored record of one image")
    show.add_argument("url", metavar="s3://BUCKET/KEY")
    show.add_argument("--json", action="store_true", help="JSON output")
    _target_options(show)
    show.set_defaults(handler=run_show)


def _target(args: argparse.Namespace) -> Target:
    return resolve_target(
        stack=args.stack,
        state_path=args.state,
        profile=args.profile,
        region=args.region,
        config_path=args.config,
    )


def _store(target: Target) -> DynamoImageStore:
    return DynamoImageStore(target.client("dynamodb"), target.table_name)


# --- backfill ----------------------------------------------------------------------------------


def run_backfill(args: argparse.Namespace) -> int:
    if batch_cli.wants_batch(args):
        return batch_cli.run(args, _target(args))
    parse_s3_url(args.url)
    target = _target(args)
    progress: Progress | None = None
    limit = batch_cli.ceiling(args, target, batch_cli.ENGINE_ONE_MACHINE)

    def on_start(total: int | None, report: BackfillReport) -> None:
        nonlocal progress
        if report.checkpoint_ignored:
            print(f"autotag: {report.checkpoint_ignored}", file=sys.stderr)
        if report.resumed_after:
            print(f"resuming after {report.resumed_after}", file=sys.stderr)
        if total is not None:
            estimate = batch_cli.state_budget(total, target, batch_cli.ENGINE_ONE_MACHINE, limit)
            if not args.dry_run:
                batch_cli.check_queue_holds(estimate, target, limit)
        if args.dry_run:
            raise batch_cli.DryRunDone(total)
        progress = Progress(total, label="backfill")

    def on_progress(report: BackfillReport) -> None:
        if progress is not None:
            progress.done = report.listed - report.filtered
            progress.advance(0, notes=f"enqueued {report.enqueued}, skipped {report.skipped}")

    job = Backfill(
        target=target,
        store=_store(target),
        url=args.url,
        force=args.force,
        checkpoint_dir=args.checkpoint_dir,
        restart=args.restart,
        on_start=on_start,
        on_progress=on_progress,
        count_first=not args.no_count or args.dry_run,
        max_objects=limit,
    )
    try:
        report = job.run()
    except batch_cli.DryRunDone as done:
        print(f"dry run: {done.total} object(s) to consider under {args.url}; nothing enqueued")
        return 0
    if progress is not None:
        progress.done = report.listed - report.filtered
        progress.notes = f"enqueued {report.enqueued}, skipped {report.skipped}"
        progress.finish()
    print(f"{args.url} on {target.description}: {report.summary()}")
    return 1 if report.failed else 0


# --- redrive -----------------------------------------------------------------------------------


def run_redrive(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be at least 1")
    target = _target(args)
    sqs = target.client("sqs")
    if args.events:
        if not target.event_dlq_url or not target.event_bus_name:
            raise ConfigError(f"{target.description} has no event DLQ or bus to redrive")
        dlq_url, send = target.event_dlq_url, to_bus(target.client("events"), target.event_bus_name)
    else:
        dlq_url, send = target.dlq_url, to_queue(sqs, target.tag_queue_url)
    report = Redrive(
        sqs=sqs,
        dlq_url=dlq_url,
        send=send,
        codes=frozenset(args.code),
        limit=args.limit,
        dry_run=args.dry_run,
    ).run()
    prefix = "dry run: would have " if args.dry_run else ""
    print(f"{prefix}{report.summary()}")
    return 1 if report.failed else 0


# --- search / show -----------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)
    return "\n".join(lines)


def _confidence(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def run_search(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= MAX_PAGE_SIZE:
        raise BadInputError(f"--limit must be between 1 and {MAX_PAGE_SIZE}")
    store = _store(_target(args))
    hits: list[TagHit] = []
    cursor = args.cursor
    while True:
        page = store.images_with_tag(args.tag, limit=args.limit, cursor=cursor)
        hits.extend(page.items)
        cursor = page.cursor
        if not args.all or cursor is None:
            break
    if args.json:
        print(
            json.dumps(
                {"tag": args.tag, "items": [h.model_dump(mode="json") for h in hits], "cursor": cursor},
                indent=2,
            )
        )
        return 0
    if not hits:
        print(f"no images tagged {args.tag!r}")
        return 0
    rows = [
        [
            _confidence(h.confidence),
            f"s3://{h.bucket}/{h.key}",
            ",".join(h.providers),
            h.updated_at.isoformat(timespec="seconds") if h.updated_at else "-",
        ]
        for h in hits
    ]
    print(_table(["confidence", "image", "providers", "updated"], rows))
    if cursor:
        print(f"more: --cursor {cursor}")
    return 0


def _status_reason(record: ImageRecord) -> str:
    """Why a record is failed or skipped (a skipped record has a reason but no error code)."""
    if record.error_code:
        return f"  {record.error_code}: {record.error or '-'}"
    return f"  ({record.error})" if record.error else ""


def format_record(record: ImageRecord) -> str:
    lines = [
        f"image     s3://{record.bucket}/{record.key}"
        + (f"  (version {record.version_id})" if record.version_id else "")
        + (f"  (event {record.sequencer})" if record.sequencer else ""),
        f"status    {record.status.value}{_status_reason(record)}",
    ]
    if record.width and record.height:
        lines.append(
            f"size      {record.width}x{record.height}, {record.size or '?'} bytes, "
            f"{record.content_type or '?'}"
        )
    if record.title:
        lines.append(f"title     {record.title}")
    if record.description:
        lines.append(f"about     {record.description}")
    if record.classification:
        lines.append(
            f"class     {record.classification.label} ({_confidence(record.classification.confidence)})"
        )
    for status in record.providers:
        latency = f"{status.latency_ms:.0f} ms" if status.latency_ms is not None else "-"
        error = f"  {status.error_code}: {status.error}" if status.error_code else ""
        lines.append(
            f"provider  {status.provider}: {status.status.value}, {status.tag_count} tags, {latency}{error}"
        )
    if record.s3_tags is not None:
        written = ", ".join(f"{k}={v}" for k, v in sorted(record.s3_tags.written.items())) or "none"
        note = f"  ({record.s3_tags.reason})" if record.s3_tags.reason else ""
        lines.append(f"s3 tags   {written}; user tags kept: {record.s3_tags.user_tags_kept}{note}")
        if record.s3_tags.removed:
            lines.append(f"removed   {', '.join(record.s3_tags.removed)} (written by autotag before)")
        for dropped in record.s3_tags.dropped:
            why = {
                "tag_limit": "no free slot (S3 allows 10 tags per object)",
                "user_tag": "the object's own tag with this key was kept",
            }[dropped.reason.value]
            lines.append(f"dropped   {dropped.key}={dropped.value}: {why}")
    lines.append(
        f"updated   {record.updated_at.isoformat(timespec='seconds')}"
        + ("  (cached result)" if record.cached else "")
    )
    if record.tags:
        lines.append("")
        rows = [[t.name, _confidence(t.confidence), t.kind.value, ",".join(t.sources)] for t in record.tags]
        lines.append(_table(["tag", "confidence", "kind", "providers"], rows))
    return "\n".join(lines)


def run_show(args: argparse.Namespace) -> int:
    bucket, key = parse_s3_url(args.url)
    if not key:
        raise BadInputError(f"expected s3://bucket/key, got {args.url!r}")
    record = _store(_target(args)).get(bucket, key)
    if record is None:
        raise NotFoundError(
            f"no record for s3://{bucket}/{key} (not tagged yet, excluded by the filters, or not in "
            "this deployment's table)"
        )
    print(record.model_dump_json(indent=2) if args.json else format_record(record))
    return 0
