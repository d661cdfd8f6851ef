"""Wall time of one 10-record SQS batch through the real on_upload handler, concurrent vs one after
another, with a provider that takes 200 ms per call.

Everything is local: the AWS emulator (moto server) and an imagedescriber double on 127.0.0.1.
Each timed run processes the same 10 records from scratch (idempotency records and cached results
are cleared between runs, so every run makes 10 provider calls).

    uv run python bench/bench_batch.py [--repeats 5] [--latency 0.2]

Prints a table and writes bench/results/batch.json.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Loopback only, dummy credentials: the same guard the test suite uses.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "autotag-bench",
        "POWERTOOLS_SERVICE_NAME": "autotag",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
)
os.environ.pop("AWS_PROFILE", None)

import logging  # noqa: E402

from tests.support.aws import Emulator  # noqa: E402
from tests.support.images import jpeg_bytes  # noqa: E402
from tests.support.upload_stack import UploadStack, reconfigure, upload_stack  # noqa: E402

BATCH_SIZE = 10
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the emulator's access log


def clear_dedup(stack: UploadStack) -> None:
    """Forget idempotency records and cached results so the same records are processed afresh."""
    ddb = stack.emulator.client("dynamodb")
    for table, keys, wanted in (
        (stack.idempotency_table, ("id",), lambda item: True),
        (stack.table, ("pk", "sk"), lambda item: item["pk"]["S"].startswith("CACHE#")),
    ):
        for page in ddb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                if wanted(item):
                    ddb.delete_item(TableName=table, Key={k: item[k] for k in keys})


def timed_run(stack: UploadStack, messages: list[dict]) -> tuple[float, float]:
    """(wall time of the batch, seconds between the first and the last provider request arriving)."""
    clear_dedup(stack)
    calls = stack.provider.calls
    started = time.perf_counter()
    response = stack.invoke(*messages)
    elapsed = time.perf_counter() - started
    if response["batchItemFailures"] or stack.provider.calls - calls != len(messages):
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
    args = parser.parse_args()

    emulator = Emulator.start()
    os.environ["AWS_ENDPOINT_URL"] = emulator.endpoint
    results: dict[str, list[float]] = {}
    spreads: dict[str, float] = {}
    try:
        with upload_stack(emulator, latency=args.latency, concurrency=BATCH_SIZE) as stack:
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
                timed_run(stack, messages)  # warm-up: cold start, connections
                runs = [timed_run(stack, messages) for _ in range(args.repeats)]
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
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
    }
    print(f"{BATCH_SIZE}-record batch, provider latency {args.latency * 1000:.0f} ms, {args.repeats} repeats")
    print(f"{'mode':<12}{'min':>9}{'median':>9}{'max':>9}")
    for mode, stats in (("concurrent", concurrent), ("sequential", sequential), ("baseline", baseline)):
        print(f"{mode:<12}{stats['min_s']:>8.3f}s{stats['median_s']:>8.3f}s{stats['max_s']:>8.3f}s")
    print(f"speedup (median sequential / median concurrent): {report['speedup_median']}x")
    print(f"provider round trips ((time - baseline) / latency): {report['provider_round_trips']}")
    print(f"provider requests' arrival spread (median): {report['provider_arrival_spread_median_s']}")
    out = ROOT / "bench" / "results" / "batch.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
