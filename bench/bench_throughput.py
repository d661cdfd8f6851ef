"""Throughput of the upload path on the local stack: N uploads (boto3 put_object to the emulator),
the S3 notification to the tag queue, the SQS poller driving the real on_upload handler in its
worker processes, and an imagedescriber double answering after a fixed latency (100 ms).

Figures, in one run:
- images/s from the first upload to the last record written, and over the busy period of the
  function (first invocation start to last invocation end);
- per-image overhead beyond the provider call, from the handler's own per-record timings: for each
  record, (``ImageRecord.updated_at`` - start of the invocation that tagged it) - the provider's
  ``latency_ms`` stored on the record. That span covers event parsing, the idempotency record, S3
  head + get, the image check, the cache lookup and write and the S3 tag write; the record put,
  the event and the idempotency completion come after ``updated_at`` and show in the batch
  overhead (invocation duration - the slowest provider call of the batch) reported beside it;
- the baselines beside them: the provider-bound ceiling (workers x records in flight / latency,
  i.e. zero overhead) and the same stack tagging one record at a time (``processing.concurrency``
  = 1: the pattern of the common S3 → Lambda → Rekognition samples), measured on a smaller set.

    uv run python -m bench.bench_throughput [--images 1000] [--latency 0.1] [--sequential 200]

Prints a table and writes bench/results/throughput.json (bench_cost reads the durations).
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from bench.common import RESULTS, ROOT, machine, ratio, stats, text_table, write_result
from bench.harness import (
    BenchStack,
    Client,
    CountingDescriber,
    Invocation,
    Upload,
    children_output_to,
    deployment_config,
    distinct_jpegs,
    running_stack,
)

WORKERS = 2
_OUTCOME_LINE = re.compile(r"\s(tagged|FAILED)\s+s3://[^/\s]+/(\S+)")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere or when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(stack: BenchStack) -> dict[str, float]:
    emulator = stack.state.child_pids.get("emulator", 0) if stack.state else 0
    return {
        "emulator": cpu_seconds(emulator),
        "on_upload": sum(cpu_seconds(pid) for pid in stack.upload_worker_pids()),
        "bench": cpu_seconds(os.getpid()),
    }


class Progress:
    """Keys the stack's one-line-per-image log reported tagged or failed."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        self._changed = threading.Condition()

    def line(self, text: str) -> None:
        match = _OUTCOME_LINE.search(text)
        if match:
            with self._changed:
                self.done.add(match[2])
                self._changed.notify_all()

    def wait(self, keys: set[str], client: Client, timeout: float) -> set[str]:
        """Wait until every key is done (the log, checked against the store when it goes quiet)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._changed:
                self._changed.wait_for(lambda: keys <= self.done, timeout=5.0)
                missing = keys - self.done
            if not missing:
                return set()
            if len(missing) < 50:  # a line the log missed: ask the store
                found = client.records(sorted(missing))
                with self._changed:
                    self.done |= {
                        k for k, r in found.items() if r is not None and r.status.value != "skipped"
                    }
        return keys - self.done


def last_success(invocations: list[Invocation]) -> dict[str, Invocation]:
    """For each key, the invocation that processed it successfully (the last one that carried it
    and did not report it failed)."""
    found: dict[str, Invocation] = {}
    for invocation in sorted(invocations, key=lambda i: i.ended_at):
        if invocation.error_type is not None:
            continue
        for key in invocation.keys:
            if key not in invocation.failed_keys:
                found[key] = invocation
    return found


def run_set(
    stack: BenchStack,
    provider: CountingDescriber,
    prefix: str,
    images: list[bytes],
    *,
    timeout: float,
    progress: Progress,
) -> dict[str, Any]:
    assert stack.state is not None
    client = Client(stack.state)
    uploads = [Upload(key=f"{prefix}/img-{i:05d}.jpg", data=data) for i, data in enumerate(images)]
    keys = {u.key for u in uploads}
    calls_before = provider.calls
    first_invocation = len(stack.invocations)
    cpu_before = cpu_snapshot(stack)
    started = time.time()
    client.put_all(uploads)
    uploaded = time.time()
    missing = progress.wait(keys, client, timeout)
    if missing:
        raise SystemExit(f"{len(missing)} of {len(keys)} images not tagged within {timeout:.0f}s")
    cpu_after = cpu_snapshot(stack)
    records = client.records(sorted(keys))
    ends = [r.updated_at.timestamp() for r in records.values() if r is not None]
    finished = max(ends)
    uris = {f"s3://{client.bucket}/{key}": key for key in keys}
    invocations = [i for i in stack.invocations[first_invocation:] if set(i.keys) & uris.keys()]
    busy_from = min(i.started_at for i in invocations)
    busy_to = max(i.ended_at for i in invocations)
    by_uri = last_success(invocations)

    def provider_seconds(uri: str) -> float:
        record = records.get(uris.get(uri, ""))
        return sum((p.latency_ms or 0.0) for p in record.providers) / 1000 if record else 0.0

    overhead, spans, provider_s = [], [], []
    for uri, key in uris.items():
        record = records[key]
        invocation = by_uri.get(uri)
        if record is None or invocation is None or record.cached:
            continue
        span = record.updated_at.timestamp() - invocation.started_at
        spans.append(span)
        provider_s.append(provider_seconds(uri))
        overhead.append(span - provider_s[-1])
    batch_overhead = [
        i.duration_ms / 1000 - max((provider_seconds(u) for u in i.keys), default=0.0)
        for i in invocations
        if i.error_type is None
    ]
    durations = [i.duration_ms / 1000 for i in invocations]
    count = len(keys)
    cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_before}
    return {
        "cpu_seconds": {name: round(value, 2) for name, value in cpu.items()},
        "cpu_utilization": {name: round(value / (finished - started), 2) for name, value in cpu.items()},
        "on_upload_cpu_ms_per_image": round(cpu["on_upload"] / count * 1000, 1),
        "emulator_cpu_ms_per_image": round(cpu["emulator"] / count * 1000, 1),
        "images": count,
        "provider_calls": provider.calls - calls_before,
        "upload_seconds": round(uploaded - started, 2),
        "wall_seconds": round(finished - started, 2),
        "images_per_second": round(count / (finished - started), 2),
        "busy_seconds": round(busy_to - busy_from, 2),
        "images_per_second_busy": round(count / (busy_to - busy_from), 2),
        "invocations": len(invocations),
        "failed_invocations": sum(1 for i in invocations if i.error_type is not None),
        "records_per_invocation": round(sum(i.records for i in invocations) / len(invocations), 2),
        "invocation_duration_s": stats(durations),
        "invocations_timeline": [
            {
                "start_s": round(i.started_at - started, 3),
                "duration_ms": round(i.duration_ms, 1),
                "records": i.records,
            }
            for i in invocations
        ],
        "provider_latency_s": stats(provider_s),
        "record_span_s": stats(spans),
        "overhead_per_image_s": stats(overhead),
        "batch_overhead_s": stats(batch_overhead),
    }


def measure(
    images: int,
    latency: float,
    concurrency: int,
    workdir: Path,
    out: TextIO,
    *,
    timeout: float,
    warmup: int = 20,
    seed_start: int = 0,
) -> dict[str, Any]:
    provider = CountingDescriber(latency=latency, lifetime=timeout + 300).start()
    progress = Progress()
    config = deployment_config(provider.url)
    config = config.model_copy(
        update={
            "tagging": config.tagging.model_copy(
                update={
                    "processing": config.tagging.processing.model_copy(update={"concurrency": concurrency})
                }
            )
        }
    )
    try:
        started = time.monotonic()
        with running_stack(config, workdir, workers=WORKERS, emit=progress.line) as stack:
            print(
                f"  stack up in {time.monotonic() - started:.1f}s; warming up with {warmup} images", file=out
            )
            run_set(
                stack,
                provider,
                "warmup",
                distinct_jpegs(warmup, start=seed_start + 50_000),
                timeout=120,
                progress=progress,
            )
            data = distinct_jpegs(images, start=seed_start)
            print(f"  uploading {images} images (concurrency {concurrency} per invocation)", file=out)
            result = run_set(stack, provider, "timed", data, timeout=timeout, progress=progress)
            result["memory_mb"] = config.functions.on_upload.memory_mb
            result["batch_size"] = config.queue.batch_size
            result["bytes_per_image"] = round(sum(map(len, data)) / len(data))
            return result
    finally:
        provider.stop()


def main(argv: list[str] | None = None, emit: Callable[[str], None] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1, help="provider latency per call, seconds")
    parser.add_argument(
        "--sequential", type=int, default=200, help="images for the one-at-a-time baseline (0: skip)"
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)

    log = RESULTS / "throughput-stack.log"
    log.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="autotag-bench-") as tmp, children_output_to(log) as out:
        print(f"throughput: {args.images} uploads, provider latency {args.latency * 1000:.0f} ms", file=out)
        ours = measure(args.images, args.latency, 10, Path(tmp) / "ours", out, timeout=args.timeout)
        sequential = None
        if args.sequential:
            print(f"baseline: {args.sequential} uploads tagged one record at a time", file=out)
            sequential = measure(
                args.sequential,
                args.latency,
                1,
                Path(tmp) / "seq",
                out,
                timeout=args.timeout,
                seed_start=10_000,
            )
    in_flight = WORKERS * min(10, ours["batch_size"])
    ceiling = in_flight / args.latency
    report: dict[str, Any] = {
        "provider_latency_s": args.latency,
        "workers": WORKERS,
        "ours": ours,
        "sequential": sequential,
        "ceiling_images_per_second": ceiling,
        "efficiency_vs_ceiling": ratio(ours["images_per_second_busy"], ceiling),
        "speedup_vs_sequential": ratio(ours["images_per_second_busy"], sequential["images_per_second_busy"])
        if sequential
        else None,
        "machine": machine(),
        "log": str(log.relative_to(ROOT)),
    }
    print_report(report)
    path = write_result("throughput", report)
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


def print_report(report: dict[str, Any]) -> None:
    ours, sequential = report["ours"], report["sequential"]

    def row(name: str, result: dict[str, Any]) -> list[object]:
        overhead = result["overhead_per_image_s"]
        return [
            name,
            result["images"],
            result["images_per_second"],
            result["images_per_second_busy"],
            f"{overhead['p50'] * 1000:.0f}",
            f"{overhead['p95'] * 1000:.0f}",
            f"{result['provider_latency_s']['p50'] * 1000:.0f}",
            f"{result['invocation_duration_s']['median'] * 1000:.0f}",
        ]

    rows = [row("ours (10 in flight per invocation)", ours)]
    if sequential:
        rows.append(row("one record at a time", sequential))
    rows.append(["provider-bound ceiling", "", "", report["ceiling_images_per_second"], 0, 0, "", ""])
    print(
        text_table(
            [
                "run",
                "images",
                "img/s (upload→last record)",
                "img/s (function busy)",
                "overhead p50 ms",
                "p95 ms",
                "provider p50 ms",
                "invocation median ms",
            ],
            rows,
        )
    )
    batch = ours["batch_overhead_s"]
    print(
        f"workers {report['workers']}, {ours['invocations']} invocations of {ours['records_per_invocation']} "
        f"records on average; batch overhead (invocation - slowest provider call) p50 "
        f"{batch['p50'] * 1000:.0f} ms, p95 {batch['p95'] * 1000:.0f} ms"
    )
    print(
        f"CPU during the run (cores busy): emulator {ours['cpu_utilization']['emulator']}, on_upload workers "
        f"{ours['cpu_utilization']['on_upload']}, uploader/pollers {ours['cpu_utilization']['bench']}; "
        f"on_upload CPU per image {ours['on_upload_cpu_ms_per_image']} ms, emulator CPU per image "
        f"{ours['emulator_cpu_ms_per_image']} ms"
    )
    print(
        f"efficiency vs ceiling {report['efficiency_vs_ceiling']}; "
        f"speed-up vs one at a time {report['speedup_vs_sequential']}x"
    )


if __name__ == "__main__":
    raise SystemExit(main())
