"""The whole AWS bill per 1,000 uploaded images, beside each provider's fee, and a Lambda memory
table (duration and cost per 1,000 images at 512 / 1,024 / 1,769 / 3,008 MB) for the intake of a
12 MP photo and a provider call, to justify the deployed memory setting.

Counts come from measured runs (run them first; ``make bench`` does, in this order):
- bench/results/aws_calls.json (``bench_aws_calls``): AWS requests per image by operation, PutEvents
  entries, DynamoDB write and read units from the real item sizes, log bytes per image;
- bench/results/batch_inprocess.json (``bench_batch --aws inprocess``): a 10-record batch with a
  200 ms provider and AWS-like latencies: the waits, the function's CPU per batch;
- bench/results/intake.json (``bench_intake``): CPU time of the intake of a 12 MP JPEG.

Prices are AWS's published us-east-1 list prices (see PRICES; free tiers ignored).

The memory model (stated, not measured on Lambda): Lambda gives CPU in proportion to memory, one
vCPU at 1,769 MB (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html). A batch
of N records in flight takes W + T_py + T_pil, where W is one record's waits (provider call plus its
AWS calls, which memory does not change), T_py the batch's Python CPU time / min(1, vCPUs) (the GIL
lets Python use one core at most) and T_pil the batch's intake CPU time / min(vCPUs, N) (Pillow
releases the GIL while it decodes and encodes). CPU seconds are this machine's; one of its cores is
taken as one Lambda vCPU. Counting CPU after the waits, rather than overlapping them, makes the
model pessimistic for small memory sizes.

    uv run python -m bench.bench_bill

Prints the tables and writes bench/results/bill.json.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from bench.common import ROOT, read_result, text_table, write_result

PRICES: dict[str, dict[str, Any]] = {
    "lambda_arm64_gb_second": {
        "usd": 0.0000133334,
        "source": "https://aws.amazon.com/lambda/pricing/ (arm64, first 6 billion GB-s per month)",
    },
    "lambda_request": {"usd": 0.20 / 1e6, "source": "https://aws.amazon.com/lambda/pricing/ ($0.20 per 1M)"},
    "dynamodb_write_unit": {
        "usd": 0.625 / 1e6,
        "source": "https://aws.amazon.com/dynamodb/pricing/on-demand/ ($0.625 per 1M write request units)",
    },
    "dynamodb_read_unit": {
        "usd": 0.125 / 1e6,
        "source": "https://aws.amazon.com/dynamodb/pricing/on-demand/ ($0.125 per 1M read request units)",
    },
    "s3_put_class_request": {
        "usd": 0.005 / 1000,
        "source": "https://aws.amazon.com/s3/pricing/ (S3 Standard PUT, COPY, POST, LIST: $0.005 per 1,000)",
    },
    "s3_get_class_request": {
        "usd": 0.0004 / 1000,
        "source": "https://aws.amazon.com/s3/pricing/ (S3 Standard GET and others: $0.0004 per 1,000)",
    },
    "sqs_request": {
        "usd": 0.40 / 1e6,
        "source": "https://aws.amazon.com/sqs/pricing/ (standard queue, $0.40 per 1M requests of 64 KB)",
    },
    "eventbridge_event": {
        "usd": 1.00 / 1e6,
        "source": "https://aws.amazon.com/eventbridge/pricing/ (custom events, $1.00 per 1M, 64 KB each)",
    },
    "cloudwatch_logs_gb": {
        "usd": 0.50,
        "source": "https://aws.amazon.com/cloudwatch/pricing/ (Lambda logs, first 10 TB: $0.50/GB)",
    },
    "xray_trace": {
        "usd": 5.00 / 1e6,
        "source": "https://aws.amazon.com/xray/pricing/ (traces recorded, $5.00 per 1M)",
    },
}
S3_PUT_CLASS = frozenset(
    {"PutObject", "PutObjectTagging", "CopyObject", "PostObject", "ListObjects", "ListObjectsV2"}
)
S3_FREE = frozenset({"DeleteObject", "DeleteObjects", "DeleteObjectTagging"})
PLATFORM_LOG_BYTES_PER_INVOCATION = 600
"""Lambda's own start and report records per invocation in JSON log format (estimated, not measured)."""
XRAY_SAMPLED_SHARE = 0.05
"""X-Ray's default sampling rule: the first request each second and 5 % of the rest (sustained load)."""
VCPU_MB = 1769
MEMORY_SIZES = (512, 1024, 1769, 3008)
IMAGES = 1000


