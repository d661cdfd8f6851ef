"""Cost model: Lambda compute per 1,000 images from measured handler durations, beside the
provider's price per 1,000 images, and what the content-hash cache saves on a set with 20 %
duplicate bytes (measured: provider calls vs images).

Durations come from bench/results/throughput.json (``bench_throughput``: every on_upload
invocation's duration as the local runtime measured it, batches of up to 10 records at the
configured memory). Billing follows Lambda's rules: each invocation's duration rounded up to 1 ms,
times the configured memory in GB, at the arm64 price; plus the per-request price.

    uv run python -m bench.bench_cost [--images 200] [--duplicates 0.2]

Prints a table and writes bench/results/cost.json.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, read_result, text_table, write_result

# AWS Lambda, US East (N. Virginia), arm64, first pricing tier (7.5 billion GB-s per month),
# https://aws.amazon.com/lambda/pricing/ (figures as published in 2024-2025).
ARM64_PRICE_PER_GB_SECOND = 0.0000133334
PRICE_PER_MILLION_REQUESTS = 0.20
LAMBDA_PRICE_SOURCE = (
    "https://aws.amazon.com/lambda/pricing/ — us-east-1, arm64, first tier: $0.0000133334 per GB-second, "
    "$0.20 per 1M requests (published prices as of 2024-2025; free tier ignored)"
)
PROVIDER_PRICES_PER_1000 = {
    # /work/shared/providers.md, from the providers' pricing pages.
    "rekognition DetectLabels (first 1M images/month, us-east-1)": 1.00,
    "google_vision LABEL_DETECTION (1,001-5M units/month)": 1.50,
}


def lambda_cost_per_1000(durations_ms: list[float], images: int, memory_mb: int) -> dict[str, float]:
    """Compute and request cost of the invocations that tagged `images`, scaled to 1,000 images."""
    billed_ms = sum(math.ceil(d) for d in durations_ms)
    gb_seconds = billed_ms / 1000 * memory_mb / 1024
    scale = 1000 / images
    compute = gb_seconds * ARM64_PRICE_PER_GB_SECOND * scale
    requests = len(durations_ms) * scale * PRICE_PER_MILLION_REQUESTS / 1_000_000
    return {
        "billed_ms_per_image": round(billed_ms / images, 1),
        "gb_seconds_per_1000": round(gb_seconds * scale, 2),
        "compute_usd_per_1000": round(compute, 5),
        "requests_usd_per_1000": round(requests, 6),
        "total_usd_per_1000": round(compute + requests, 5),
    }


def from_throughput(throughput: dict[str, Any]) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for name in ("ours", "sequential"):
        run = throughput.get(name)
        if not run:
            continue
        durations = [i["duration_ms"] for i in run["invocations_timeline"]]
        runs[name] = lambda_cost_per_1000(durations, run["images"], run["memory_mb"]) | {
            "memory_mb": run["memory_mb"],
            "images": run["images"],
            "invocations": len(durations),
        }
    return runs


def measure_cache(images: int, duplicate_share: float, seed: int = 3) -> dict[str, Any]:
    """Upload `images` objects of which `duplicate_share` repeat another object's bytes under a new
    key; count provider calls and cached records."""
    from bench.harness import (
        Client,
        CountingDescriber,
        Upload,
        deployment_config,
        distinct_jpegs,
        running_stack,
    )

    rng = random.Random(seed)
    copies = round(images * duplicate_share)
    originals = distinct_jpegs(images - copies, start=30_000, size=(320, 240))
    data = originals + [rng.choice(originals) for _ in range(copies)]
    rng.shuffle(data)
    uploads = [Upload(key=f"dedup/img-{i:05d}.jpg", data=d) for i, d in enumerate(data)]
    provider = CountingDescriber(latency=0.1).start()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="autotag-cost-") as tmp,
            running_stack(deployment_config(provider.url), Path(tmp)) as stack,
        ):
            assert stack.state is not None
            client = Client(stack.state)
            client.put_all(uploads)
            records = _wait_all(client, [u.key for u in uploads])
    finally:
        provider.stop()
    tagged = [r for r in records.values() if r is not None and r.status.value == "tagged"]
    return {
        "images": images,
        "distinct_images": len(originals),
        "duplicate_share": duplicate_share,
        "provider_calls": provider.calls,
        "answered_with_tags": sum(provider.answered.values()),
        "tagged": len(tagged),
        "served_from_cache": sum(1 for r in tagged if r.cached),
        "calls_saved": images - provider.calls,
        "calls_saved_share": round((images - provider.calls) / images, 3),
    }


def _wait_all(client: Any, keys: list[str], timeout: float = 600.0) -> dict[str, Any]:
    import time

    end = time.monotonic() + timeout
    pending = list(keys)
    found: dict[str, Any] = {}
    while pending and time.monotonic() < end:
        time.sleep(2.0)
        for key, record in client.records(pending).items():
            if record is not None and record.status.value in ("tagged", "failed", "skipped"):
                found[key] = record
        pending = [k for k in keys if k not in found]
    if pending:
        raise SystemExit(f"{len(pending)} images not processed within {timeout:.0f}s")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="size of the duplicate-bytes set")
    parser.add_argument("--duplicates", type=float, default=0.2)
    args = parser.parse_args(argv)

    throughput = read_result("throughput")
    if throughput is None:
        raise SystemExit(
            "bench/results/throughput.json is missing: run `python -m bench.bench_throughput` first"
        )
    lambda_costs = from_throughput(throughput)
    from bench.harness import children_output_to

    log = RESULTS / "cost-stack.log"
    log.unlink(missing_ok=True)
    with children_output_to(log) as out:
        print(f"cache: {args.images} uploads, {args.duplicates:.0%} duplicate bytes under new keys", file=out)
        cache = measure_cache(args.images, args.duplicates)

    ours = lambda_costs["ours"]
    rows = []
    for name, cost in lambda_costs.items():
        label = "Lambda on_upload, 10 in flight" if name == "ours" else "Lambda on_upload, one at a time"
        rows.append(
            [
                label,
                f"{cost['billed_ms_per_image']:.0f} ms/image at {cost['memory_mb']} MB",
                f"${cost['total_usd_per_1000']:.4f}",
                "",
            ]
        )
    provider_rows = {}
    for name, price in PROVIDER_PRICES_PER_1000.items():
        share = ours["total_usd_per_1000"] / price
        provider_rows[name] = {"usd_per_1000": price, "lambda_share_of_provider": round(share, 4)}
        with_cache = price * (1 - cache["calls_saved_share"])
        rows.append(
            [
                f"provider: {name}",
                "",
                f"${price:.2f}",
                f"${with_cache:.2f} with the cache on a {cache['duplicate_share']:.0%}-duplicate set",
            ]
        )
    print(f"Lambda price: {LAMBDA_PRICE_SOURCE}")
    print(text_table(["cost per 1,000 images", "measured", "USD / 1,000", "note"], rows))
    print(
        f"Lambda compute is {ours['total_usd_per_1000'] / 1.00:.1%} of Rekognition's and "
        f"{ours['total_usd_per_1000'] / 1.50:.1%} of Google's per-image price"
    )
    print(
        f"content-hash cache: {cache['images']} images ({cache['distinct_images']} distinct) -> "
        f"{cache['provider_calls']} provider calls; {cache['served_from_cache']} records served from the "
        f"cache; {cache['calls_saved_share']:.0%} of provider calls saved"
    )
    path = write_result(
        "cost",
        {
            "lambda_price": {
                "arm64_usd_per_gb_second": ARM64_PRICE_PER_GB_SECOND,
                "usd_per_million_requests": PRICE_PER_MILLION_REQUESTS,
                "source": LAMBDA_PRICE_SOURCE,
            },
            "lambda": lambda_costs,
            "providers": provider_rows,
            "cache": cache,
            "durations_from": "bench/results/throughput.json",
        },
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
