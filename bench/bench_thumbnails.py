"""Benchmark: console thumbnails made on the fly vs stored by the pipeline. Not a test.

Run from the repository root:

    uv run python -m bench.bench_thumbnails
    uv run python -m bench.bench_thumbnails --repeats 9

Against the AWS emulator (a moto server on 127.0.0.1, started here) it times, per source image:

- on the fly (what GET /v1/thumbnails does): GET the original, check it, make the thumbnail;
- stored (the alternative): GET a thumbnail the pipeline wrote under a derived prefix;
- the pipeline's extra work for the stored variant, per upload: make the thumbnail and PUT it.

It prints min/median/max milliseconds and the bytes moved, and writes bench/results/thumbnails.json.
Cost figures use Lambda arm64 at 1024 MB ($0.0000133334 per GB-second) and S3 Standard requests
($0.0004 per 1,000 GET, $0.005 per 1,000 PUT) and storage ($0.023 per GB-month), us-east-1 list
prices; they are arithmetic on the measured milliseconds, not a bill.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from autotag.intake.checks import inspect_image
from autotag.local.emulator import EmulatorProcess
from autotag.thumbnails import thumbnail
from PIL import Image

from bench.bench_intake import photo_like

RESULTS = Path(__file__).resolve().parent / "results" / "thumbnails.json"
LAMBDA_GB_SECOND = 0.0000133334
S3_GET = 0.0004 / 1000
S3_PUT = 0.005 / 1000
S3_GB_MONTH = 0.023
BUCKET = "bench-thumbnails"


def sources() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, size, image_format, options in (
        ("1MP JPEG (phone upload, resized)", (1200, 900), "JPEG", {"quality": 88}),
        ("12MP JPEG (camera)", (4000, 3000), "JPEG", {"quality": 92}),
        ("24MP JPEG (camera)", (6000, 4000), "JPEG", {"quality": 92}),
        ("4MP PNG (screenshot-like)", (2400, 1600), "PNG", {"compress_level": 6}),
    ):
        buffer = io.BytesIO()
        photo_like(*size).save(buffer, image_format, **options)
        out[name] = buffer.getvalue()
    return out


def timed(call: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    call()  # warm: imports, connection pool
    times, value = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        value = call()
        times.append((time.perf_counter() - started) * 1000)
    return times, value


def summary(times: list[float]) -> dict[str, float]:
    middle = statistics.median(times)
    return {"min": round(min(times), 1), "median": round(middle, 1), "max": round(max(times), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--side", type=int, default=256)
    args = parser.parse_args()

    emulator = EmulatorProcess("127.0.0.1", 0)
    emulator.start()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=emulator.endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        s3.create_bucket(Bucket=BUCKET)
        rows = []
        for name, data in sources().items():
            key = f"images/{abs(hash(name))}.img"
            s3.put_object(Bucket=BUCKET, Key=key, Body=data)

            def on_the_fly(key: str = key) -> bytes:
                original = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                return thumbnail(inspect_image(original), args.side).data

            fly_times, made = timed(on_the_fly, args.repeats)
            derived = f"_thumbnails/{args.side}/{key}"

            def pipeline_extra(data: bytes = data, derived: str = derived) -> None:
                # What the pipeline would add per upload: it already holds the bytes.
                made = thumbnail(inspect_image(data), args.side).data
                s3.put_object(Bucket=BUCKET, Key=derived, Body=made)

            put_times, _ = timed(pipeline_extra, args.repeats)

            def stored(derived: str = derived) -> bytes:
                return bytes(s3.get_object(Bucket=BUCKET, Key=derived)["Body"].read())

            stored_times, _ = timed(stored, args.repeats)
            picture = Image.open(io.BytesIO(made))
            fly_ms = statistics.median(fly_times)
            row = {
                "source": name,
                "source_bytes": len(data),
                "thumbnail_bytes": len(made),
                "thumbnail_size": list(picture.size),
                "on_the_fly_ms": summary(fly_times),
                "stored_get_ms": summary(stored_times),
                "pipeline_make_and_put_ms": summary(put_times),
                "on_the_fly_usd_per_1000_views": round(1000 * (fly_ms / 1000 * LAMBDA_GB_SECOND + S3_GET), 6),
                "stored_usd_per_1000_uploads": round(
                    1000 * (statistics.median(put_times) / 1000 * LAMBDA_GB_SECOND + S3_PUT), 6
                ),
                "stored_usd_per_1000_thumbnails_month": round(1000 * len(made) / 1024**3 * S3_GB_MONTH, 8),
            }
            rows.append(row)
            print(
                f"{name:34} {len(data) / 1024:8.0f} KiB -> {len(made) / 1024:5.1f} KiB {picture.size}  "
                f"on the fly {row['on_the_fly_ms']['median']:6.1f} ms  "
                f"stored GET {row['stored_get_ms']['median']:5.1f} ms  "
                f"pipeline make+PUT {row['pipeline_make_and_put_ms']['median']:6.1f} ms"
            )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            json.dumps({"side": args.side, "repeats": args.repeats, "rows": rows}, indent=2) + "\n",
            encoding="utf-8",
        )
        print(f"wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