def lambda_batch_seconds(
    memory_mb: int, *, wait: float, python_cpu: float, pillow_cpu: float, records: int
) -> float:
    """The memory model of the module docstring: one batch's duration at `memory_mb`."""
    vcpus = memory_mb / VCPU_MB
    return wait + python_cpu / min(1.0, vcpus) + pillow_cpu / min(vcpus, float(records))


def lambda_usd_per_1000(memory_mb: int, batch_seconds: float, records: int) -> float:
    batches = IMAGES / records
    billed = math.ceil(batch_seconds * 1000) / 1000
    compute = billed * memory_mb / 1024 * PRICES["lambda_arm64_gb_second"]["usd"]
    return batches * (compute + PRICES["lambda_request"]["usd"])


def bill(calls: dict[str, Any], batch: dict[str, Any], memory_mb: int) -> dict[str, Any]:
    """Every AWS line item per 1,000 images, from the measured counts."""
    per_image = calls["by_operation_per_image"]
    entries = calls.get("entries_by_operation_per_image", {})
    records = int(batch["batch_size"])
    s3_put = sum(n for op, n in per_image.items() if op.startswith("s3.") and op[3:] in S3_PUT_CLASS)
    s3_get = sum(
        n
        for op, n in per_image.items()
        if op.startswith("s3.") and op[3:] not in S3_PUT_CLASS and op[3:] not in S3_FREE
    )
    # SQS: the S3 notification's SendMessage, then the event source mapping's receive and delete per
    # batch, plus any SQS request the function makes itself (the DLQ).
    sqs_own = sum(n for op, n in per_image.items() if op.startswith("sqs."))
    sqs_requests = 1 + 2 / records + sqs_own
    events = sum(n for op, n in entries.items() if op == "eventbridge.PutEvents")
    log_bytes = calls["log_bytes_per_image"] + PLATFORM_LOG_BYTES_PER_INVOCATION / records
    python_cpu = max(0.0, batch_cpu(batch))
    wait = batch_wait(batch)
    seconds = lambda_batch_seconds(
        memory_mb, wait=wait, python_cpu=python_cpu, pillow_cpu=0.0, records=records
    )
    lines = {
        "Lambda on_upload (compute + requests)": lambda_usd_per_1000(memory_mb, seconds, records),
        "DynamoDB writes": calls["dynamodb_write_units_per_image"]
        * IMAGES
        * PRICES["dynamodb_write_unit"]["usd"],
        "DynamoDB reads": calls["dynamodb_read_units_per_image"]
        * IMAGES
        * PRICES["dynamodb_read_unit"]["usd"],
        "S3 PUT-class requests": s3_put * IMAGES * PRICES["s3_put_class_request"]["usd"],
        "S3 GET-class requests": s3_get * IMAGES * PRICES["s3_get_class_request"]["usd"],
        "SQS requests": sqs_requests * IMAGES * PRICES["sqs_request"]["usd"],
        "EventBridge events": events * IMAGES * PRICES["eventbridge_event"]["usd"],
        "CloudWatch Logs ingested": log_bytes * IMAGES / 1e9 * PRICES["cloudwatch_logs_gb"]["usd"],
        "X-Ray traces": IMAGES / records * XRAY_SAMPLED_SHARE * PRICES["xray_trace"]["usd"],
    }
    counts = {
        "Lambda on_upload (compute + requests)": f"{IMAGES // records} invocations of "
        f"{seconds * 1000:.0f} ms (modelled) at {memory_mb} MB",
        "DynamoDB writes": f"{calls['dynamodb_write_units_per_image']} write units/image",
        "DynamoDB reads": f"{calls['dynamodb_read_units_per_image']} read units/image",
        "S3 PUT-class requests": f"{s3_put:g}/image",
        "S3 GET-class requests": f"{s3_get:g}/image",
        "SQS requests": f"{sqs_requests:.2f}/image (notification, receive and delete per batch)",
        "EventBridge events": f"{events:g}/image",
        "CloudWatch Logs ingested": f"{log_bytes:.0f} bytes/image",
        "X-Ray traces": f"{XRAY_SAMPLED_SHARE:.0%} of {IMAGES // records} invocations sampled",
    }
    return {
        "memory_mb": memory_mb,
        "lines_usd_per_1000": {name: round(usd, 6) for name, usd in lines.items()},
        "counts": counts,
        "total_usd_per_1000": round(sum(lines.values()), 5),
    }


def batch_wait(batch: dict[str, Any]) -> float:
    """One record's waits in the batch: the provider call and its AWS calls' latencies."""
    return float(batch["provider_latency_s"]) + float(batch["aws_seconds_per_image"]["concurrent"])


