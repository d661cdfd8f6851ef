"""The bill's arithmetic (bench/bench_bill.py): per-image counts times published unit prices."""

from __future__ import annotations

import pytest

from bench.bench_bill import PRICES, bill, lambda_batch_seconds, memory_table

CALLS = {
    "by_operation_per_image": {
        "dynamodb.GetItem": 2.0,
        "s3.GetObject": 1.0,
        "s3.HeadObject": 1.0,
        "s3.PutObjectTagging": 1.0,
        "eventbridge.PutEvents": 0.1,
    },
    "entries_by_operation_per_image": {"eventbridge.PutEvents": 1.0},
    "dynamodb_write_units_per_image": 18.0,
    "dynamodb_read_units_per_image": 1.5,
    "log_bytes_per_image": 540,
}
BATCH = {
    "batch_size": 10,
    "provider_latency_s": 0.2,
    "aws_seconds_per_image": {"concurrent": 0.25},
    "process_cpu_seconds_per_batch": {"concurrent": 0.3},
    "emulation_seconds_per_batch": {"concurrent": 0.2},
}


def test_each_line_is_the_measured_count_times_its_published_price():
    lines = bill(CALLS, BATCH, 1024)["lines_usd_per_1000"]  # rounded to 6 decimal places
    assert lines["DynamoDB writes"] == pytest.approx(18 * 1000 * 0.625 / 1e6, abs=1e-6)
    assert lines["DynamoDB reads"] == pytest.approx(1.5 * 1000 * 0.125 / 1e6, abs=1e-6)
    assert lines["S3 PUT-class requests"] == pytest.approx(1000 * 0.005 / 1000, abs=1e-6)
    assert lines["S3 GET-class requests"] == pytest.approx(2 * 1000 * 0.0004 / 1000, abs=1e-6)
    # Events are billed per entry, not per PutEvents call.
    assert lines["EventBridge events"] == pytest.approx(1000 * 1.00 / 1e6, abs=1e-6)
    # The S3 notification, and a receive and a delete per batch of 10.
    assert lines["SQS requests"] == pytest.approx(1.2 * 1000 * 0.40 / 1e6, abs=1e-6)
    assert lines["CloudWatch Logs ingested"] == pytest.approx((540 + 60) * 1000 / 1e9 * 0.50, abs=1e-6)


def test_lambda_time_scales_with_the_cpu_share_of_memory_up_to_one_core_for_python():
    one_vcpu = lambda_batch_seconds(1769, wait=0.45, python_cpu=0.1, pillow_cpu=0.0, records=10)
    half = lambda_batch_seconds(1769 // 2, wait=0.45, python_cpu=0.1, pillow_cpu=0.0, records=10)
    double = lambda_batch_seconds(1769 * 2, wait=0.45, python_cpu=0.1, pillow_cpu=0.0, records=10)
    assert one_vcpu == pytest.approx(0.55)
    assert half == pytest.approx(0.45 + 0.2, rel=1e-3)
    assert double == pytest.approx(one_vcpu)  # the GIL: Python gains nothing past one core
    pillow = lambda_batch_seconds(1769 * 2, wait=0.45, python_cpu=0.0, pillow_cpu=0.6, records=10)
    assert pillow == pytest.approx(0.45 + 0.3)  # Pillow releases the GIL: two vCPUs, half the time


def test_memory_table_costs_grow_with_memory_once_cpu_stops_helping():
    rows = memory_table(BATCH, intake_cpu=0.06)
    assert [r["memory_mb"] for r in rows] == [512, 1024, 1769, 3008]
    assert rows[-1]["small_usd_per_1000"] > rows[-2]["small_usd_per_1000"]
    assert rows[-1]["small_batch_s"] == rows[-2]["small_batch_s"]
    assert PRICES["lambda_arm64_gb_second"]["usd"] == 0.0000133334
