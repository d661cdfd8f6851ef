"""Wall time of one 10-record SQS batch through the real on_upload handler, concurrent vs one after
another, with a provider that takes 200 ms per call.

Everything is local: an imagedescriber double on 127.0.0.1 and, for AWS, either
- ``--aws emulator`` (default): the AWS emulator (moto server) over HTTP on 127.0.0.1, or
- ``--aws inprocess``: S3, DynamoDB and EventBridge answered inside this process after latencies
  like AWS's (bench/inprocess_aws.py, where the values and their sources are), so the figure shows
  the concurrency design rather than the emulator's CPU.
Each timed run processes the same 10 records from scratch (idempotency records and cached results
are cleared between runs, so every run makes 10 provider calls).

    uv run python bench/bench_batch.py [--repeats 5] [--latency 0.2] [--aws inprocess]

Prints a table and writes bench/results/batch.json (batch_inprocess.json with ``--aws inprocess``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.loopback_env import LOOPBACK_AWS_ENV  # noqa: E402

# Loopback only, dummy credentials: the same guard the test suite uses.
os.environ.update(
    {
        **LOOPBACK_AWS_ENV,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "autotag-bench",
        "POWERTOOLS_SERVICE_NAME": "autotag",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
)
os.environ.pop("AWS_PROFILE", None)

import logging  # noqa: E402

from bench.inprocess_aws import LATENCY, InProcessAws  # noqa: E402
from tests.support.aws import Emulator  # noqa: E402
from tests.support.images import jpeg_bytes  # noqa: E402
from tests.support.upload_stack import UploadStack, reconfigure, upload_stack  # noqa: E402

BATCH_SIZE = 10
CPU_SECONDS: list[float] = []
"""This process's CPU seconds during each timed invocation (the function, and moto when in process)."""
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the emulator's access log


def clear_dedup(stack: UploadStack) -> None:
    """Forget idempotency records, cached results and image records (which hold the sequencer of
    the event they reflect: a repeat would be a duplicate) so the same records are processed afresh."""
    ddb = stack.emulator.client("dynamodb")
    for table, keys, wanted in (
        (stack.idempotency_table, ("id",), lambda item: True),
        (stack.table, ("pk", "sk"), lambda item: item["pk"]["S"].startswith(("CACHE#", "IMG#", "TAG#"))),
    ):
        for page in ddb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                if wanted(item):
                    ddb.delete_item(TableName=table, Key={k: item[k] for k in keys})