def batch_cpu(batch: dict[str, Any]) -> float:
    """The function's CPU seconds per 10-record batch: the process's CPU less moto's own."""
    return float(batch["process_cpu_seconds_per_batch"]["concurrent"]) - float(
        batch["emulation_seconds_per_batch"]["concurrent"]
    )


def memory_table(batch: dict[str, Any], intake_cpu: float) -> list[dict[str, Any]]:
    records = int(batch["batch_size"])
    wait, python_cpu = batch_wait(batch), max(0.0, batch_cpu(batch))
    rows = []
    for memory in MEMORY_SIZES:
        small = lambda_batch_seconds(
            memory, wait=wait, python_cpu=python_cpu, pillow_cpu=0.0, records=records
        )
        photo = lambda_batch_seconds(
            memory, wait=wait, python_cpu=python_cpu, pillow_cpu=intake_cpu * records, records=records
        )
        rows.append(
            {
                "memory_mb": memory,
                "vcpus": round(memory / VCPU_MB, 2),
                "small_batch_s": round(small, 3),
                "small_usd_per_1000": round(lambda_usd_per_1000(memory, small, records), 5),
                "photo_batch_s": round(photo, 3),
                "photo_usd_per_1000": round(lambda_usd_per_1000(memory, photo, records), 5),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.parse_args(argv)
    calls, batch, intake = read_result("aws_calls"), read_result("batch_inprocess"), read_result("intake")
    missing = [
        name
        for name, found in (("aws_calls", calls), ("batch_inprocess", batch), ("intake", intake))
        if not found
    ]
    if missing or calls is None or batch is None or intake is None:
        raise SystemExit(
            f"missing bench/results/{', '.join(missing)}.json: run `make bench` (or those first)"
        )
    from autotag.deploy.config import DeploymentConfig

    from bench.bench_cost import PROVIDER_PRICES_PER_1000

    deployed_mb = DeploymentConfig().functions.on_upload.memory_mb
    whole = bill(calls, batch, deployed_mb)
    intake_cpu = float(intake["cases"][0]["ours"]["cpu_median_s"])
    table = memory_table(batch, intake_cpu)

    print(f"The whole AWS bill per {IMAGES:,} images (us-east-1 list prices; free tiers ignored)")
    rows = [[name, whole["counts"][name], f"${usd:.5f}"] for name, usd in whole["lines_usd_per_1000"].items()]
    rows.append(["total, provider fee aside", "", f"${whole['total_usd_per_1000']:.5f}"])
    for name, price in PROVIDER_PRICES_PER_1000.items():
        rows.append([f"beside it: provider {name}", "", f"${price:.2f}"])
    print(text_table(["line", "measured count", f"USD per {IMAGES:,}"], rows))
    print(
        f"\nLambda memory (on_upload, 10-record batches, provider wait "
        f"{batch['provider_latency_s'] * 1000:.0f} ms, AWS waits "
        f"{batch['aws_seconds_per_image']['concurrent'] * 1000:.0f} ms per record, function CPU "
        f"{batch_cpu(batch) * 1000:.0f} ms per batch; 12 MP intake {intake_cpu * 1000:.0f} ms CPU per photo)"
    )
    print(
        text_table(
            [
                "memory MB",
                "vCPUs",
                "small images: batch s",
                "USD/1,000",
                "12 MP photos: batch s",
                "USD/1,000",
            ],
            [
                [
                    r["memory_mb"],
                    r["vcpus"],
                    r["small_batch_s"],
                    f"${r['small_usd_per_1000']:.5f}",
                    r["photo_batch_s"],
                    f"${r['photo_usd_per_1000']:.5f}",
                ]
                for r in table
            ],
        )
    )
    rss = intake["cases"][0].get("peak_rss_mib") or {}
    if rss:
        print(
            f"memory headroom: one 12 MP intake peaks at {rss['ours']} MiB RSS in a fresh interpreter "
            f"(bench_intake), and a batch runs {batch['batch_size']} records at once"
        )
    print(f"deployed: {deployed_mb} MB (autotag.deploy.config.FunctionSettings.memory_mb)")
    path = write_result(
        "bill",
        {
            "images": IMAGES,
            "bill": whole,
            "prices": PRICES,
            "providers_usd_per_1000": PROVIDER_PRICES_PER_1000,
            "memory_table": table,
            "memory_model": (__doc__ or "").split("The memory model")[1].split("    uv run")[0].strip(),
            "deployed_memory_mb": deployed_mb,
            "inputs": [
                "bench/results/aws_calls.json",
                "bench/results/batch_inprocess.json",
                "bench/results/intake.json",
            ],
        },
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
