"""AWS requests per uploaded image, by operation, and DynamoDB capacity per image, measured.

Uploads N distinct images to the AWS emulator (moto server on 127.0.0.1), hands their S3
notifications to the real on_upload handler in SQS batches of up to 10, and counts every AWS call
the function makes from the client side (``tests/support/aws_calls.py``: one entry per API call,
DynamoDB write and read units from the real item sizes by DynamoDB's published sizing rules,
transactions at twice the units, the global secondary index's writes included). The event source
mapping's own SQS calls (receive, delete) and the S3 notification's SendMessage happen outside the
function and are not in these counts; ``bench_cost`` adds them. The bytes the function writes to
its log (Powertools' JSON lines and the metrics' EMF lines, at the deployed log level) are counted
too: CloudWatch Logs bills them.

    uv run python -m bench.bench_aws_calls [--images 20] [--batch 10] [--user-tags-every 2]

Every second image (``--user-tags-every``; 1: all, 0: none) is uploaded with a user tag: the
function reads an object's tag set only when S3's GET says it has tags, so the share sets the
GetObjectTagging count (1 per image with tags, 0 without).

Prints a table and writes bench/results/aws_calls.json.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from typing import Any, TextIO

from bench.common import ROOT, loopback_environment, machine, text_table, write_result

loopback_environment()

from autotag.deploy.config import DeploymentConfig  # noqa: E402

os.environ.update(
    {
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "autotag-bench",
        "POWERTOOLS_SERVICE_NAME": "autotag",
        "POWERTOOLS_LOG_LEVEL": DeploymentConfig().functions.on_upload.log_level,  # as deployed
    }
)

from tests.support.aws import Emulator  # noqa: E402
from tests.support.aws_calls import AwsCallLog, upload_unlogged  # noqa: E402
from tests.support.upload_stack import upload_stack  # noqa: E402

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the emulator's access log


class CountingStream(io.TextIOBase):
    """A text stream that forwards to another and counts the UTF-8 bytes written while counting."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner
        self.counting = False
        self.bytes = 0

    def write(self, text: str) -> int:
        if self.counting:
            self.bytes += len(text.encode())
        return self.inner.write(text)

    def flush(self) -> None:
        self.inner.flush()


def measure(emulator: Any, images: int, batch: int, user_tags_every: int = 2) -> dict[str, Any]:
    """Run `images` uploads through on_upload in batches of `batch`; the log's per-image figures."""
    # Before the handler module is imported: its Logger writes to the sys.stdout it finds then.
    stdout = CountingStream(sys.stdout)
    sys.stdout = stdout
    log = AwsCallLog(reader=emulator.client("dynamodb"))
    with upload_stack(emulator, latency=0.0, concurrency=batch) as stack, log.installed():
        keys = [f"calls/photo {i:03d}.jpg" for i in range(images)]
        messages = upload_unlogged(log, stack, keys, seed=7000, user_tags_every=user_tags_every)
        log.clear()
        invocations = 0
        for start in range(0, images, batch):
            stdout.counting = True
            try:
                response = stack.invoke(*messages[start : start + batch])
            finally:
                stdout.counting = False
            invocations += 1
            if response["batchItemFailures"]:
                raise SystemExit(f"unexpected failures: {response}")
        with log.ignoring():
            provider_calls = stack.provider.calls
            log.size_updates(stack.emulator.client("dynamodb"))
            sizes = log.written_item_sizes()
            table_of = {stack.table: "images table", stack.idempotency_table: "idempotency table"}
    if provider_calls != images:
        raise SystemExit(f"{provider_calls} provider calls for {images} images")
    figures = log.per_image(images)
    figures["invocations"] = invocations
    figures["log_bytes_per_image"] = round(stdout.bytes / images)
    figures["log_level"] = os.environ["POWERTOOLS_LOG_LEVEL"]
    figures["batch_size"] = batch
    figures["user_tags_every"] = user_tags_every
    figures["item_sizes_bytes"] = {
        table_of.get(table, table): {"count": len(values), "min": min(values), "max": max(values)}
        for table, values in sizes.items()
    }
    figures["calls"] = [
        {
            "operation": c.name,
            "write_units": c.total_write_units,
            "read_units": c.read_units,
        }
        for c in log.calls
    ]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument(
        "--user-tags-every", type=int, default=2, help="every Nth image uploaded with a user tag (0: none)"
    )
    args = parser.parse_args(argv)

    emulator = Emulator.start()
    os.environ["AWS_ENDPOINT_URL"] = emulator.endpoint
    try:
        figures = measure(emulator, args.images, args.batch, args.user_tags_every)
    finally:
        emulator.stop()
    print_report(figures)
    path = write_result("aws_calls", figures | {"machine": machine()})
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


def print_report(figures: dict[str, Any]) -> None:
    print(
        f"AWS calls made by on_upload: {figures['images']} images in {figures['invocations']} batches "
        f"of up to {figures['batch_size']}; "
        + (
            f"1 in {every} uploaded with a user tag"
            if (every := figures["user_tags_every"])
            else "no user tags"
        )
    )
    units = figures["write_units_by_operation_per_image"]
    rows = [[name, per, units.get(name, "")] for name, per in figures["by_operation_per_image"].items()]
    rows.append(["total", figures["calls_per_image"], figures["dynamodb_write_units_per_image"]])
    print(text_table(["operation", "calls per image", "write units per image"], rows))
    print(
        f"DynamoDB write units per image {figures['dynamodb_write_units_per_image']}, "
        f"read units per image {figures['dynamodb_read_units_per_image']} "
        "(from item sizes by DynamoDB's sizing rules; transactions count twice; "
        f"{figures['dynamodb_index_write_units_per_image']} of the write units are the feed index's)"
    )
    print(
        f"log written by the function: {figures['log_bytes_per_image']} bytes per image "
        f"(level {figures['log_level']}, as deployed)"
    )
    for table, sizes in figures["item_sizes_bytes"].items():
        print(f"  items written to the {table}: {sizes['count']}, {sizes['min']}-{sizes['max']} bytes")


if __name__ == "__main__":
    raise SystemExit(main())