def timed_run(
    stack: UploadStack, messages: list[dict], aws: InProcessAws | None = None
) -> tuple[float, float]:
    """(wall time of the batch, seconds between the first and the last provider request arriving)."""
    clear_dedup(stack)
    calls, credits = stack.provider.calls, stack.provider.credits
    if aws is not None:
        aws.active = True
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        response = stack.invoke(*messages)
    finally:
        elapsed = time.perf_counter() - started
        CPU_SECONDS.append(time.process_time() - cpu_started)
        if aws is not None:
            aws.active = False
    tagged = credits - stack.provider.credits  # each answer with tags spends one credit
    if (
        response["batchItemFailures"]
        or stack.provider.calls - calls != len(messages)
        or tagged != len(messages)
    ):
        raise SystemExit(f"unexpected run: {response}, {stack.provider.calls - calls} provider calls")
    arrivals = [r.received_at for r in stack.provider.requests[calls:]]
    return elapsed, max(arrivals) - min(arrivals)


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "min_s": round(min(samples), 3),
        "median_s": round(statistics.median(samples), 3),
        "max_s": round(max(samples), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.2, help="provider latency per call, seconds")
    parser.add_argument("--aws", choices=("emulator", "inprocess"), default="emulator")
    args = parser.parse_args()

    aws: InProcessAws | None = None
    emulator: Any
    if args.aws == "inprocess":
        os.environ.pop("AWS_ENDPOINT_URL", None)
        emulator = aws = InProcessAws().start()
    else:
        emulator = Emulator.start()
        os.environ["AWS_ENDPOINT_URL"] = emulator.endpoint
    results: dict[str, list[float]] = {}
    aws_seconds_per_image: dict[str, float] = {}
    emulation_seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}
    spreads: dict[str, float] = {}
    try:
        with upload_stack(emulator, latency=args.latency, concurrency=BATCH_SIZE) as stack:
            stack.provider.credits = 10**9  # every run's 10 calls answered with tags, never "out of credits"
            messages = []
            for i in range(BATCH_SIZE):
                key = f"bench/photo {i:02d}.jpg"
                etag, version = stack.upload(key, jpeg_bytes(320, 240, seed=1000 + i))
                messages.append(stack.message(key, etag, version))
            modes = (
                ("concurrent", BATCH_SIZE, args.latency),
                ("sequential", 1, args.latency),
                # The same concurrent batch with an instant provider: what the emulator costs.
                ("baseline", BATCH_SIZE, 0.0),
            )
            for mode, concurrency, latency in modes:
                stack.provider.latency = latency
                reconfigure(stack, concurrency=concurrency)
                timed_run(stack, messages, aws)  # warm-up: cold start, connections
                if aws is not None:
                    aws.slept.clear()
                    aws.emulation_seconds = 0.0
                CPU_SECONDS.clear()
                runs = [timed_run(stack, messages, aws) for _ in range(args.repeats)]
                cpu_seconds[mode] = round(statistics.median(CPU_SECONDS), 3)
                if aws is not None:
                    slept = sum(aws.slept.values())
                    aws_seconds_per_image[mode] = round(slept / (args.repeats * len(messages)), 3)
                    emulation_seconds[mode] = round(aws.emulation_seconds / args.repeats, 3)
                results[mode] = [elapsed for elapsed, _ in runs]
                spreads[mode] = statistics.median(spread for _, spread in runs)
    finally:
        emulator.stop()

    concurrent, sequential = summary(results["concurrent"]), summary(results["sequential"])
    baseline = summary(results["baseline"])
    report = {
        "batch_size": BATCH_SIZE,
        "provider_latency_s": args.latency,
        "repeats": args.repeats,
        "concurrent": {"concurrency": BATCH_SIZE, **concurrent, "samples_s": results["concurrent"]},
        "sequential": {"concurrency": 1, **sequential, "samples_s": results["sequential"]},
        "baseline_no_provider_latency": {
            "concurrency": BATCH_SIZE,
            **baseline,
            "samples_s": results["baseline"],
        },
        # All 10 requests arriving within less than one latency means they were in flight together.
        "provider_arrival_spread_median_s": {mode: round(spread, 3) for mode, spread in spreads.items()},
        "speedup_median": round(sequential["median_s"] / concurrent["median_s"], 2),
        # Provider time on the critical path, in round trips: (time - emulator baseline) / latency.
        # The minimum is the sample least disturbed by other load on the machine.
        "provider_round_trips": {
            f"{mode}_{stat}": round((stats[f"{stat}_s"] - baseline[f"{stat}_s"]) / args.latency, 1)
            for mode, stats in (("concurrent", concurrent), ("sequential", sequential))
            for stat in ("min", "median")
        }
        if args.latency
        else None,
        "aws": args.aws,
        "aws_latency_s": LATENCY if aws is not None else None,
        # Injected AWS latency per image, summed over its calls (what one image waits on AWS when
        # its calls run one after another): the "AWS-call time" of the batch target.
        "aws_seconds_per_image": aws_seconds_per_image or None,
        # CPU seconds moto spent answering per batch (AWS does this work on its side), and
        # this process's CPU seconds per batch (median; the function, and moto when in process).
        "emulation_seconds_per_batch": emulation_seconds or None,
        "process_cpu_seconds_per_batch": cpu_seconds,
        "throughput_images_per_s": {
            "concurrent": round(BATCH_SIZE / concurrent["median_s"], 1),
            "sequential": round(BATCH_SIZE / sequential["median_s"], 1),
        },
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
    }
    where = "AWS in process with AWS-like latencies" if aws is not None else "the AWS emulator over HTTP"
    print(
        f"{BATCH_SIZE}-record batch, provider latency {args.latency * 1000:.0f} ms, {args.repeats} repeats, "
        f"{where}"
    )
    print(f"{'mode':<12}{'min':>9}{'median':>9}{'max':>9}")
    for mode, stats in (("concurrent", concurrent), ("sequential", sequential), ("baseline", baseline)):
        print(f"{mode:<12}{stats['min_s']:>8.3f}s{stats['median_s']:>8.3f}s{stats['max_s']:>8.3f}s")
    print(f"speedup (median sequential / median concurrent): {report['speedup_median']}x")
    print(f"provider round trips ((time - baseline) / latency): {report['provider_round_trips']}")
    print(f"provider requests' arrival spread (median): {report['provider_arrival_spread_median_s']}")
    if aws_seconds_per_image:
        print(f"injected AWS latency per image, summed over its calls: {aws_seconds_per_image}")
        print(f"moto's own CPU seconds per batch (AWS's side of the work): {emulation_seconds}")
    print(f"process CPU seconds per batch: {cpu_seconds}")
    print(f"throughput (images/s, median): {report['throughput_images_per_s']}")
    name = "batch_inprocess.json" if aws is not None else "batch.json"
    out = ROOT / "bench" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
